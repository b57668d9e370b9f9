/**
 * Turns a TensorRef (storage + offset, size, stride in elements) and the bytes of its storage into a
 * row-major HostTensor. Contiguous views are sliced (or used in place when the storage has no other
 * user); transposed, permuted and expanded (stride 0) views are gathered element by element. Bits are
 * copied, never converted, so float16/bfloat16 NaN payloads, -0.0 and subnormals survive.
 */
import { BYTES_PER_ELEMENT, numel, type DataTypeMap, type DType, type HostTensor } from "../../tensor.js";
import type { TensorRef } from "./values.js";

/** Bytes a view produces when materialised (numel x element size). */
export function outputBytes(ref: TensorRef): number {
  return numel(ref.shape) * BYTES_PER_ELEMENT[ref.dtype];
}

function isContiguous(ref: TensorRef): boolean {
  let expected = 1;
  for (let d = ref.shape.length - 1; d >= 0; d--) {
    const size = ref.shape[d] ?? 1;
    if (size !== 1 && ref.stride[d] !== expected) return false;
    expected *= size;
  }
  return true;
}

/** Typed array of `dtype` over `bytes`, which must start 8-byte aligned in their buffer. */
function typed<D extends DType>(dtype: D, bytes: Uint8Array): DataTypeMap[D] {
  const { buffer, byteOffset } = bytes;
  const n = bytes.byteLength / BYTES_PER_ELEMENT[dtype];
  const views: { [K in DType]: () => DataTypeMap[K] } = {
    float32: () => new Float32Array(buffer, byteOffset, n),
    float64: () => new Float64Array(buffer, byteOffset, n),
    float16: () => new Uint16Array(buffer, byteOffset, n),
    bfloat16: () => new Uint16Array(buffer, byteOffset, n),
    int64: () => new BigInt64Array(buffer, byteOffset, n),
    int32: () => new Int32Array(buffer, byteOffset, n),
    int16: () => new Int16Array(buffer, byteOffset, n),
    int8: () => new Int8Array(buffer, byteOffset, n),
    uint8: () => bytes,
    uint16: () => new Uint16Array(buffer, byteOffset, n),
    uint32: () => new Uint32Array(buffer, byteOffset, n),
    uint64: () => new BigUint64Array(buffer, byteOffset, n),
    float8e4m3fn: () => bytes,
    float8e5m2: () => bytes,
    bool: () => bytes,
  };
  return views[dtype]();
}

/** Unsigned lanes for copying bits: 1, 2 or 4 bytes per lane; 8-byte elements copy two 4-byte lanes. */
function lanes(bytes: Uint8Array, elementSize: number): Uint8Array | Uint16Array | Uint32Array {
  const { buffer, byteOffset, byteLength } = bytes;
  if (elementSize === 1) return bytes;
  if (elementSize === 2) return new Uint16Array(buffer, byteOffset, byteLength / 2);
  return new Uint32Array(buffer, byteOffset, byteLength / 4);
}

/** Row-major gather of a strided view: odometer over the shape, moving the source index by strides. */
function gather(ref: TensorRef, storage: Uint8Array, count: number, elementSize: number): Uint8Array {
  const out = new Uint8Array(count * elementSize);
  const src = lanes(storage, elementSize);
  const dst = lanes(out, elementSize);
  const width = elementSize === 8 ? 2 : 1;
  const rank = ref.shape.length;
  const index = new Array<number>(rank).fill(0);
  let s = ref.storageOffset;
  for (let i = 0; i < count; i++) {
    for (let w = 0; w < width; w++) dst[i * width + w] = src[s * width + w] ?? 0;
    for (let d = rank - 1; d >= 0; d--) {
      const size = ref.shape[d] ?? 1;
      const stride = ref.stride[d] ?? 0;
      const k = (index[d] ?? 0) + 1;
      if (k < size) {
        index[d] = k;
        s += stride;
        break;
      }
      index[d] = 0;
      s -= stride * (size - 1);
    }
  }
  return out;
}

/**
 * Materialises one view. `storage` holds the storage's bytes (at least as many as the view reaches,
 * which the policy checked); `exclusive` lets a contiguous view reuse the storage's memory.
 */
export function materialize(ref: TensorRef, storage: Uint8Array, exclusive: boolean): HostTensor {
  const elementSize = BYTES_PER_ELEMENT[ref.dtype];
  const count = numel(ref.shape);
  let bytes: Uint8Array;
  if (count === 0) bytes = new Uint8Array(0);
  else if (isContiguous(ref)) {
    const begin = ref.storageOffset * elementSize;
    const end = begin + count * elementSize;
    bytes =
      exclusive && storage.byteOffset % 8 === 0 && begin === 0
        ? storage.subarray(0, end)
        : storage.slice(begin, end);
  } else {
    bytes = gather(ref, storage.byteOffset % 8 === 0 ? storage : storage.slice(), count, elementSize);
  }
  return { dtype: ref.dtype, shape: [...ref.shape], data: typed(ref.dtype, bytes) };
}
