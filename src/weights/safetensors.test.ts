import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CorruptFileError, FileNotFoundError, InvalidArgumentError } from "../errors.js";
import { tensor, type HostTensor } from "../tensor.js";
import {
  openSafetensors,
  parseSafetensors,
  readSafetensors,
  serializeSafetensors,
  writeSafetensors,
} from "./safetensors.js";

function fileWithHeader(header: unknown, dataBytes: number, rawHeader?: string): Uint8Array {
  const json = new TextEncoder().encode(rawHeader ?? JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

describe("safetensors", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "sf-st-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("round-trips every dtype through write and read", async () => {
    const tensors = new Map<string, HostTensor>([
      ["f32", tensor("float32", [2, 2], new Float32Array([1, -2, 3.5, 0]))],
      ["i64", tensor("int64", [3], new BigInt64Array([5n, -2n, 1099511627776n]))],
      ["f16", tensor("float16", [1], new Uint16Array([0x3c00]))],
      ["u8", tensor("uint8", [2], new Uint8Array([0, 255]))],
      ["scalar", tensor("float64", [], new Float64Array([Math.PI]))],
      ["empty", tensor("float32", [0, 4])],
    ]);
    const path = join(dir, "all.safetensors");
    await writeSafetensors(path, tensors, { format: "pt" });
    const file = await openSafetensors(path);
    expect(file.metadata).toEqual({ format: "pt" });
    expect(file.keys()).toEqual([...tensors.keys()]);
    expect(file.info("f32")?.shape).toEqual([2, 2]);
    const read = await readSafetensors(path);
    for (const [name, t] of tensors) {
      expect(read.get(name)?.dtype).toBe(t.dtype);
      expect(read.get(name)?.shape).toEqual(t.shape);
      expect([...(read.get(name)?.data ?? [])]).toEqual([...t.data]);
    }
    expect((await readdir(dir)).filter((f) => f.includes(".tmp-"))).toEqual([]);
  });

  it("pads the header to a multiple of 8 bytes", () => {
    const bytes = serializeSafetensors({ x: tensor("float32", [1], new Float32Array([1])) });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    expect(bytes.length).toBe(8 + n + 4);
  });

  it("reads tensors at unaligned offsets", () => {
    const header = { x: { dtype: "F32", shape: [1], data_offsets: [0, 4] } };
    const raw = JSON.stringify(header) + " "; // odd length: data starts unaligned
    const bytes = fileWithHeader(undefined, 4, raw);
    new DataView(bytes.buffer).setFloat32(8 + raw.length, 2.5, true);
    expect([...(parseSafetensors(bytes).tensors.get("x")?.data ?? [])]).toEqual([2.5]);
  });

  it.each([
    ["a short file", new Uint8Array(5), "too short"],
    ["a header past the end", fileWithHeader({}, 0, "{}").subarray(0, 9), "runs past the end"],
    ["bad JSON", fileWithHeader(undefined, 0, "{nope"), "not valid JSON"],
    [
      "an unknown dtype",
      fileWithHeader({ w: { dtype: "F33", shape: [1], data_offsets: [0, 4] } }, 4),
      'unknown dtype "F33"',
    ],
    [
      "a wrong byte length",
      fileWithHeader({ w: { dtype: "F32", shape: [2], data_offsets: [0, 4] } }, 4),
      "needs 8 bytes",
    ],
    [
      "offsets past the data",
      fileWithHeader({ w: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }, 4),
      "run past the end",
    ],
    [
      "trailing bytes",
      fileWithHeader({ w: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, 8),
      "not covered",
    ],
    ["non-string metadata", fileWithHeader({ __metadata__: { a: 1 } }, 0), "must be a string"],
  ])("refuses %s with CorruptFileError", (_what, bytes, fragment) => {
    expect(() => parseSafetensors(bytes, "bad.safetensors")).toThrow(CorruptFileError);
    expect(() => parseSafetensors(bytes, "bad.safetensors")).toThrow(fragment);
  });

  it("refuses a header length with high bits set before allocating", () => {
    const bytes = new Uint8Array(16);
    new DataView(bytes.buffer).setBigUint64(0, 1n << 40n, true);
    expect(() => parseSafetensors(bytes)).toThrow("exceeds the 100000000-byte limit");
  });

  it("names a missing file and an unknown tensor", async () => {
    await expect(openSafetensors(join(dir, "nope.safetensors"))).rejects.toThrow(FileNotFoundError);
    const path = join(dir, "one.safetensors");
    await writeFile(path, serializeSafetensors({ a: tensor("float32", [1]) }));
    const file = await openSafetensors(path);
    await expect(file.read("b")).rejects.toThrow(InvalidArgumentError);
  });
});
