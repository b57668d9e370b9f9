/**
 * Test helpers that write pickles and torch.save-style zip archives byte by byte, so the safe loader
 * can be tested on inputs torch would never produce (and on ones it would) without Python.
 */
import { crc32 } from "node:zlib";

export type Bytes = readonly number[];

const ascii = (s: string): number[] => [...Buffer.from(s, "utf8")];
export const u16 = (n: number): number[] => [n & 0xff, (n >>> 8) & 0xff];
export const u32 = (n: number): number[] => [
  n & 0xff,
  (n >>> 8) & 0xff,
  (n >>> 16) & 0xff,
  (n >>> 24) & 0xff,
];
export const u64 = (n: number): number[] => [...u32(n % 2 ** 32), ...u32(Math.floor(n / 2 ** 32))];

/** Concatenates opcodes and byte arrays into one pickle. */
export function pk(...parts: (number | Bytes)[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((p) => (typeof p === "number" ? [p] : [...p])));
}

/** Pickle opcodes and argument encoders (names from CPython's pickletools). */
export const op = {
  proto: (v = 2): number[] => [0x80, v],
  STOP: 0x2e,
  MARK: 0x28,
  POP: 0x30,
  POP_MARK: 0x31,
  DUP: 0x32,
  NONE: 0x4e,
  NEWTRUE: 0x88,
  NEWFALSE: 0x89,
  EMPTY_LIST: 0x5d,
  EMPTY_DICT: 0x7d,
  EMPTY_TUPLE: 0x29,
  EMPTY_SET: 0x8f,
  APPEND: 0x61,
  APPENDS: 0x65,
  LIST: 0x6c,
  TUPLE: 0x74,
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  DICT: 0x64,
  SETITEM: 0x73,
  SETITEMS: 0x75,
  ADDITEMS: 0x90,
  FROZENSET: 0x91,
  REDUCE: 0x52,
  BUILD: 0x62,
  NEWOBJ: 0x81,
  NEWOBJ_EX: 0x92,
  OBJ: 0x6f,
  STACK_GLOBAL: 0x93,
  BINPERSID: 0x51,
  MEMOIZE: 0x94,
  int: (n: number): number[] =>
    n >= 0 && n < 256 ? [0x4b, n] : n >= 0 && n < 65536 ? [0x4d, ...u16(n)] : [0x4a, ...u32(n)],
  long1: (bytes: Bytes): number[] => [0x8a, bytes.length, ...bytes],
  long4: (bytes: Bytes): number[] => [0x8b, ...u32(bytes.length), ...bytes],
  binfloat: (x: number): number[] => {
    const b = Buffer.alloc(8);
    b.writeDoubleBE(x);
    return [0x47, ...b];
  },
  str: (s: string): number[] => {
    const b = ascii(s);
    return [0x58, ...u32(b.length), ...b];
  },
  shortStr: (s: string): number[] => {
    const b = ascii(s);
    return [0x8c, b.length, ...b];
  },
  str8: (s: string): number[] => {
    const b = ascii(s);
    return [0x8d, ...u64(b.length), ...b];
  },
  bytes: (b: Bytes): number[] => [0x42, ...u32(b.length), ...b],
  shortBytes: (b: Bytes): number[] => [0x43, b.length, ...b],
  bytes8: (b: Bytes): number[] => [0x8e, ...u64(b.length), ...b],
  bytearray8: (b: Bytes): number[] => [0x96, ...u64(b.length), ...b],
  /** Protocol-0 text opcode: one byte then the argument and a newline. */
  text: (code: string, arg: string): number[] => [code.charCodeAt(0), ...ascii(`${arg}\n`)],
  global: (module: string, name: string): number[] => [0x63, ...ascii(`${module}\n${name}\n`)],
  inst: (module: string, name: string): number[] => [0x69, ...ascii(`${module}\n${name}\n`)],
  binput: (i: number): number[] => [0x71, i],
  binget: (i: number): number[] => [0x68, i],
  longBinput: (i: number): number[] => [0x72, ...u32(i)],
  longBinget: (i: number): number[] => [0x6a, ...u32(i)],
  frame: (n: number): number[] => [0x95, ...u64(n)],
};

export interface TensorSpec {
  readonly storageType?: string;
  readonly key: string;
  readonly numel: number;
  readonly offset?: number;
  readonly size: readonly number[];
  readonly stride?: readonly number[];
}

function contiguous(size: readonly number[]): number[] {
  const stride: number[] = [];
  let s = 1;
  for (let d = size.length - 1; d >= 0; d--) {
    stride[d] = s;
    s *= size[d] ?? 1;
  }
  return stride;
}

const intTuple = (xs: readonly number[]): number[] => [op.MARK, ...xs.flatMap(op.int), op.TUPLE];

/** torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()) as torch writes it. */
export function tensorV2(t: TensorSpec): number[] {
  const [module, name] = splitName(t.storageType ?? "torch.FloatStorage");
  return [
    ...op.global("torch._utils", "_rebuild_tensor_v2"),
    op.MARK,
    ...[
      op.MARK,
      ...op.str("storage"),
      ...op.global(module, name),
      ...op.str(t.key),
      ...op.str("cpu"),
      ...op.int(t.numel),
    ],
    op.TUPLE,
    op.BINPERSID,
    ...op.int(t.offset ?? 0),
    ...intTuple(t.size),
    ...intTuple(t.stride ?? contiguous(t.size)),
    op.NEWFALSE,
    ...op.global("collections", "OrderedDict"),
    op.EMPTY_TUPLE,
    op.REDUCE,
    op.TUPLE,
    op.REDUCE,
  ];
}

