/**
 * A minimal ZIP reader for torch.save archives (PKWARE APPNOTE 6.3: end-of-central-directory record,
 * ZIP64 locator and record, central directory file headers, local file headers).
 *
 * torch writes entries "stored" (method 0), with zero sizes in the local headers (flag 0x08: the sizes
 * live in the data descriptor and the central directory), a padding extra field that only the local
 * header carries (64-byte data alignment), and ZIP64 end records even in tiny files. So the central
 * directory is the only source of truth: it is found from the end of the file, and every offset and
 * size in it is checked against the file before anything is read. Compressed or encrypted entries are
 * refused (torch never writes them).
 */
import { crc32 } from "node:zlib";
import { CorruptFileError, UnsupportedError } from "../../errors.js";
import type { ByteSource } from "./byte-source.js";

export interface ZipEntry {
  readonly name: string;
  /** 0 = stored, 8 = deflate, ... */
  readonly method: number;
  readonly flags: number;
  readonly crc32: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly localHeaderOffset: number;
}

export interface ZipDirectory {
  readonly entries: ReadonlyMap<string, ZipEntry>;
  /** Where the central directory starts: every entry's data must end at or before it. */
  readonly dataLimit: number;
}

const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;
const EOCD_SIZE = 22;
const MAX_COMMENT = 0xffff;

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function u64(dv: DataView, at: number, path: string, fileOffset: number): number {
  const value = dv.getBigUint64(at, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new CorruptFileError(
      path,
      `ZIP64 field value ${value} is beyond any real file size`,
      fileOffset + at,
    );
  }
  return Number(value);
}

interface EndRecord {
  entries: number;
  cdSize: number;
  cdOffset: number;
  /** Offset of the first end record (ZIP64 record if present, else the classic one). */
  end: number;
}

async function readEndRecord(source: ByteSource): Promise<EndRecord> {
  const { path, size } = source;
  if (size < EOCD_SIZE)
    throw new CorruptFileError(path, `file is ${size} bytes, too small to be a zip archive`, 0);
  const tailLength = Math.min(size, EOCD_SIZE + MAX_COMMENT + 20);
  const tailStart = size - tailLength;
  const tail = await source.read(tailStart, tailLength, "zip end records");
  const dv = view(tail);
  let at = -1;
  for (let p = tailLength - EOCD_SIZE; p >= 0; p--) {
    if (dv.getUint32(p, true) === SIG_EOCD && p + EOCD_SIZE + dv.getUint16(p + 20, true) <= tailLength) {
      at = p;
      break;
    }
  }
  if (at < 0) {
    throw new CorruptFileError(
      path,
      "no end-of-central-directory record: the zip archive is truncated or this is not a zip file",
      size,
      { hint: "the download was probably cut short: download the checkpoint again" },
    );
  }
  const eocd = tailStart + at;
  const diskNumber = dv.getUint16(at + 4, true);
  const cdDisk = dv.getUint16(at + 6, true);
  let entries = dv.getUint16(at + 10, true);
  let cdSize = dv.getUint32(at + 12, true);
  let cdOffset = dv.getUint32(at + 16, true);
  let end = eocd;
  const hasLocator = at >= 20 && dv.getUint32(at - 20, true) === SIG_ZIP64_LOCATOR;
  if (hasLocator) {
    const locator = eocd - 20;
    const recordOffset = u64(dv, at - 20 + 8, path, tailStart);
    if (recordOffset + 56 > locator) {
      throw new CorruptFileError(
        path,
        `ZIP64 end record offset ${recordOffset} points past its locator`,
        locator,
      );
    }
    const record = view(await source.read(recordOffset, 56, "ZIP64 end-of-central-directory record"));
    if (record.getUint32(0, true) !== SIG_ZIP64_EOCD) {
      throw new CorruptFileError(
        path,
        "the ZIP64 locator does not point at a ZIP64 end record",
        recordOffset,
      );
    }
    if (record.getUint32(16, true) !== 0 || record.getUint32(20, true) !== 0) {
      throw new UnsupportedError(`multi-disk zip archive ${path}`);
    }
    entries = u64(record, 32, path, recordOffset);
    cdSize = u64(record, 40, path, recordOffset);
    cdOffset = u64(record, 48, path, recordOffset);
    end = recordOffset;
  } else {
    if (entries === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      throw new CorruptFileError(
        path,
        "the end record asks for ZIP64 values but there is no ZIP64 locator",
        eocd,
      );
    }
    if (diskNumber !== 0 || cdDisk !== 0) throw new UnsupportedError(`multi-disk zip archive ${path}`);
  }
  if (cdOffset + cdSize > end) {
    throw new CorruptFileError(
      path,
      `central directory (${cdSize} bytes at ${cdOffset}) overlaps the end records at ${end}`,
      cdOffset,
    );
  }
  if (entries * 46 > cdSize) {
    throw new CorruptFileError(
      path,
      `${entries} entries cannot fit in a ${cdSize}-byte central directory`,
      cdOffset,
    );
  }
  return { entries, cdSize, cdOffset, end };
}

