import { describe, expect, it } from "vitest";
import { u32, zipArchive, type ZipOptions } from "../../../test/helpers/torch-archive.js";
import { CorruptFileError, UnsupportedError } from "../../errors.js";
import { memorySource } from "./byte-source.js";
import { readZipDirectory, readZipEntry, zipEntryDataOffset } from "./zip-reader.js";

const entries = [
  { name: "ckpt/data.pkl", data: Uint8Array.from([0x80, 0x02, 0x4e, 0x2e]) },
  { name: "ckpt/data/0", data: Uint8Array.from({ length: 100 }, (_, i) => i) },
  { name: "ckpt/version", data: Uint8Array.from([0x33, 0x0a]) },
];

async function readAll(bytes: Uint8Array): Promise<Map<string, Uint8Array>> {
  const source = memorySource(bytes, "t.zip");
  const dir = await readZipDirectory(source);
  const out = new Map<string, Uint8Array>();
  for (const entry of dir.entries.values())
    out.set(entry.name, (await readZipEntry(source, dir, entry)).bytes);
  return out;
}

async function rejection(bytes: Uint8Array): Promise<unknown> {
  try {
    await readAll(bytes);
  } catch (error) {
    return error;
  }
  return undefined;
}

function expectCorrupt(error: unknown, fragment: RegExp): void {
  expect(error).toBeInstanceOf(CorruptFileError);
  expect((error as CorruptFileError).code).toBe("E_CORRUPT_FILE");
  expect((error as CorruptFileError).message).toMatch(fragment);
}

/** Offset of the last occurrence of a 4-byte little-endian signature. */
function lastSignature(bytes: Uint8Array, signature: number): number {
  const sig = u32(signature);
  for (let i = bytes.length - 4; i >= 0; i--) if (sig.every((b, k) => bytes[i + k] === b)) return i;
  return -1;
}

describe("readZipDirectory / readZipEntry", () => {
  it.each<[string, ZipOptions]>([
    ["torch layout (data descriptors, zero local sizes, 64-byte alignment)", {}],
    ["ZIP64 fields and end records", { zip64: true }],
    [
      "plain local headers, no padding, an archive comment",
      { descriptor: false, align: 0, comment: "hello" },
    ],
  ])("reads stored entries: %s", async (_label, options) => {
    const files = await readAll(zipArchive(entries, options));
    expect([...files.keys()]).toEqual(entries.map((e) => e.name));
    for (const e of entries) expect(files.get(e.name)).toEqual(e.data);
  });

  it("finds data through the local header's own extra field (64-byte aligned)", async () => {
    const bytes = zipArchive(entries);
    const source = memorySource(bytes, "t.zip");
    const dir = await readZipDirectory(source);
    for (const entry of dir.entries.values())
      expect((await zipEntryDataOffset(source, dir, entry)) % 64).toBe(0);
  });

  it("refuses a truncated archive (no end record)", async () => {
    const bytes = zipArchive(entries);
    expectCorrupt(await rejection(bytes.subarray(0, 200)), /no end-of-central-directory record/);
    expectCorrupt(await rejection(bytes.subarray(0, 10)), /too small to be a zip/);
  });

  it("refuses a central directory outside the file", async () => {
    const bytes = zipArchive(entries);
    const eocd = lastSignature(bytes, 0x06054b50);
    bytes.set(u32(bytes.length), eocd + 16); // central directory offset past the end
    expectCorrupt(await rejection(bytes), /central directory .* overlaps the end records/);
  });

  it("refuses entries whose data would run into the central directory", async () => {
    const bytes = zipArchive(entries, { descriptor: false, align: 0 });
    const central = lastSignature(bytes, 0x02014b50); // the last entry's central header
    bytes.set(u32(0x7fffffff), central + 20);
    bytes.set(u32(0x7fffffff), central + 24);
    expectCorrupt(await rejection(bytes), /run into the central directory/);
  });

  it("refuses a local header offset past the data area", async () => {
    const bytes = zipArchive(entries);
    const central = lastSignature(bytes, 0x02014b50);
    bytes.set(u32(bytes.length - 10), central + 42);
    expectCorrupt(await rejection(bytes), /local header offset .* past the data area/);
  });

  it("refuses a damaged central directory entry", async () => {
    const bytes = zipArchive(entries);
    bytes.set(u32(0x12345678), lastSignature(bytes, 0x02014b50));
    expectCorrupt(await rejection(bytes), /central directory entry 2 of 3 is missing or damaged/);
  });

  it("detects data corruption with the CRC-32", async () => {
    const bytes = zipArchive(entries);
    const source = memorySource(bytes, "t.zip");
    const dir = await readZipDirectory(source);
    const entry = dir.entries.get("ckpt/data/0");
    if (entry === undefined) throw new Error("entry missing");
    const at = (await zipEntryDataOffset(source, dir, entry)) + 5;
    bytes[at] = (bytes[at] ?? 0) ^ 0xff;
    expectCorrupt(await rejection(bytes), /"ckpt\/data\/0" fails its CRC-32 check/);
  });

  it("refuses duplicate names", async () => {
    const duplicate = { name: "ckpt/data.pkl", data: Uint8Array.from([0]) };
    expectCorrupt(await rejection(zipArchive([...entries, duplicate])), /holds "ckpt\/data.pkl" twice/);
  });

  it("refuses compressed entries as unsupported, with a hint", async () => {
    const error = await rejection(
      zipArchive([{ name: "a/data.pkl", data: Uint8Array.from([1]), method: 8 }]),
    );
    expect(error).toBeInstanceOf(UnsupportedError);
    expect((error as UnsupportedError).code).toBe("E_UNSUPPORTED");
    expect((error as UnsupportedError).message).toMatch(/compressed \(method 8\).*torch.save/);
  });
});
