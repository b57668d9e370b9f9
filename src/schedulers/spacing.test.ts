import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../errors.js";
import { checkNumInferenceSteps, discreteTimesteps, sigmaTimesteps } from "./spacing.js";

const f32 = Math.fround;

describe("discreteTimesteps", () => {
  it('"leading": k * (T // N) + steps_offset, descending', () => {
    expect(discreteTimesteps("leading", 1000, 10, 1)).toEqual([
      901, 801, 701, 601, 501, 401, 301, 201, 101, 1,
    ]);
    expect(discreteTimesteps("leading", 1000, 3, 0)).toEqual([666, 333, 0]);
  });
  it('"linspace": round(linspace(0, T-1, N)), descending', () => {
    expect(discreteTimesteps("linspace", 1000, 10, 1)).toEqual([
      999, 888, 777, 666, 555, 444, 333, 222, 111, 0,
    ]);
    // linspace(0, 999, 4) = 0, 333, 666, 999
    expect(discreteTimesteps("linspace", 1000, 4, 0)).toEqual([999, 666, 333, 0]);
  });
  it('"trailing": round(arange(T, 0, -T/N)) - 1', () => {
    expect(discreteTimesteps("trailing", 1000, 10, 5)).toEqual([
      999, 899, 799, 699, 599, 499, 399, 299, 199, 99,
    ]);
    // arange(1000, 0, -333.33) = 1000, 666.67, 333.33 -> 1000, 667, 333 -> minus 1
    expect(discreteTimesteps("trailing", 1000, 3, 0)).toEqual([999, 666, 332]);
  });
});

describe("sigmaTimesteps (float32)", () => {
  it('"linspace" keeps fractional float32 values', () => {
    const ts = sigmaTimesteps("linspace", 1000, 20, 0);
    expect(ts[0]).toBe(999);
    expect(ts[1]).toBe(f32(999 - 999 / 19));
    expect(ts[19]).toBe(0);
    expect(ts.every((t) => t === f32(t))).toBe(true);
  });
  it('"leading" and "trailing" are the integer spacings as floats', () => {
    expect(sigmaTimesteps("leading", 1000, 4, 1)).toEqual([751, 501, 251, 1]);
    expect(sigmaTimesteps("trailing", 1000, 4, 1)).toEqual([999, 749, 499, 249]);
  });
});

describe("checkNumInferenceSteps", () => {
  it("accepts 1..T and rejects the rest with InvalidArgumentError", () => {
    expect(() => checkNumInferenceSteps(1000, 1000)).not.toThrow();
    for (const bad of [0, 1001, 2.5, NaN]) {
      expect(() => checkNumInferenceSteps(bad, 1000)).toThrow(InvalidArgumentError);
    }
    expect(() => checkNumInferenceSteps(1001, 1000)).toThrow(
      /Expected an integer in \[1, 1000\] \(num_train_timesteps\) for numInferenceSteps/,
    );
    try {
      checkNumInferenceSteps(0, 10);
    } catch (e) {
      expect(e instanceof InvalidArgumentError && e.code).toBe("E_INVALID_ARGUMENT");
    }
  });
});
