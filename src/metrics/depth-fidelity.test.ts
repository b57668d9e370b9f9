import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../errors.js";
import { depthAgreement } from "./depth-fidelity.js";

const map = (values: number[]): { width: number; height: number; data: Float32Array } => ({
  width: values.length,
  height: 1,
  data: Float32Array.from(values),
});

describe("depthAgreement", () => {
  it("is scale and shift invariant", () => {
    const target = map([1, 2, 4, 8]);
    const r = depthAgreement(map([10, 20, 40, 80].map((v) => 3 * v - 7)), target);
    expect(r.alignedMse).toBeCloseTo(0, 12);
    expect(r.pearson).toBeCloseTo(1, 12);
  });

  it("detects inverted and unrelated layouts", () => {
    const target = map([0, 1, 2, 3]);
    const inverted = depthAgreement(map([3, 2, 1, 0]), target);
    expect(inverted.pearson).toBeCloseTo(-1, 12);
    expect(inverted.alignedMse).toBeCloseTo(0, 12); // a negative scale fits exactly
    const unrelated = depthAgreement(map([1, 0, 0, 1]), target);
    expect(unrelated.pearson).toBeCloseTo(0, 12);
    // target normalised to [0, 1/3, 2/3, 1]: best constant is the mean, variance (1/4 + 1/36 + 1/36 + 1/4) / 4 = 5/36
    expect(unrelated.alignedMse).toBeCloseTo(5 / 36, 12);
  });

  it("gives NaN correlation for a constant map and rejects size mismatches", () => {
    expect(depthAgreement(map([2, 2, 2]), map([0, 1, 2])).pearson).toBeNaN();
    expect(() => depthAgreement(map([1, 2]), map([1, 2, 3]))).toThrow(InvalidArgumentError);
  });
});
