import { describe, expect, it } from "vitest";
import { dictPickle, le, op, tensorV2, torchZip, type Bytes } from "../../../test/helpers/torch-archive.js";
import { CorruptFileError, UnsafePickleError, UnsupportedError } from "../../errors.js";
import { TorchCheckpoint } from "./checkpoint.js";
import { collectTensors, toJsonValue } from "./index.js";
import { PyDict } from "./values.js";

const f32 = (...xs: number[]): Uint8Array => le(Float32Array.from(xs));
const iota = (n: number): Uint8Array => f32(...Array.from({ length: n }, (_, i) => i));

async function load(bytes: Uint8Array, options = {}): Promise<Map<string, unknown>> {
  const checkpoint = await TorchCheckpoint.fromBytes(bytes, "t.ckpt", options);
  const tensors = await checkpoint.readTensors(collectTensors(checkpoint.root, "/"));
  return new Map([...tensors].map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape, data: [...t.data] }]));
}

async function failure(bytes: Uint8Array, options = {}): Promise<unknown> {
  try {
    await load(bytes, options);
  } catch (error) {
    return error;
  }
  return undefined;
}

function checkError(
  error: unknown,
  cls: new (...args: never[]) => Error,
  code: string,
  fragment: RegExp,
): void {
  expect(error).toBeInstanceOf(cls);
  expect((error as { code?: unknown }).code).toBe(code);
  expect((error as Error).message).toMatch(fragment);
}

const single = (items: Record<string, Bytes>, storages: Record<string, Uint8Array>): Uint8Array =>
  torchZip(dictPickle(items), storages);