export function splitName(qualified: string): [string, string] {
  const dot = qualified.lastIndexOf(".");
  return [qualified.slice(0, dot), qualified.slice(dot + 1)];
}

/** A dict pickle {key: value-bytes, ...} (protocol 2, EMPTY_DICT + MARK + SETITEMS). */
export function dictPickle(items: Record<string, Bytes>): Uint8Array {
  return pk(
    op.proto(2),
    op.EMPTY_DICT,
    op.MARK,
    ...Object.entries(items).flatMap(([k, v]) => [...op.str(k), ...v]),
    op.SETITEMS,
    op.STOP,
  );
}

export interface ZipInput {
  readonly name: string;
  readonly data: Uint8Array;
  readonly method?: number;
}

export interface ZipOptions {
  /** Write ZIP64 extra fields (0xFFFFFFFF in the central directory) and ZIP64 end records. */
  readonly zip64?: boolean;
  /** torch's layout: flag 0x08, zero sizes in local headers, a data descriptor after the data. */
  readonly descriptor?: boolean;
  /** Pad local headers with an extra field so data start on this boundary (torch: 64). */
  readonly align?: number;
  readonly comment?: string;
}

/** A zip archive with stored entries, laid out the way torch.save (miniz) writes them by default. */
export function zipArchive(entries: readonly ZipInput[], options: ZipOptions = {}): Uint8Array {
  const { zip64 = false, descriptor = true, align = 64 } = options;
  const out: number[] = [];
  const central: number[] = [];
  for (const e of entries) {
    const name = ascii(e.name);
    const crc = crc32(e.data) >>> 0;
    const size = e.data.length;
    const flags = (descriptor ? 0x08 : 0) | 0x800;
    const offset = out.length;
    const headerEnd = offset + 30 + name.length;
    const pad = align > 0 ? (align - ((headerEnd + 4) % align)) % align : -4;
    const extra = pad >= 0 ? [...u16(0x4246), ...u16(pad), ...new Array<number>(pad).fill(0x5a)] : [];
    const localSize = descriptor ? 0 : size;
    out.push(
      ...u32(0x04034b50),
      ...u16(zip64 ? 45 : 20),
      ...u16(flags),
      ...u16(e.method ?? 0),
      ...u16(0),
      ...u16(0),
    );
    out.push(
      ...u32(descriptor ? 0 : crc),
      ...u32(localSize),
      ...u32(localSize),
      ...u16(name.length),
      ...u16(extra.length),
    );
    out.push(...name, ...extra, ...e.data);
    if (descriptor) out.push(...u32(0x08074b50), ...u32(crc), ...u32(size), ...u32(size));
    const big = zip64 ? 0xffffffff : undefined;
    const centralExtra = zip64 ? [...u16(1), ...u16(24), ...u64(size), ...u64(size), ...u64(offset)] : [];
    central.push(...u32(0x02014b50), ...u16(zip64 ? 45 : 20), ...u16(zip64 ? 45 : 20), ...u16(flags));
    central.push(
      ...u16(e.method ?? 0),
      ...u16(0),
      ...u16(0),
      ...u32(crc),
      ...u32(big ?? size),
      ...u32(big ?? size),
    );
    central.push(
      ...u16(name.length),
      ...u16(centralExtra.length),
      ...u16(0),
      ...u16(0),
      ...u16(0),
      ...u32(0),
    );
    central.push(...u32(big ?? offset), ...name, ...centralExtra);
  }
  const cdOffset = out.length;
  out.push(...central);
  const count = entries.length;
  if (zip64) {
    const record = out.length;
    out.push(...u32(0x06064b50), ...u64(44), ...u16(45), ...u16(45), ...u32(0), ...u32(0));
    out.push(...u64(count), ...u64(count), ...u64(central.length), ...u64(cdOffset));
    out.push(...u32(0x07064b50), ...u32(0), ...u64(record), ...u32(1));
  }
  const comment = ascii(options.comment ?? "");
  const c16 = zip64 ? 0xffff : count;
  out.push(...u32(0x06054b50), ...u16(0), ...u16(0), ...u16(c16), ...u16(c16));
  out.push(...u32(zip64 ? 0xffffffff : central.length), ...u32(zip64 ? 0xffffffff : cdOffset));
  out.push(...u16(comment.length), ...comment);
  return Uint8Array.from(out);
}

/** A torch.save zip: `<folder>/data.pkl`, `<folder>/data/<key>` records, `<folder>/version`. */
export function torchZip(
  pickle: Uint8Array,
  storages: Record<string, Uint8Array>,
  options: ZipOptions & { folder?: string; extra?: readonly ZipInput[] } = {},
): Uint8Array {
  const folder = options.folder ?? "archive";
  return zipArchive(
    [
      { name: `${folder}/data.pkl`, data: pickle },
      ...Object.entries(storages).map(([key, data]) => ({ name: `${folder}/data/${key}`, data })),
      ...(options.extra ?? []),
      { name: `${folder}/version`, data: Uint8Array.from(ascii("3\n")) },
    ],
    options,
  );
}

/** Little-endian bytes of typed data. */
export function le(data: Float32Array | Int32Array | BigInt64Array | Uint16Array | Uint8Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
}
