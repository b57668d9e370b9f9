import { describe, expect, it } from "vitest";
import { UnsupportedError } from "../errors.js";
import { fromOnnxDataType, toOnnxDataType } from "./dtype.js";

describe("ONNX data types", () => {
  it("maps our dtypes to TensorProto.DataType numbers and back", () => {
    expect(toOnnxDataType("float32")).toBe(1);
    expect(toOnnxDataType("uint8")).toBe(2);
    expect(toOnnxDataType("int64")).toBe(7);
    expect(toOnnxDataType("bool")).toBe(9);
    expect(toOnnxDataType("float16")).toBe(10);
    expect(toOnnxDataType("float64")).toBe(11);
    expect(toOnnxDataType("bfloat16")).toBe(16);
    for (const d of [
      "float32",
      "float16",
      "int64",
      "int32",
      "uint8",
      "bool",
      "bfloat16",
      "uint16",
    ] as const) {
      expect(fromOnnxDataType(toOnnxDataType(d))).toBe(d);
    }
  });

  it("refuses unmapped ONNX types by name", () => {
    const err = (() => {
      try {
        fromOnnxDataType(8);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(UnsupportedError);
    expect((err as UnsupportedError).code).toBe("E_UNSUPPORTED");
    expect((err as UnsupportedError).message).toContain("ONNX tensor element type STRING (8)");
  });
});
