/**
 * Safetensors reader and writer (format: https://github.com/huggingface/safetensors, "format" section).
 *
 * Layout: u64 little-endian header length N, N bytes of UTF-8 JSON, then the data section. The header
 * maps tensor names to {dtype, shape, data_offsets: [begin, end]} (relative to the data section) and may
 * hold `__metadata__: {string: string}`. Everything in the header is untrusted: it is validated field by
 * field, sizes are computed without overflow, and the tensors must tile the data section exactly (no
 * gaps, overlaps or trailing bytes) before any typed array is created. Data are little-endian, C order,
 * with no alignment guarantee, so tensors are copied out of the file rather than viewed in place.
 */
import { open } from "node:fs/promises";
import { CorruptFileError, FileNotFoundError, InvalidArgumentError } from "../errors.js";
import {
  BYTES_PER_ELEMENT,
  tensor,
  type DataTypeMap,
  type DType,
  type HostTensor,
  type Shape,
} from "../tensor.js";
import { writeFileAtomic } from "../util/atomic-write.js";

/** Header-length cap of the reference implementation (100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

/** safetensors dtype names (the format's spec) -> our dtypes. */
export const SAFETENSORS_DTYPES: Readonly<Record<string, DType>> = {
  BOOL: "bool",
  U8: "uint8",
  I8: "int8",
  F8_E5M2: "float8e5m2",
  F8_E4M3: "float8e4m3fn",
  I16: "int16",
  U16: "uint16",
  F16: "float16",
  BF16: "bfloat16",
  I32: "int32",
  U32: "uint32",
  F32: "float32",
  F64: "float64",
  I64: "int64",
  U64: "uint64",
};

const NAME_BY_DTYPE: Readonly<Record<DType, string>> = Object.fromEntries(
  Object.entries(SAFETENSORS_DTYPES).map(([name, dtype]) => [dtype, name]),
) as Record<DType, string>;

export interface SafetensorsEntry {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: Shape;
  /** Absolute byte offset of the tensor's data in the file. */
  readonly byteOffset: number;
  readonly byteLength: number;
}

export interface SafetensorsHeader {
  readonly metadata: Readonly<Record<string, string>>;
  /** Entries in header order. */
  readonly entries: ReadonlyMap<string, SafetensorsEntry>;
  /** Absolute offset of the data section (8 + header length). */
  readonly dataStart: number;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/**
 * Rewrites the header text so that JSON.parse sees what the reference's serde_json would accept: a
 * number literal that serde_json does not read as an unsigned integer (a fraction, an exponent, a
 * minus sign: "2.0", "1e3", "-0") becomes an object, which every field check then refuses (serde
 * refuses "2.0" for a usize; JSON.parse would give 2). A lone UTF-16 surrogate escape ("\ud800"),
 * which serde_json refuses and JSON.parse accepts, throws. Anything else is left for JSON.parse.
 */
function serdeCompatibleJson(text: string, path: string): string {
  let out = "";
  let last = 0;
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // A string: skip to its closing quote, checking \u surrogate escapes.
      i++;
      while (i < text.length && text.charCodeAt(i) !== 0x22) {
        if (text.charCodeAt(i) !== 0x5c) {
          i++;
          continue;
        }
        if (text[i + 1] === "u") {
          const unit = Number.parseInt(text.slice(i + 2, i + 6), 16);
          if (unit >= 0xd800 && unit <= 0xdbff) {
            const next =
              text.slice(i + 6, i + 8) === "\\u" ? Number.parseInt(text.slice(i + 8, i + 12), 16) : NaN;
            if (!(next >= 0xdc00 && next <= 0xdfff)) {
              throw new CorruptFileError(path, "the safetensors header has a lone surrogate \\u escape", 8);
            }
            i += 12;
            continue;
          }
          if (unit >= 0xdc00 && unit <= 0xdfff) {
            throw new CorruptFileError(path, "the safetensors header has a lone surrogate \\u escape", 8);
          }
        }
        i += 2;
      }
      i++;
      continue;
    }
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      NUMBER.lastIndex = i;
      const m = NUMBER.exec(text);
      if (m === null) return text; // not JSON: JSON.parse reports it
      const literal = m[0];
      if (/[-.eE]/u.test(literal)) {
        out += `${text.slice(last, i)}{"non-integer number":${JSON.stringify(literal)}}`;
        last = i + literal.length;
      }
      i += literal.length;
      continue;
    }
    i++;
  }
  return last === 0 ? text : out + text.slice(last);
}