describe("TorchCheckpoint: rebuilding tensors", () => {
  it("materialises contiguous, transposed, offset, expanded and shared views", async () => {
    const bytes = single(
      {
        base: tensorV2({ key: "0", numel: 6, size: [2, 3] }),
        t: tensorV2({ key: "0", numel: 6, size: [3, 2], stride: [1, 3] }),
        tail: tensorV2({ key: "0", numel: 6, offset: 4, size: [2] }),
        col: tensorV2({ key: "0", numel: 6, offset: 1, size: [2], stride: [3] }),
        expanded: tensorV2({ key: "1", numel: 2, size: [3, 2], stride: [0, 1] }),
        scalar: tensorV2({ key: "1", numel: 2, offset: 1, size: [] }),
        empty: tensorV2({ key: "2", numel: 0, size: [0, 4] }),
      },
      { "0": iota(6), "1": f32(7, 8), "2": new Uint8Array(0) },
    );
    const t = await load(bytes);
    expect(t.get("base")).toEqual({ dtype: "float32", shape: [2, 3], data: [0, 1, 2, 3, 4, 5] });
    expect(t.get("t")).toEqual({ dtype: "float32", shape: [3, 2], data: [0, 3, 1, 4, 2, 5] });
    expect(t.get("tail")).toEqual({ dtype: "float32", shape: [2], data: [4, 5] });
    expect(t.get("col")).toEqual({ dtype: "float32", shape: [2], data: [1, 4] });
    expect(t.get("expanded")).toEqual({ dtype: "float32", shape: [3, 2], data: [7, 8, 7, 8, 7, 8] });
    expect(t.get("scalar")).toEqual({ dtype: "float32", shape: [], data: [8] });
    expect(t.get("empty")).toEqual({ dtype: "float32", shape: [0, 4], data: [] });
  });

  it("keeps every storage dtype's bits (int64 beyond 2^53, bool, half, bfloat16)", async () => {
    const bytes = single(
      {
        i: tensorV2({ storageType: "torch.LongStorage", key: "0", numel: 2, size: [2] }),
        b: tensorV2({ storageType: "torch.BoolStorage", key: "1", numel: 3, size: [3] }),
        h: tensorV2({ storageType: "torch.HalfStorage", key: "2", numel: 2, size: [2] }),
        bf: tensorV2({ storageType: "torch.BFloat16Storage", key: "3", numel: 2, size: [2], stride: [1] }),
      },
      {
        "0": le(BigInt64Array.from([2n ** 53n + 1n, -3n])),
        "1": Uint8Array.from([1, 0, 1]),
        "2": le(Uint16Array.from([0x8000, 0x0001])),
        "3": le(Uint16Array.from([0x7fc1, 0x3f80])),
      },
    );
    const t = await load(bytes);
    expect(t.get("i")).toEqual({ dtype: "int64", shape: [2], data: [2n ** 53n + 1n, -3n] });
    expect(t.get("b")).toEqual({ dtype: "bool", shape: [3], data: [1, 0, 1] });
    expect(t.get("h")).toEqual({ dtype: "float16", shape: [2], data: [0x8000, 0x0001] });
    expect(t.get("bf")).toEqual({ dtype: "bfloat16", shape: [2], data: [0x7fc1, 0x3f80] });
  });

  it("supports _rebuild_tensor_v3 over an UntypedStorage, Parameters, _rebuild_from_type_v2, bytes and torch.Size", async () => {
    const v3 = [
      ...op.global("torch._utils", "_rebuild_tensor_v3"),
      op.MARK,
      ...[
        op.MARK,
        ...op.str("storage"),
        ...op.global("torch", "UntypedStorage"),
        ...op.str("0"),
        ...op.str("cpu"),
        ...op.int(8),
      ],
      op.TUPLE,
      op.BINPERSID,
      ...op.int(1),
      ...[...op.int(3), op.TUPLE1, ...op.int(1), op.TUPLE1],
      op.NEWFALSE,
      ...op.global("collections", "OrderedDict"),
      op.EMPTY_TUPLE,
      op.REDUCE,
      ...op.global("torch", "uint16"),
      op.TUPLE,
      op.REDUCE,
    ];
    const param = [
      ...op.global("torch._utils", "_rebuild_parameter"),
      ...tensorV2({ key: "1", numel: 1, size: [1] }),
      op.NEWTRUE,
      op.EMPTY_DICT,
      op.TUPLE3,
      op.REDUCE,
    ];
    const fromType = [
      ...op.global("torch._tensor", "_rebuild_from_type_v2"),
      op.MARK,
      ...op.global("torch._utils", "_rebuild_tensor_v2"),
      ...op.global("torch", "Tensor"),
      op.MARK,
      ...[
        op.MARK,
        ...op.str("storage"),
        ...op.global("torch", "FloatStorage"),
        ...op.str("1"),
        ...op.str("cpu"),
      ],
      ...[...op.int(1), op.TUPLE, op.BINPERSID],
      ...[...op.int(0), op.EMPTY_TUPLE, op.EMPTY_TUPLE, op.NEWFALSE, op.EMPTY_DICT],
      op.TUPLE,
      op.EMPTY_DICT,
      op.TUPLE,
      op.REDUCE,
    ];
    const raw = [
      ...op.global("_codecs", "encode"),
      ...op.str("\u00ff\u0001"),
      ...op.str("latin1"),
      op.TUPLE2,
      op.REDUCE,
    ];
    const size = [
      ...op.global("torch", "Size"),
      ...[op.MARK, ...op.int(2), ...op.int(3), op.TUPLE],
      op.TUPLE1,
      op.REDUCE,
    ];
    const bytes = single(
      { v3, param, fromType, raw, size },
      { "0": le(Uint16Array.from([9, 10, 11, 12])), "1": f32(2.5) },
    );
    const checkpoint = await TorchCheckpoint.fromBytes(bytes, "t.ckpt");
    const t = await checkpoint.readTensors(collectTensors(checkpoint.root, "/"));
    expect(t.get("v3")).toEqual({ dtype: "uint16", shape: [3], data: Uint16Array.from([10, 11, 12]) });
    expect([...(t.get("param")?.data ?? [])]).toEqual([2.5]);
    expect(t.get("fromType")).toEqual({ dtype: "float32", shape: [], data: Float32Array.from([2.5]) });
    const root = checkpoint.root as PyDict;
    expect(toJsonValue(root.entries.get("raw") ?? null)).toEqual({ bytes: "ff01" });
    expect(toJsonValue(root.entries.get("size") ?? null)).toEqual({ tuple: [2, 3] });
  });

  it("keeps the OrderedDict BUILD state (_metadata) out of the items", async () => {
    const stateDict = [
      ...op.global("collections", "OrderedDict"),
      op.EMPTY_TUPLE,
      op.REDUCE,
      op.MARK,
      ...op.str("w"),
      ...tensorV2({ key: "0", numel: 1, size: [1] }),
      op.SETITEMS,
      ...[op.EMPTY_DICT, ...op.str("_metadata"), op.EMPTY_DICT, op.SETITEM, op.BUILD],
    ];
    const bytes = single({ state_dict: stateDict, epoch: op.int(3) }, { "0": f32(1) });
    const checkpoint = await TorchCheckpoint.fromBytes(bytes, "t.ckpt");
    expect([...collectTensors(checkpoint.root, "/").keys()]).toEqual(["state_dict/w"]);
  });

  it("refuses views past their storage, short and missing records, and huge expansions", async () => {
    const oob = single(
      { w: tensorV2({ key: "0", numel: 4, offset: 2, size: [3] }) },
      { "0": f32(1, 2, 3, 4) },
    );
    checkError(
      await failure(oob),
      CorruptFileError,
      "E_CORRUPT_FILE",
      /reaches element 4 of storage "0", which holds 4 float32 elements/,
    );
    const short = single({ w: tensorV2({ key: "0", numel: 4, size: [4] }) }, { "0": f32(1) });
    checkError(
      await failure(short),
      CorruptFileError,
      "E_CORRUPT_FILE",
      /holds 4 bytes but storage "0" declares 4 float32 elements \(16 bytes\)/,
    );
    const missing = single({ w: tensorV2({ key: "7", numel: 1, size: [1] }) }, {});
    checkError(await failure(missing), CorruptFileError, "E_CORRUPT_FILE", /no record "archive\/data\/7"/);
    const bomb = single(
      { w: tensorV2({ key: "0", numel: 1, size: [100000, 100000], stride: [0, 0] }) },
      { "0": f32(1) },
    );
    checkError(await failure(bomb), CorruptFileError, "E_CORRUPT_FILE", /more than the \d+-byte limit/);
    const shapes = single(
      { w: tensorV2({ key: "0", numel: 1, size: [1, 1], stride: [1] }) },
      { "0": f32(1) },
    );
    checkError(await failure(shapes), CorruptFileError, "E_CORRUPT_FILE", /differ in length/);
  });

  it("refuses calls, BUILDs and persistent ids outside the torch rules", async () => {
    const callStorage = single({ x: [...op.global("torch", "FloatStorage"), op.EMPTY_TUPLE, op.REDUCE] }, {});
    checkError(
      await failure(callStorage),
      UnsafePickleError,
      "E_UNSAFE_PICKLE",
      /REDUCE calls torch.FloatStorage, which may not be called/,
    );
    const buildGlobal = single({ x: [...op.global("torch", "FloatStorage"), op.EMPTY_DICT, op.BUILD] }, {});
    checkError(
      await failure(buildGlobal),
      UnsafePickleError,
      "E_UNSAFE_PICKLE",
      /BUILD would set state on torch.FloatStorage/,
    );
    const fromType = [...op.global("torch._tensor", "_rebuild_from_type_v2"), op.MARK];
    const args = [...op.global("torch._utils", "_rebuild_tensor_v2"), ...op.global("torch", "float32")];
    const subclass = single(
      { x: [...fromType, ...args, op.EMPTY_TUPLE, op.EMPTY_DICT, op.TUPLE, op.REDUCE] },
      {},
    );
    checkError(
      await failure(subclass),
      UnsafePickleError,
      "E_UNSAFE_PICKLE",
      /tensor subclass torch.float32 is not allowed/,
    );
    const quantized = single({ x: op.global("torch._utils", "_rebuild_qtensor") }, {});
    checkError(await failure(quantized), UnsupportedError, "E_UNSUPPORTED", /_rebuild_qtensor/);
    const badPid = single({ x: [...op.str("storage"), op.TUPLE1, op.BINPERSID] }, {});
    checkError(
      await failure(badPid),
      CorruptFileError,
      "E_CORRUPT_FILE",
      /is not a \('storage', type, key, location, numel\) tuple/,
    );
  });

  it("refuses files that are not torch checkpoints", async () => {
    checkError(
      await failure(Uint8Array.from([1, 2, 3, 4, 5])),
      CorruptFileError,
      "E_CORRUPT_FILE",
      /neither a zip archive nor a legacy torch pickle/,
    );
    const tar = new Uint8Array(1024);
    tar.set(Buffer.from("ustar"), 257);
    checkError(await failure(tar), UnsupportedError, "E_UNSUPPORTED", /tar-format torch checkpoints/);
    const noPickle = torchZip(dictPickle({}), {}, { folder: "a/b" });
    checkError(
      await failure(noPickle),
      CorruptFileError,
      "E_CORRUPT_FILE",
      /without a <folder>\/data.pkl record/,
    );
    const bigEndian = torchZip(
      dictPickle({}),
      {},
      { extra: [{ name: "archive/byteorder", data: Uint8Array.from(Buffer.from("big")) }] },
    );
    checkError(await failure(bigEndian), UnsupportedError, "E_UNSUPPORTED", /"big"-endian/);
  });
});