/** Reads and validates the central directory. */
export async function readZipDirectory(source: ByteSource): Promise<ZipDirectory> {
  const { path } = source;
  const { entries: count, cdSize, cdOffset } = await readEndRecord(source);
  const cd = await source.read(cdOffset, cdSize, "zip central directory");
  const dv = view(cd);
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  const latin1 = new TextDecoder("latin1");
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    const here = cdOffset + p;
    if (p + 46 > cdSize || dv.getUint32(p, true) !== SIG_CENTRAL) {
      throw new CorruptFileError(
        path,
        `central directory entry ${i} of ${count} is missing or damaged`,
        here,
      );
    }
    const flags = dv.getUint16(p + 8, true);
    const method = dv.getUint16(p + 10, true);
    const crc = dv.getUint32(p + 16, true);
    let compressedSize = dv.getUint32(p + 20, true);
    let size = dv.getUint32(p + 24, true);
    const nameLength = dv.getUint16(p + 28, true);
    const extraLength = dv.getUint16(p + 30, true);
    const commentLength = dv.getUint16(p + 32, true);
    let localHeaderOffset = dv.getUint32(p + 42, true);
    const next = p + 46 + nameLength + extraLength + commentLength;
    if (next > cdSize)
      throw new CorruptFileError(path, `central directory entry ${i} runs past the directory`, here);
    const nameBytes = cd.subarray(p + 46, p + 46 + nameLength);
    let name: string;
    try {
      name = (flags & 0x800) !== 0 ? utf8.decode(nameBytes) : latin1.decode(nameBytes);
    } catch (cause) {
      throw new CorruptFileError(path, `central directory entry ${i} has a name that is not UTF-8`, here, {
        cause,
      });
    }
    // ZIP64 extended information: 8-byte values for exactly the fields that hold 0xFFFFFFFF, in order.
    let e = p + 46 + nameLength;
    const extraEnd = e + extraLength;
    while (e + 4 <= extraEnd) {
      const id = dv.getUint16(e, true);
      const length = dv.getUint16(e + 2, true);
      if (e + 4 + length > extraEnd)
        throw new CorruptFileError(path, `"${name}": extra field runs past its entry`, here);
      if (id === 0x0001) {
        let q = e + 4;
        const take = (): number => {
          if (q + 8 > e + 4 + length)
            throw new CorruptFileError(path, `"${name}": ZIP64 extra field too short`, here);
          const value = u64(dv, q, path, cdOffset);
          q += 8;
          return value;
        };
        if (size === 0xffffffff) size = take();
        if (compressedSize === 0xffffffff) compressedSize = take();
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = take();
      }
      e += 4 + length;
    }
    if (entries.has(name)) throw new CorruptFileError(path, `the archive holds "${name}" twice`, here);
    if (localHeaderOffset + 30 > cdOffset) {
      throw new CorruptFileError(
        path,
        `"${name}": local header offset ${localHeaderOffset} is past the data area`,
        here,
      );
    }
    entries.set(name, { name, method, flags, crc32: crc, compressedSize, size, localHeaderOffset });
    p = next;
  }
  return { entries, dataLimit: cdOffset };
}

/** Absolute offset of an entry's data, after checking its local header. */
export async function zipEntryDataOffset(
  source: ByteSource,
  dir: ZipDirectory,
  entry: ZipEntry,
): Promise<number> {
  const { path } = source;
  const at = entry.localHeaderOffset;
  const nameBytes = new TextEncoder().encode(entry.name);
  const header = await source.read(
    at,
    Math.min(30 + nameBytes.length, dir.dataLimit - at),
    `local header of "${entry.name}"`,
  );
  const dv = view(header);
  if (header.length < 30 || dv.getUint32(0, true) !== SIG_LOCAL) {
    throw new CorruptFileError(path, `"${entry.name}": no local file header where the directory says`, at);
  }
  const nameLength = dv.getUint16(26, true);
  const extraLength = dv.getUint16(28, true);
  const dataOffset = at + 30 + nameLength + extraLength;
  if (dataOffset + entry.compressedSize > dir.dataLimit) {
    throw new CorruptFileError(
      path,
      `"${entry.name}": ${entry.compressedSize} bytes of data at ${dataOffset} run into the central directory`,
      dataOffset,
    );
  }
  return dataOffset;
}

/** Checks that an entry can be read as-is (stored, unencrypted) and returns its data location. */
export async function storedEntryRange(
  source: ByteSource,
  dir: ZipDirectory,
  entry: ZipEntry,
): Promise<{ offset: number; length: number }> {
  if ((entry.flags & 0x1) !== 0)
    throw new UnsupportedError(`encrypted zip entry "${entry.name}" in ${source.path}`);
  if (entry.method !== 0) {
    throw new UnsupportedError(
      `zip entry "${entry.name}" in ${source.path} is compressed (method ${entry.method})`,
      {
        hint: "torch.save writes stored entries; re-save the checkpoint with torch.save or convert it to .safetensors",
      },
    );
  }
  if (entry.compressedSize !== entry.size) {
    throw new CorruptFileError(
      source.path,
      `stored entry "${entry.name}" has different sizes`,
      entry.localHeaderOffset,
    );
  }
  return { offset: await zipEntryDataOffset(source, dir, entry), length: entry.size };
}

/** Reads a whole stored entry and verifies its CRC-32; `offset` is where its data start in the file. */
export async function readZipEntry(
  source: ByteSource,
  dir: ZipDirectory,
  entry: ZipEntry,
): Promise<{ bytes: Uint8Array; offset: number }> {
  const { offset, length } = await storedEntryRange(source, dir, entry);
  const bytes = await source.read(offset, length, `zip entry "${entry.name}"`);
  verifyCrc(source.path, entry, bytes, offset);
  return { bytes, offset };
}

export function verifyCrc(path: string, entry: ZipEntry, bytes: Uint8Array, offset: number): void {
  const actual = crc32(bytes) >>> 0;
  if (actual !== entry.crc32) {
    throw new CorruptFileError(
      path,
      `"${entry.name}" fails its CRC-32 check (0x${actual.toString(16)}, directory says 0x${entry.crc32.toString(16)})`,
      offset,
    );
  }
}
