/**
 * Our tensor dtypes <-> ONNX `TensorProto.DataType` numbers (onnx/onnx: onnx/onnx.proto).
 */
import type { DType } from "../tensor.js";
import { UnsupportedError } from "../errors.js";

/** ONNX TensorProto.DataType enum values for the dtypes we use. */
export const ONNX_DATA_TYPE: Readonly<Record<DType, number>> = {
  float32: 1, // FLOAT
  uint8: 2, // UINT8
  int8: 3, // INT8
  uint16: 4, // UINT16
  int16: 5, // INT16
  int32: 6, // INT32
  int64: 7, // INT64
  bool: 9, // BOOL
  float16: 10, // FLOAT16
  float64: 11, // DOUBLE
  uint32: 12, // UINT32
  uint64: 13, // UINT64
  bfloat16: 16, // BFLOAT16
  float8e4m3fn: 17, // FLOAT8E4M3FN
  float8e5m2: 19, // FLOAT8E5M2
};

const FROM_ONNX: ReadonlyMap<number, DType> = new Map(
  Object.entries(ONNX_DATA_TYPE).map(([dtype, code]) => [code, dtype as DType]),
);

/** ONNX names of the data types we do not map (for error messages). */
const OTHER_ONNX_NAMES: Readonly<Record<number, string>> = {
  0: "UNDEFINED",
  8: "STRING",
  14: "COMPLEX64",
  15: "COMPLEX128",
  18: "FLOAT8E4M3FNUZ",
  20: "FLOAT8E5M2FNUZ",
  21: "UINT4",
  22: "INT4",
};

export function toOnnxDataType(dtype: DType): number {
  return ONNX_DATA_TYPE[dtype];
}

export function fromOnnxDataType(code: number): DType {
  const dtype = FROM_ONNX.get(code);
  if (dtype === undefined) {
    const name = OTHER_ONNX_NAMES[code] ?? `data type ${code}`;
    throw new UnsupportedError(`ONNX tensor element type ${name} (${code})`, {
      hint: `supported: ${Object.keys(ONNX_DATA_TYPE).join(", ")}`,
    });
  }
  return dtype;
}

export function isFloatDType(dtype: DType): boolean {
  return (
    dtype === "float32" ||
    dtype === "float16" ||
    dtype === "bfloat16" ||
    dtype === "float64" ||
    dtype === "float8e4m3fn" ||
    dtype === "float8e5m2"
  );
}

export function isIntegerDType(dtype: DType): boolean {
  return (
    dtype === "int64" ||
    dtype === "int32" ||
    dtype === "int16" ||
    dtype === "int8" ||
    dtype === "uint8" ||
    dtype === "uint16" ||
    dtype === "uint32" ||
    dtype === "uint64"
  );
}
