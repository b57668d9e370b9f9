/**
 * Host tensors: a dtype, a shape and a flat row-major typed array. This is the one tensor type shared
 * by weights, schedulers, control maps and the runtime; it converts to and from ORT tensors at the
 * runtime boundary only. float16 and bfloat16 are stored as raw bits in a Uint16Array.
 */
import { InvalidArgumentError } from "./errors.js";

export type DType =
  | "float32"
  | "float64"
  | "float16"
  | "bfloat16"
  | "int64"
  | "int32"
  | "int16"
  | "int8"
  | "uint8"
  | "uint16"
  | "uint32"
  | "uint64"
  | "float8e4m3fn"
  | "float8e5m2"
  | "bool";

export interface DataTypeMap {
  float32: Float32Array;
  float64: Float64Array;
  float16: Uint16Array;
  bfloat16: Uint16Array;
  int64: BigInt64Array;
  int32: Int32Array;
  int16: Int16Array;
  int8: Int8Array;
  uint8: Uint8Array;
  uint16: Uint16Array;
  uint32: Uint32Array;
  uint64: BigUint64Array;
  /** raw float8 bits */
  float8e4m3fn: Uint8Array;
  /** raw float8 bits */
  float8e5m2: Uint8Array;
  bool: Uint8Array;
}

export const BYTES_PER_ELEMENT: Readonly<Record<DType, number>> = {
  float32: 4,
  float64: 8,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  uint16: 2,
  uint32: 4,
  uint64: 8,
  float8e4m3fn: 1,
  float8e5m2: 1,
  bool: 1,
};

export type Shape = readonly number[];

export interface HostTensor<D extends DType = DType> {
  readonly dtype: D;
  readonly shape: Shape;
  readonly data: DataTypeMap[D];
}

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeToString(shape: Shape): string {
  return `[${shape.join(", ")}]`;
}

export function shapesEqual(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function allocate<D extends DType>(dtype: D, length: number): DataTypeMap[D] {
  const arrays: { [K in DType]: (n: number) => DataTypeMap[K] } = {
    float32: (n) => new Float32Array(n),
    float64: (n) => new Float64Array(n),
    float16: (n) => new Uint16Array(n),
    bfloat16: (n) => new Uint16Array(n),
    int64: (n) => new BigInt64Array(n),
    int32: (n) => new Int32Array(n),
    int16: (n) => new Int16Array(n),
    int8: (n) => new Int8Array(n),
    uint8: (n) => new Uint8Array(n),
    uint16: (n) => new Uint16Array(n),
    uint32: (n) => new Uint32Array(n),
    uint64: (n) => new BigUint64Array(n),
    float8e4m3fn: (n) => new Uint8Array(n),
    float8e5m2: (n) => new Uint8Array(n),
    bool: (n) => new Uint8Array(n),
  };
  return arrays[dtype](length);
}

/** Makes a tensor, checking that the data length equals the element count of the shape. */
export function tensor<D extends DType>(dtype: D, shape: Shape, data?: DataTypeMap[D]): HostTensor<D> {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0)
      throw new InvalidArgumentError("shape", "non-negative integer dimensions", shape);
  }
  const n = numel(shape);
  const values = data ?? allocate(dtype, n);
  if (values.length !== n) {
    throw new InvalidArgumentError(
      "data",
      `${n} elements for shape ${shapeToString(shape)}`,
      `${values.length} elements`,
    );
  }
  return { dtype, shape: [...shape], data: values };
}

export function zeros(shape: Shape): HostTensor<"float32"> {
  return tensor("float32", shape);
}

// ---- float16 / bfloat16 bit conversion (IEEE 754 binary16, round to nearest even) ----

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function float16BitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

export function numberToFloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0] ?? 0;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let h = mant >> shift;
    if (rest > half || (rest === half && (h & 1) === 1)) h += 1;
    return sign | h;
  }
  let h = (e << 10) | (mant >> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h += 1;
  return sign | h;
}

export function bfloat16BitsToNumber(b: number): number {
  u32[0] = b << 16;
  return f32[0] ?? 0;
}

export function numberToBfloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0] ?? 0;
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return (x >>> 16) | 0x40;
  const rounding = 0x7fff + ((x >>> 16) & 1);
  return ((x + rounding) >>> 16) & 0xffff;
}

/** float8 E4M3 (finite-only, "fn") bits to number: bias 7, S.1111.111 is NaN, no infinities. */
export function float8e4m3fnBitsToNumber(b: number): number {
  const sign = b & 0x80 ? -1 : 1;
  const exp = (b >> 3) & 0xf;
  const frac = b & 0x7;
  if (exp === 0xf && frac === 0x7) return NaN;
  if (exp === 0) return sign * frac * 2 ** -9;
  return sign * (1 + frac / 8) * 2 ** (exp - 7);
}

/** float8 E5M2 bits to number: the top byte of a float16. */
export function float8e5m2BitsToNumber(b: number): number {
  return float16BitsToNumber(b << 8);
}

/** Converts any floating or integer tensor to float32 (64-bit integers must be exact in a double). */
export function toFloat32(t: HostTensor): HostTensor<"float32"> {
  if (t.dtype === "float32")
    return { dtype: "float32", shape: t.shape, data: Float32Array.from(t.data as Float32Array) };
  const out = new Float32Array(t.data.length);
  for (let i = 0; i < out.length; i++) out[i] = elementAsNumber(t, i);
  return { dtype: "float32", shape: t.shape, data: out };
}

/** Converts a float32 tensor to float16 bits (round to nearest even). */
export function toFloat16(t: HostTensor<"float32">): HostTensor<"float16"> {
  const out = new Uint16Array(t.data.length);
  for (let i = 0; i < out.length; i++) out[i] = numberToFloat16Bits(t.data[i] ?? 0);
  return { dtype: "float16", shape: t.shape, data: out };
}

/** Reads element i of any tensor as a JS number (for comparisons and printing). */
export function elementAsNumber(t: HostTensor, i: number): number {
  switch (t.dtype) {
    case "float16":
      return float16BitsToNumber((t.data as Uint16Array)[i] ?? 0);
    case "bfloat16":
      return bfloat16BitsToNumber((t.data as Uint16Array)[i] ?? 0);
    case "float8e4m3fn":
      return float8e4m3fnBitsToNumber((t.data as Uint8Array)[i] ?? 0);
    case "float8e5m2":
      return float8e5m2BitsToNumber((t.data as Uint8Array)[i] ?? 0);
    case "int64":
      return Number((t.data as BigInt64Array)[i] ?? 0n);
    case "uint64":
      return Number((t.data as BigUint64Array)[i] ?? 0n);
    default:
      return (t.data as Exclude<DataTypeMap[DType], BigInt64Array | BigUint64Array>)[i] ?? 0;
  }
}

/** Largest absolute elementwise difference (shapes must match; NaN anywhere gives NaN). */
export function maxAbsDiff(a: HostTensor, b: HostTensor): number {
  if (!shapesEqual(a.shape, b.shape)) {
    throw new InvalidArgumentError("tensor", `shape ${shapeToString(b.shape)}`, shapeToString(a.shape));
  }
  let worst = 0;
  for (let i = 0; i < a.data.length; i++) {
    const d = Math.abs(elementAsNumber(a, i) - elementAsNumber(b, i));
    if (Number.isNaN(d)) return NaN;
    if (d > worst) worst = d;
  }
  return worst;
}