/**
 * Validates a header against the file size. `headerBytes` are the N bytes after the length prefix.
 */
export function parseHeader(headerBytes: Uint8Array, fileSize: number, path: string): SafetensorsHeader {
  let text: string;
  try {
    // ignoreBOM: a leading U+FEFF stays in the text (serde_json refuses it; the decoder would strip it).
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch (cause) {
    throw new CorruptFileError(path, "the safetensors header is not valid UTF-8", 8, { cause });
  }
  let json: unknown;
  try {
    json = JSON.parse(serdeCompatibleJson(text, path));
  } catch (cause) {
    throw new CorruptFileError(path, `the safetensors header is not valid JSON (${String(cause)})`, 8, {
      cause,
    });
  }
  if (!isRecord(json)) throw new CorruptFileError(path, "the safetensors header is not a JSON object", 8);

  const dataStart = 8 + headerBytes.length;
  const dataSize = fileSize - dataStart;
  // No prototype: a "__proto__" metadata key is kept as data.
  const metadata: Record<string, string> = Object.create(null) as Record<string, string>;
  const entries = new Map<string, SafetensorsEntry>();
  const spans: { name: string; begin: number; end: number }[] = [];

  for (const [name, value] of Object.entries(json)) {
    if (name === "__metadata__") {
      if (value === null) continue; // serde: Option<HashMap> null = no metadata
      if (!isRecord(value)) throw new CorruptFileError(path, "__metadata__ must be an object of strings", 8);
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== "string") {
          throw new CorruptFileError(
            path,
            `__metadata__ value for "${k}" must be a string, got ${typeof v}`,
            8,
          );
        }
        metadata[k] = v;
      }
      continue;
    }
    const bad = (reason: string): CorruptFileError =>
      new CorruptFileError(path, `tensor "${name}": ${reason}`, 8);
    if (!isRecord(value)) throw bad("entry is not an object");
    const dtypeName = value["dtype"];
    const dtype = typeof dtypeName === "string" ? SAFETENSORS_DTYPES[dtypeName] : undefined;
    if (dtype === undefined) {
      throw bad(
        `unknown dtype ${JSON.stringify(dtypeName)} (expected one of ${Object.keys(SAFETENSORS_DTYPES).join(", ")})`,
      );
    }
    const shape = value["shape"];
    if (!Array.isArray(shape) || !shape.every((d): d is number => Number.isSafeInteger(d) && d >= 0)) {
      throw bad(`shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    const offsets = value["data_offsets"];
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o): o is number => Number.isSafeInteger(o) && o >= 0)
    ) {
      throw bad(`data_offsets must be [begin, end] non-negative integers, got ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    // Size product with an overflow check at every step (safe integers stop at 2^53).
    let bytes = BYTES_PER_ELEMENT[dtype];
    for (const d of shape) {
      bytes *= d;
      if (!Number.isSafeInteger(bytes))
        throw bad(`shape ${JSON.stringify(shape)} overflows the addressable size`);
    }
    if (end < begin) throw bad(`data_offsets [${begin}, ${end}] end before they begin`);
    if (end - begin !== bytes) {
      throw bad(
        `${dtypeName} ${JSON.stringify(shape)} needs ${bytes} bytes but data_offsets span ${end - begin}`,
      );
    }
    if (end > dataSize) {
      throw bad(`data_offsets [${begin}, ${end}] run past the end of the data section (${dataSize} bytes)`);
    }
    entries.set(name, { name, dtype, shape, byteOffset: dataStart + begin, byteLength: bytes });
    spans.push({ name, begin, end });
  }

  // The non-empty tensors must tile the data section exactly.
  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const span of spans) {
    if (span.begin !== cursor) {
      const what =
        span.begin < cursor ? "overlaps the previous tensor" : `leaves a gap of ${span.begin - cursor} bytes`;
      throw new CorruptFileError(
        path,
        `tensor "${span.name}" at data offset ${span.begin} ${what}`,
        dataStart + span.begin,
      );
    }
    cursor = span.end;
  }
  if (cursor !== dataSize) {
    throw new CorruptFileError(
      path,
      `the data section has ${dataSize - cursor} bytes not covered by any tensor (trailing bytes or truncated header)`,
      dataStart + cursor,
    );
  }
  return { metadata, entries, dataStart };
}

