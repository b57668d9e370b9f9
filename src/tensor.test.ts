import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "./errors.js";
import {
  bfloat16BitsToNumber,
  float16BitsToNumber,
  float8e4m3fnBitsToNumber,
  maxAbsDiff,
  numberToBfloat16Bits,
  numberToFloat16Bits,
  tensor,
  toFloat32,
} from "./tensor.js";

describe("tensor", () => {
  it("checks data length against the shape", () => {
    expect(() => tensor("float32", [2, 3], new Float32Array(5))).toThrow(InvalidArgumentError);
    expect(() => tensor("float32", [2, -1])).toThrow("non-negative integer dimensions");
  });

  it.each([
    [1, 0x3c00],
    [-2, 0xc000],
    [65504, 0x7bff],
    [2 ** -24, 0x0001],
    [0.1, 0x2e66],
    [1e6, 0x7c00],
    [1 + 2 ** -11, 0x3c00], // tie rounds to even
    [1 + 3 * 2 ** -11, 0x3c02], // tie rounds to even (up)
  ])("float16 bits of %d are %d", (value, bits) => {
    expect(numberToFloat16Bits(value)).toBe(bits);
  });

  it("float16 bits decode to the IEEE values", () => {
    expect(float16BitsToNumber(0x3555)).toBeCloseTo(0.333251953125, 12);
    expect(float16BitsToNumber(0x7c00)).toBe(Infinity);
    expect(Number.isNaN(float16BitsToNumber(0x7e00))).toBe(true);
  });

  it("bfloat16 rounds to nearest even", () => {
    expect(numberToBfloat16Bits(1)).toBe(0x3f80);
    expect(bfloat16BitsToNumber(numberToBfloat16Bits(3.140625))).toBe(3.140625);
    expect(bfloat16BitsToNumber(0xbf3b)).toBe(-0.73046875);
  });

  it("float8 e4m3fn decodes", () => {
    expect(float8e4m3fnBitsToNumber(0x38)).toBe(1);
    expect(float8e4m3fnBitsToNumber(0x7e)).toBe(448);
    expect(Number.isNaN(float8e4m3fnBitsToNumber(0x7f))).toBe(true);
  });

  it("converts to float32 and measures differences", () => {
    const a = toFloat32(tensor("int64", [2], new BigInt64Array([3n, -4n])));
    expect([...a.data]).toEqual([3, -4]);
    expect(maxAbsDiff(a, tensor("float32", [2], new Float32Array([3.5, -4])))).toBe(0.5);
    expect(() => maxAbsDiff(a, tensor("float32", [1]))).toThrow(InvalidArgumentError);
  });
});
