import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../errors.js";
import { fmaf, log256, sincos256 } from "./avx-mathfun.js";
import { MT19937 } from "./mt19937.js";
import { type CpuCapability, TorchGenerator, rand, randn } from "./torch-generator.js";

describe("MT19937", () => {
  it("gives the standard first outputs for seed 5489", () => {
    const mt = new MT19937(5489);
    expect([1, 2, 3, 4, 5].map(() => mt.nextUint32())).toEqual([
      3499211612, 581869302, 3890346734, 3586334585, 545404204,
    ]);
  });

  it("gives 4123659995 as the 10000th output for seed 5489 (C++ std::mt19937 requirement)", () => {
    const mt = new MT19937(5489);
    let last = 0;
    for (let i = 0; i < 10000; i++) last = mt.nextUint32();
    expect(last).toBe(4123659995);
  });
});

describe("TorchGenerator", () => {
  it("seeds with the low 32 bits of the uint64 seed, negative seeds wrapping like torch", () => {
    const a = new TorchGenerator(5).rand([8]).data;
    expect(new TorchGenerator(2 ** 32 + 5).rand([8]).data).toEqual(a);
    expect(new TorchGenerator(5n).rand([8]).data).toEqual(a);
    const minusOne = new TorchGenerator(-1).rand([8]).data;
    expect(new TorchGenerator(2n ** 64n - 1n).rand([8]).data).toEqual(minusOne);
    expect(new TorchGenerator(0xffffffff).rand([8]).data).toEqual(minusOne);
    expect(new TorchGenerator(-1).initialSeed()).toBe(2n ** 64n - 1n);
  });

  it("draws rand as 24-bit multiples of 2^-24 in [0, 1)", () => {
    const values = new TorchGenerator(3).rand([1000]).data;
    for (const v of values) {
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThan(1);
      expect(Number.isInteger(v * 2 ** 24)).toBe(true);
    }
    const mt = new MT19937(3);
    expect(values[0]).toBe((mt.nextUint32() & 0xffffff) / 2 ** 24);
  });

  it("continues the stream across calls, like a torch generator", () => {
    const g = new TorchGenerator(11);
    const first = g.rand([3]).data;
    const second = g.rand([2]).data;
    expect([...first, ...second]).toEqual([...new TorchGenerator(11).rand([5]).data]);
    const h = new TorchGenerator(11);
    h.randn([20]);
    expect(h.randn([20]).data).not.toEqual(new TorchGenerator(11).randn([20]).data);
    h.manualSeed(11);
    expect(h.randn([20]).data).toEqual(new TorchGenerator(11).randn([20]).data);
  });

  it("caches the second Box-Muller value of the scalar (< 16 elements) path across calls", () => {
    const g = new TorchGenerator(9);
    const one = g.randn([1]).data[0];
    const two = g.randn([1]).data[0];
    const pair = new TorchGenerator(9).randn([2]).data;
    expect([one, two]).toEqual([pair[0], pair[1]]);
  });

  it("redraws the last 16 values for a ragged tail (>= 16 elements)", () => {
    const sixteen = new TorchGenerator(7).randn([16]).data;
    const seventeen = new TorchGenerator(7).randn([17]).data;
    expect(seventeen[0]).toBe(sixteen[0]);
    expect(seventeen[1]).not.toBe(sixteen[1]);
  });

  it("has roughly standard-normal statistics and honours the shape", () => {
    const t = randn([4, 64, 64], { seed: 0 });
    expect(t.shape).toEqual([4, 64, 64]);
    const n = t.data.length;
    const mean = t.data.reduce((s, v) => s + v, 0) / n;
    const variance = t.data.reduce((s, v) => s + (v - mean) ** 2, 0) / n;
    expect(Math.abs(mean)).toBeLessThan(0.02);
    expect(Math.abs(variance - 1)).toBeLessThan(0.03);
    expect(rand([0], { seed: 1 }).data.length).toBe(0);
  });

  it("keeps the portable kernel within 5e-6 of the AVX2 one", () => {
    const avx = randn([2, 4, 32, 32], { seed: 1234 }).data;
    const portable = randn([2, 4, 32, 32], { seed: 1234, cpuCapability: "default" }).data;
    let worst = 0;
    avx.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - (portable[i] ?? NaN)))));
    expect(worst).toBeGreaterThan(0);
    expect(worst).toBeLessThan(5e-6);
  });

  it("rejects bad seeds, shapes and kernels with InvalidArgumentError", () => {
    const neon: string = "neon";
    const cases: [() => unknown, string][] = [
      [() => new TorchGenerator(1.5), "for seed"],
      [() => new TorchGenerator(2n ** 64n), "[-2^63, 2^64 - 1]"],
      [() => new TorchGenerator(-(2n ** 63n) - 1n), "for seed"],
      [() => new TorchGenerator(1).randn([2, -1]), "for shape"],
      [() => new TorchGenerator(1).rand([1.5]), "for shape"],
      [() => new TorchGenerator(1, { cpuCapability: neon as CpuCapability }), "for cpuCapability"],
    ];
    for (const [fn, fragment] of cases) {
      try {
        fn();
        expect.unreachable("should have thrown");
      } catch (error) {
        expect(error).toBeInstanceOf(InvalidArgumentError);
        expect((error as InvalidArgumentError).code).toBe("E_INVALID_ARGUMENT");
        expect((error as Error).message).toContain(fragment);
      }
    }
  });
});

describe("avx_mathfun emulation", () => {
  it("fmaf rounds once, where double-then-float rounding is off by one ulp", () => {
    // A*B = 2^46 + 4688 for A = 2^23 + 2896, B = 2^23 - 2895: a*b + 1 lies just above a float midpoint.
    const a = (2 ** 23 + 2896) / 2 ** 23;
    const b = (2 ** 23 - 2895) * 2 ** -47;
    expect(Math.fround(a * b + 1)).toBe(1);
    expect(fmaf(a, b, 1)).toBe(Math.fround(1 + 2 ** -23));
    expect(fmaf(2, 3, 0.5)).toBe(6.5);
  });

  it("log256 and sincos256 approximate log/sin/cos to float precision", () => {
    for (let i = 1; i <= 1000; i++) {
      const x = Math.fround(i / 1000);
      expect(Math.abs(log256(x) - Math.log(x))).toBeLessThan(3e-7 * Math.max(1, Math.abs(Math.log(x))));
      const theta = Math.fround((2 * Math.PI * i) / 1000);
      const [s, c] = sincos256(theta);
      expect(Math.abs(s - Math.sin(theta))).toBeLessThan(3e-7);
      expect(Math.abs(c - Math.cos(theta))).toBeLessThan(3e-7);
    }
    expect(log256(1)).toBe(0);
    expect(Number.isNaN(log256(0))).toBe(true);
  });
});