function headerLength(prefix: Uint8Array, fileSize: number, path: string): number {
  if (fileSize < 8)
    throw new CorruptFileError(path, `file is ${fileSize} bytes, too short for a safetensors header`, 0);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new CorruptFileError(path, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`, 0);
  }
  const length = Number(n);
  if (8 + length > fileSize) {
    throw new CorruptFileError(
      path,
      `header length ${length} runs past the end of the ${fileSize}-byte file`,
      0,
    );
  }
  return length;
}

/** Decodes little-endian bytes into a fresh typed array of the entry's dtype (copies: no alignment needed). */
function decode<D extends DType>(dtype: D, shape: Shape, bytes: Uint8Array): HostTensor<D> {
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  const n = bytes.byteLength / BYTES_PER_ELEMENT[dtype];
  const buffer = copy.buffer;
  const views: { [K in DType]: () => DataTypeMap[K] } = {
    float32: () => new Float32Array(buffer, 0, n),
    float64: () => new Float64Array(buffer, 0, n),
    float16: () => new Uint16Array(buffer, 0, n),
    bfloat16: () => new Uint16Array(buffer, 0, n),
    int64: () => new BigInt64Array(buffer, 0, n),
    int32: () => new Int32Array(buffer, 0, n),
    int16: () => new Int16Array(buffer, 0, n),
    int8: () => new Int8Array(buffer, 0, n),
    uint8: () => copy,
    uint16: () => new Uint16Array(buffer, 0, n),
    uint32: () => new Uint32Array(buffer, 0, n),
    uint64: () => new BigUint64Array(buffer, 0, n),
    float8e4m3fn: () => copy,
    float8e5m2: () => copy,
    bool: () => copy,
  };
  return tensor(dtype, shape, views[dtype]());
}

/** Parses a whole safetensors file held in memory. */
export function parseSafetensors(
  bytes: Uint8Array,
  path = "<buffer>",
): { metadata: Readonly<Record<string, string>>; tensors: Map<string, HostTensor> } {
  const n = headerLength(bytes.subarray(0, 8), bytes.byteLength, path);
  const header = parseHeader(bytes.subarray(8, 8 + n), bytes.byteLength, path);
  const tensors = new Map<string, HostTensor>();
  for (const e of header.entries.values()) {
    tensors.set(e.name, decode(e.dtype, e.shape, bytes.subarray(e.byteOffset, e.byteOffset + e.byteLength)));
  }
  return { metadata: header.metadata, tensors };
}

/** An open safetensors file: the validated header, and tensors read one at a time on demand. */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    readonly header: SafetensorsHeader,
    readonly fileSize: number,
  ) {}

  static async open(path: string): Promise<SafetensorsFile> {
    let handle;
    try {
      handle = await open(path, "r");
    } catch (cause) {
      throw new FileNotFoundError(path, "safetensors file", { cause });
    }
    try {
      const { size } = await handle.stat();
      const prefix = new Uint8Array(8);
      await handle.read(prefix, 0, Math.min(8, size), 0);
      const n = headerLength(prefix, size, path);
      const headerBytes = new Uint8Array(n);
      await handle.read(headerBytes, 0, n, 8);
      return new SafetensorsFile(path, parseHeader(headerBytes, size, path), size);
    } finally {
      await handle.close();
    }
  }

  get metadata(): Readonly<Record<string, string>> {
    return this.header.metadata;
  }

  keys(): string[] {
    return [...this.header.entries.keys()];
  }

  has(name: string): boolean {
    return this.header.entries.has(name);
  }

  info(name: string): SafetensorsEntry | undefined {
    return this.header.entries.get(name);
  }

  /** Reads one tensor; throws InvalidArgumentError for an unknown name. */
  async read(name: string): Promise<HostTensor> {
    const entry = this.header.entries.get(name);
    if (entry === undefined) {
      throw new InvalidArgumentError(
        "tensor name",
        `one of the ${this.header.entries.size} tensors in ${this.path}`,
        name,
      );
    }
    const bytes = new Uint8Array(entry.byteLength);
    if (entry.byteLength > 0) {
      const handle = await open(this.path, "r");
      try {
        const { bytesRead } = await handle.read(bytes, 0, entry.byteLength, entry.byteOffset);
        if (bytesRead !== entry.byteLength) {
          throw new CorruptFileError(
            this.path,
            `tensor "${name}" is truncated (file changed while reading?)`,
            entry.byteOffset,
          );
        }
      } finally {
        await handle.close();
      }
    }
    return decode(entry.dtype, entry.shape, bytes);
  }

  async readAll(): Promise<Map<string, HostTensor>> {
    const out = new Map<string, HostTensor>();
    for (const name of this.header.entries.keys()) out.set(name, await this.read(name));
    return out;
  }
}

export function openSafetensors(path: string): Promise<SafetensorsFile> {
  return SafetensorsFile.open(path);
}

export async function readSafetensors(path: string): Promise<Map<string, HostTensor>> {
  return (await SafetensorsFile.open(path)).readAll();
}

/** Serialises tensors (in the given order, header padded with spaces to 8 bytes). */
export function serializeSafetensors(
  tensors: ReadonlyMap<string, HostTensor> | Readonly<Record<string, HostTensor>>,
  metadata?: Readonly<Record<string, string>>,
): Uint8Array {
  const list: [string, HostTensor][] =
    tensors instanceof Map
      ? [...(tensors as ReadonlyMap<string, HostTensor>).entries()]
      : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (metadata !== undefined && Object.keys(metadata).length > 0) header["__metadata__"] = metadata;
  let offset = 0;
  for (const [name, t] of list) {
    if (name === "__metadata__")
      throw new InvalidArgumentError("tensor name", "a name other than __metadata__", name);
    const byteLength = t.data.byteLength;
    header[name] = {
      dtype: NAME_BY_DTYPE[t.dtype],
      shape: t.shape,
      data_offsets: [offset, offset + byteLength],
    };
    offset += byteLength;
  }
  const headerBytes = new TextEncoder().encode(JSON.stringify(header));
  const padding = (8 - (headerBytes.length % 8)) % 8;
  const out = new Uint8Array(8 + headerBytes.length + padding + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length + padding), true);
  out.set(headerBytes, 8);
  out.fill(0x20, 8 + headerBytes.length, 8 + headerBytes.length + padding);
  let cursor = 8 + headerBytes.length + padding;
  for (const [, t] of list) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), cursor);
    cursor += t.data.byteLength;
  }
  return out;
}

/** Writes a safetensors file atomically (temp file in the same folder, then rename). */
export async function writeSafetensors(
  path: string,
  tensors: ReadonlyMap<string, HostTensor> | Readonly<Record<string, HostTensor>>,
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  const bytes = serializeSafetensors(tensors, metadata);
  await writeFileAtomic(path, bytes, { createParents: false });
}
