/**
 * HostTensor <-> onnxruntime Tensor at the runtime boundary. Data is shared, not copied. float16 is
 * raw bits in a Uint16Array on both sides; bfloat16 and float8 have no ORT JS tensor type.
 */
import ort from "onnxruntime-node";
import { UnsupportedError } from "../errors.js";
import { type DType, type HostTensor, tensor } from "../tensor.js";

/** The ORT element type names for our dtypes (undefined where ORT JS has none). */
export const ORT_TYPE: Readonly<Record<DType, ort.Tensor.Type | undefined>> = {
  float32: "float32",
  float64: "float64",
  float16: "float16",
  bfloat16: undefined,
  int64: "int64",
  int32: "int32",
  int16: "int16",
  int8: "int8",
  uint8: "uint8",
  uint16: "uint16",
  uint32: "uint32",
  uint64: "uint64",
  float8e4m3fn: undefined,
  float8e5m2: undefined,
  bool: "bool",
};

/** The dtype of an ORT element type, or undefined for types we do not map (string, int4, ...). */
export function dtypeFromOrt(type: string): DType | undefined {
  for (const [dtype, t] of Object.entries(ORT_TYPE)) if (t === type) return dtype as DType;
  return undefined;
}

/** Wraps a host tensor as an ORT tensor (no copy). */
export function toOrtTensor(t: HostTensor): ort.Tensor {
  const dims = [...t.shape];
  const d = t.data;
  switch (t.dtype) {
    case "float32":
      if (d instanceof Float32Array) return new ort.Tensor("float32", d, dims);
      break;
    case "float64":
      if (d instanceof Float64Array) return new ort.Tensor("float64", d, dims);
      break;
    case "float16":
      if (d instanceof Uint16Array) return new ort.Tensor("float16", d, dims);
      break;
    case "int64":
      if (d instanceof BigInt64Array) return new ort.Tensor("int64", d, dims);
      break;
    case "int32":
      if (d instanceof Int32Array) return new ort.Tensor("int32", d, dims);
      break;
    case "int16":
      if (d instanceof Int16Array) return new ort.Tensor("int16", d, dims);
      break;
    case "int8":
      if (d instanceof Int8Array) return new ort.Tensor("int8", d, dims);
      break;
    case "uint8":
      if (d instanceof Uint8Array) return new ort.Tensor("uint8", d, dims);
      break;
    case "uint16":
      if (d instanceof Uint16Array) return new ort.Tensor("uint16", d, dims);
      break;
    case "uint32":
      if (d instanceof Uint32Array) return new ort.Tensor("uint32", d, dims);
      break;
    case "uint64":
      if (d instanceof BigUint64Array) return new ort.Tensor("uint64", d, dims);
      break;
    case "bool":
      if (d instanceof Uint8Array) return new ort.Tensor("bool", d, dims);
      break;
    default:
      throw new UnsupportedError(`${t.dtype} tensors in ONNX Runtime JS`, {
        hint: "cast to float32 or float16 first",
      });
  }
  throw new UnsupportedError(`a ${t.dtype} tensor backed by ${d.constructor.name}`, {
    hint: "build tensors with tensor() from src/tensor.ts",
  });
}

/** Copies nothing: wraps an ORT CPU tensor's data as a host tensor. */
export function fromOrtTensor(t: ort.Tensor, name = "output"): HostTensor {
  const dims = t.dims.map(Number);
  const d = t.data;
  switch (t.type) {
    case "float32":
      if (d instanceof Float32Array) return tensor("float32", dims, d);
      break;
    case "float64":
      if (d instanceof Float64Array) return tensor("float64", dims, d);
      break;
    case "float16":
      if (d instanceof Uint16Array) return tensor("float16", dims, d);
      break;
    case "int64":
      if (d instanceof BigInt64Array) return tensor("int64", dims, d);
      break;
    case "int32":
      if (d instanceof Int32Array) return tensor("int32", dims, d);
      break;
    case "int16":
      if (d instanceof Int16Array) return tensor("int16", dims, d);
      break;
    case "int8":
      if (d instanceof Int8Array) return tensor("int8", dims, d);
      break;
    case "uint8":
      if (d instanceof Uint8Array) return tensor("uint8", dims, d);
      break;
    case "uint16":
      if (d instanceof Uint16Array) return tensor("uint16", dims, d);
      break;
    case "uint32":
      if (d instanceof Uint32Array) return tensor("uint32", dims, d);
      break;
    case "uint64":
      if (d instanceof BigUint64Array) return tensor("uint64", dims, d);
      break;
    case "bool":
      if (d instanceof Uint8Array) return tensor("bool", dims, d);
      break;
  }
  throw new UnsupportedError(`ONNX Runtime ${t.type} tensor "${name}" (location ${t.location})`, {
    hint: "only CPU tensors of numeric types are returned as host tensors",
  });
}
