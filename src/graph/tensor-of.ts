/**
 * Host tensors of any dtype from JS numbers (constants for graphs: shapes, axes, scalars).
 */
import { GraphError } from "../errors.js";
import {
  type DType,
  type HostTensor,
  type Shape,
  numberToBfloat16Bits,
  numberToFloat16Bits,
  tensor,
} from "../tensor.js";

/** Builds a host tensor of any dtype from JS numbers. */
export function tensorOf(dtype: DType, shape: Shape, values: readonly number[]): HostTensor {
  switch (dtype) {
    case "float32":
      return tensor(dtype, shape, Float32Array.from(values));
    case "float64":
      return tensor(dtype, shape, Float64Array.from(values));
    case "float16":
      return tensor(dtype, shape, Uint16Array.from(values, numberToFloat16Bits));
    case "bfloat16":
      return tensor(dtype, shape, Uint16Array.from(values, numberToBfloat16Bits));
    case "int64":
      return tensor(
        dtype,
        shape,
        BigInt64Array.from(values, (x) => BigInt(Math.trunc(x))),
      );
    case "int32":
      return tensor(dtype, shape, Int32Array.from(values));
    case "int16":
      return tensor(dtype, shape, Int16Array.from(values));
    case "int8":
      return tensor(dtype, shape, Int8Array.from(values));
    case "uint8":
      return tensor(dtype, shape, Uint8Array.from(values));
    case "uint16":
      return tensor(dtype, shape, Uint16Array.from(values));
    case "uint32":
      return tensor(dtype, shape, Uint32Array.from(values));
    case "uint64":
      return tensor(
        dtype,
        shape,
        BigUint64Array.from(values, (x) => BigInt(Math.trunc(x))),
      );
    case "bool":
      return tensor(
        dtype,
        shape,
        Uint8Array.from(values, (x) => (x ? 1 : 0)),
      );
    case "float8e4m3fn":
    case "float8e5m2":
      throw new GraphError("constant", `constants of ${dtype} cannot be made from numbers`, {
        hint: "build the raw bits as a HostTensor and call constant()",
      });
  }
}
