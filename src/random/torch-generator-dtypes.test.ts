import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../errors.js";
import { elementAsNumber, float16BitsToNumber, numberToFloat16Bits } from "../tensor.js";
import { MT19937 } from "./mt19937.js";
import { type RandomDType, TorchGenerator } from "./torch-generator.js";
import { parseRngDType } from "../conformance/kinds/rng.js";

const values = (t: { data: ArrayLike<number>; dtype: string; shape: readonly number[] }): number[] =>
  Array.from({ length: t.data.length }, (_, i) => elementAsNumber(t as never, i));

describe("TorchGenerator dtypes", () => {
  it("returns tensors of the requested dtype and shape", () => {
    for (const dtype of ["float32", "float64", "float16", "bfloat16"] as RandomDType[]) {
      const g = new TorchGenerator(3);
      expect(g.randn([2, 9], dtype).dtype).toBe(dtype);
      expect(g.rand([3, 1], dtype).shape).toEqual([3, 1]);
    }
  });

  it("draws float64 rand from random64(): the low 53 bits of (first << 32 | second)", () => {
    const mt = new MT19937(42);
    const expected = [0, 1, 2].map(() => {
      const hi = mt.nextUint32();
      const lo = mt.nextUint32();
      return Number(((BigInt(hi) << 32n) | BigInt(lo)) & (2n ** 53n - 1n)) / 2 ** 53;
    });
    expect(Array.from(new TorchGenerator(42).rand([3], "float64").data)).toEqual(expected);
  });

  it("draws float16 / bfloat16 rand from 11 / 8 low bits of one 32-bit draw", () => {
    const mt = new MT19937(7);
    const draws = [0, 1, 2, 3].map(() => mt.nextUint32());
    expect(values(new TorchGenerator(7).rand([4], "float16"))).toEqual(draws.map((d) => (d & 2047) / 2048));
    expect(values(new TorchGenerator(7).rand([4], "bfloat16"))).toEqual(draws.map((d) => (d & 255) / 256));
  });

  it("gives the float32 scalar-path values in double for float64 randn under 16 elements", () => {
    const f64 = new TorchGenerator(0).randn([7], "float64").data;
    const f32 = new TorchGenerator(0).randn([7]).data;
    expect(Array.from(f64, Math.fround)).toEqual(Array.from(f32));
    expect(Array.from(f64).some((v) => v !== Math.fround(v))).toBe(true);
  });

  it("runs normal_fill<double> for float64 randn of 16 or more (53-bit uniforms, ragged tail redrawn)", () => {
    const n = 19;
    const g = new TorchGenerator(5);
    const u = g.rand([n + 16], "float64").data; // the same draws normal_fill makes
    const data = Array.from(u.subarray(0, n));
    const box = (d: number[], o: number): void => {
      for (let j = 0; j < 8; j++) {
        const r = Math.sqrt(-2 * Math.log(1 - (d[o + j] ?? 0)));
        const t = 2 * Math.PI * (d[o + j + 8] ?? 0);
        d[o + j] = r * Math.cos(t);
        d[o + j + 8] = r * Math.sin(t);
      }
    };
    box(data, 0);
    for (let i = 0; i < 16; i++) data[n - 16 + i] = u[n + i] ?? 0;
    box(data, n - 16);
    const actual = new TorchGenerator(5).randn([n], "float64").data;
    expect(Array.from(actual)).toEqual(data);
  });

  it("gives float16-representable normals close to the double transform of the same uniforms", () => {
    const out = values(new TorchGenerator(11).randn([4, 8], "float16"));
    const u = values(new TorchGenerator(11).rand([32], "float16"));
    for (let b = 0; b < 32; b += 16) {
      for (let j = 0; j < 8; j++) {
        const r = Math.sqrt(-2 * Math.log(1 - (u[b + j] ?? 0)));
        const t = 2 * Math.PI * (u[b + j + 8] ?? 0);
        expect(Math.abs((out[b + j] ?? 0) - r * Math.cos(t))).toBeLessThan(0.02);
        expect(Math.abs((out[b + j + 8] ?? 0) - r * Math.sin(t))).toBeLessThan(0.02);
      }
    }
    for (const v of out) expect(float16BitsToNumber(numberToFloat16Bits(v))).toBe(v);
  });

  it("draws randint as random() % range + low, and random64() for ranges of 2^32 or more", () => {
    const mt = new MT19937(9);
    const draws = [0, 1, 2].map(() => mt.nextUint32());
    expect(Array.from(new TorchGenerator(9).randint(-3, 7, [3]).data)).toEqual(
      draws.map((d) => BigInt((d % 10) - 3)),
    );
    const mt64 = new MT19937(9);
    const hi = BigInt(mt64.nextUint32());
    const wide = ((hi << 32n) | BigInt(mt64.nextUint32())) % 2n ** 40n;
    expect(new TorchGenerator(9).randint(0, 2 ** 40, [1]).data[0]).toBe(wide);
    expect(() => new TorchGenerator(9).randint(5, 5, [1])).toThrow(InvalidArgumentError);
  });

  it("refuses unknown dtypes", () => {
    expect(() => new TorchGenerator(1).randn([2], "int8" as RandomDType)).toThrow(InvalidArgumentError);
  });

  it("reads case.json dtype names with or without torch.", () => {
    expect(parseRngDType(undefined)).toBe("float32");
    expect(parseRngDType("torch.float64")).toBe("float64");
    expect(parseRngDType("double")).toBe("float64");
    expect(parseRngDType("half")).toBe("float16");
    expect(parseRngDType("torch.bfloat16")).toBe("bfloat16");
    expect(parseRngDType("int64")).toBeUndefined();
  });
});
