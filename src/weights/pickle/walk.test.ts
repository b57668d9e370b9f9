import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  dictPickle,
  le,
  op,
  pk,
  tensorV2,
  torchZip,
  type Bytes,
} from "../../../test/helpers/torch-archive.js";
import { CorruptFileError, FileNotFoundError } from "../../errors.js";
import { TorchCheckpoint } from "./checkpoint.js";
import { collectTensors, readTorchCheckpoint, readTorchStateDict, toJsonValue } from "./index.js";

const f32 = (...xs: number[]): Uint8Array => le(Float32Array.from(xs));
const single = (items: Record<string, Bytes>, storages: Record<string, Uint8Array>): Uint8Array =>
  torchZip(dictPickle(items), storages);

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

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe("readTorchStateDict / readTorchCheckpoint", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "sf-pickle-"));
    const stateDict = [
      op.EMPTY_DICT,
      op.MARK,
      ...op.str("model.w"),
      ...tensorV2({ key: "0", numel: 2, size: [2] }),
      op.SETITEMS,
    ];
    const optimizer = [op.EMPTY_LIST, ...tensorV2({ key: "1", numel: 1, size: [1] }), op.APPEND];
    await writeFile(
      join(dir, "wrapped.ckpt"),
      single(
        { state_dict: stateDict, optimizer_states: optimizer, global_step: op.int(5) },
        { "0": f32(1, 2), "1": f32(3) },
      ),
    );
    await writeFile(
      join(dir, "plain.pth"),
      single({ "control_model.w": tensorV2({ key: "0", numel: 1, size: [1] }) }, { "0": f32(4) }),
    );
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("selects state_dict when the file wraps it, and the top level otherwise", async () => {
    expect([...(await readTorchStateDict(join(dir, "wrapped.ckpt"))).keys()]).toEqual(["model.w"]);
    expect([...(await readTorchStateDict(join(dir, "plain.pth"))).keys()]).toEqual(["control_model.w"]);
  });

  it("names every tensor by its container path", async () => {
    const all = await readTorchCheckpoint(join(dir, "wrapped.ckpt"));
    expect([...all.keys()]).toEqual(["state_dict/model.w", "optimizer_states/0"]);
    expect([...(all.get("optimizer_states/0")?.data ?? [])]).toEqual([3]);
  });

  it("reports a missing file as FileNotFoundError", async () => {
    const error = await readTorchStateDict(join(dir, "nope.ckpt")).catch((e: unknown) => e);
    checkError(error, FileNotFoundError, "E_FILE_NOT_FOUND", /PyTorch checkpoint not found/);
  });
});

describe("walking hostile object graphs", () => {
  it("survives cycles and refuses shared-list bombs when converting to JSON", async () => {
    // l = [l]: a list that contains itself.
    const cyclic = pk(op.proto(2), op.EMPTY_LIST, op.binput(0), op.binget(0), op.APPEND, op.STOP);
    const checkpoint = await TorchCheckpoint.fromBytes(torchZip(cyclic, {}), "t.ckpt");
    expect(collectTensors(checkpoint.root).size).toBe(0);
    checkError(
      thrown(() => toJsonValue(checkpoint.root)),
      CorruptFileError,
      "E_CORRUPT_FILE",
      /nested deeper than 1000/,
    );
    // x0 = []; x(k+1) = [xk, xk]: 2^40 leaves from a few hundred bytes.
    const parts: Bytes[] = [[op.EMPTY_LIST, ...op.binput(0)]];
    for (let k = 0; k < 40; k++)
      parts.push([op.MARK, ...op.binget(k % 2), ...op.binget(k % 2), op.LIST, ...op.binput((k + 1) % 2)]);
    const bomb = await TorchCheckpoint.fromBytes(torchZip(pk(op.proto(2), ...parts, op.STOP), {}), "t.ckpt");
    checkError(
      thrown(() => toJsonValue(bomb.root)),
      CorruptFileError,
      "E_CORRUPT_FILE",
      /expands to more than/,
    );
  });
});
