import { describe, expect, it } from "vitest";
import { qk21, quad } from "./quadrature.js";
import { torchExpF32 } from "./torch-math.js";

describe("quad (adaptive Gauss-Kronrod 21)", () => {
  it("integrates polynomials exactly in one pass", () => {
    const r = qk21((x) => 3 * x * x - 2 * x + 1, 0, 2);
    expect(r.result).toBeCloseTo(8 - 4 + 2, 13);
    expect(quad((x) => x ** 5, -1, 3).value).toBeCloseTo((3 ** 6 - 1) / 6, 10);
  });
  it("is signed: reversed bounds negate the integral", () => {
    expect(quad((x) => x, 2, 0).value).toBeCloseTo(-2, 13);
  });
  it("reaches the requested accuracy on smooth and singular integrands", () => {
    expect(quad(Math.sin, 0, Math.PI).value).toBeCloseTo(2, 12);
    expect(quad(Math.exp, 0, 1).value).toBeCloseTo(Math.E - 1, 12);
    // sqrt has an unbounded derivative at 0: needs subdivision
    const r = quad(Math.sqrt, 0, 1);
    expect(Math.abs(r.value - 2 / 3)).toBeLessThan(1.49e-8);
    expect(r.error).toBeLessThan(1.49e-8);
  });
  it("returns 0 on an empty interval", () => {
    expect(quad(Math.exp, 1, 1)).toEqual({ value: 0, error: 0 });
  });
});

describe("torchExpF32 (SLEEF expf, 1 ulp)", () => {
  it("stays within one float32 ulp of e^x", () => {
    for (let x = -20; x <= 20; x += 0.0137) {
      const exact = Math.exp(Math.fround(x));
      const ulp = 2 ** (Math.floor(Math.log2(exact)) - 23);
      expect(Math.abs(torchExpF32(x) - exact)).toBeLessThanOrEqual(ulp);
    }
  });
  it("handles 0, the overflow/underflow cut-offs and NaN", () => {
    expect(torchExpF32(0)).toBe(1);
    expect(torchExpF32(-200)).toBe(0);
    expect(torchExpF32(200)).toBe(Infinity);
    expect(torchExpF32(NaN)).toBeNaN();
  });
});
