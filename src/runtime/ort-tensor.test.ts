import ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { expectError } from "../../test/helpers/run-graph.js";
import { UnsupportedError } from "../errors.js";
import { type DType, type HostTensor, tensor } from "../tensor.js";
import { dtypeFromOrt, fromOrtTensor, toOrtTensor } from "./ort-tensor.js";

describe("HostTensor <-> ort.Tensor", () => {
  it("round-trips every dtype ORT JS supports without copying", () => {
    const dtypes: DType[] = [
      "float32",
      "float64",
      "float16",
      "int64",
      "int32",
      "int16",
      "int8",
      "uint8",
      "uint16",
      "uint32",
      "uint64",
      "bool",
    ];
    for (const dtype of dtypes) {
      const t = tensor(dtype, [2, 3]);
      const o = toOrtTensor(t);
      expect(o.type).toBe(dtype);
      expect(o.dims).toEqual([2, 3]);
      const back = fromOrtTensor(o);
      expect(back.dtype).toBe(dtype);
      expect(back.shape).toEqual([2, 3]);
      expect(back.data).toBe(t.data);
      expect(dtypeFromOrt(dtype)).toBe(dtype);
    }
    expect(dtypeFromOrt("string")).toBeUndefined();
  });

  it("refuses dtypes ORT JS cannot carry", async () => {
    await expectError(
      () => toOrtTensor(tensor("bfloat16", [1])),
      UnsupportedError,
      "E_UNSUPPORTED",
      "bfloat16 tensors in ONNX Runtime JS",
    );
    const mislabeled: HostTensor = { dtype: "float32", shape: [1], data: new Int32Array(1) };
    await expectError(
      () => toOrtTensor(mislabeled),
      UnsupportedError,
      "E_UNSUPPORTED",
      "a float32 tensor backed by Int32Array",
    );
    await expectError(
      () => fromOrtTensor(new ort.Tensor("string", ["a"], [1]), "names"),
      UnsupportedError,
      "E_UNSUPPORTED",
      'string tensor "names"',
    );
  });
});
