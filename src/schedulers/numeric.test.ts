import { describe, expect, it } from "vitest";
import {
  cumprodF32,
  npArange,
  npInterp,
  npLinspace,
  quantileLinear,
  roundHalfEven,
  torchLinspaceF32,
} from "./numeric.js";

const f32 = Math.fround;

describe("roundHalfEven (numpy round)", () => {
  it("sends ties to the even neighbour and everything else to the nearest integer", () => {
    expect([499.5, 998.5, 0.5, 1.5, -0.5, -1.5, 2.4999, 2.5001].map(roundHalfEven)).toEqual([
      500, 998, 0, 2, 0, -2, 2, 3,
    ]);
  });
});

describe("npLinspace", () => {
  it("includes both endpoints and spaces evenly", () => {
    expect(npLinspace(0, 999, 4)).toEqual([0, 333, 666, 999]);
    expect(npLinspace(0, 1, 5)).toEqual([0, 0.25, 0.5, 0.75, 1]);
  });
  it("handles one and zero points like numpy", () => {
    expect(npLinspace(3, 7, 1)).toEqual([3]);
    expect(npLinspace(3, 7, 0)).toEqual([]);
  });
  it("gives the fractional float32 Euler timesteps of the golden README (N = 20)", () => {
    expect(f32(npLinspace(0, 999, 20)[18] ?? 0)).toBe(f32(946.42108));
  });
});

describe("npArange", () => {
  it("has ceil((stop - start) / step) elements", () => {
    expect(npArange(1000, 0, -100)).toHaveLength(10);
    expect(npArange(1000, 0, -1000 / 3)).toHaveLength(3);
    expect(npArange(0, 1, 0.3)).toHaveLength(4);
    expect(npArange(0, 0, 1)).toEqual([]);
  });
  it("fills start + i * ((start + step) - start)", () => {
    const values = npArange(1000, 0, -1000 / 3);
    expect(values[0]).toBe(1000);
    expect(values[1]).toBeCloseTo(666.6667, 3);
    expect(values[2]).toBeCloseTo(333.3333, 3);
  });
});

describe("torchLinspaceF32", () => {
  it("returns float32 values with exact endpoints", () => {
    const v = torchLinspaceF32(0.0001, 0.02, 1000);
    expect(v[0]).toBe(f32(0.0001));
    expect(v[999]).toBe(f32(0.02));
    expect(v[500]).toBeCloseTo(0.0001 + (0.0199 * 500) / 999, 9);
  });
  it("matches the exact grid when it is representable", () => {
    expect(Array.from(torchLinspaceF32(0, 1, 5))).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(Array.from(torchLinspaceF32(-6, 6, 13))).toEqual([-6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6]);
  });
  it("fills a single step with the start", () => {
    expect(Array.from(torchLinspaceF32(2, 5, 1))).toEqual([2]);
  });
});

describe("cumprodF32", () => {
  it("accumulates in double and rounds each prefix once", () => {
    const a = f32(0.99385);
    const b = f32(0.97715);
    const c = f32(0.96345);
    const out = cumprodF32(Float32Array.from([a, b, c]));
    // exact product 0.93564537057...; the nearest float32 is 0.935645341873169
    expect(out[2]).toBe(f32(0.935645341873169));
    // a float32 running product would have rounded twice and landed one ulp higher
    expect(out[2]).not.toBe(f32(f32(a * b) * c));
  });
});

describe("npInterp", () => {
  const xp = [0, 1, 2, 3];
  const fp = [10, 20, 40, 80];
  it("interpolates linearly between knots", () => {
    expect(npInterp([0.5, 1.25, 2.75], xp, fp)).toEqual([15, 25, 70]);
  });
  it("returns knot values exactly and clamps outside", () => {
    expect(npInterp([0, 2, 3, -1, 5], xp, fp)).toEqual([10, 40, 80, 10, 80]);
  });
});

describe("quantileLinear", () => {
  it("interpolates between ranks like torch.quantile", () => {
    expect(quantileLinear([1, 2, 3, 4, 5], 0.5)).toBe(3);
    expect(quantileLinear([4, 1, 3, 2], 0.5)).toBe(2.5);
    expect(quantileLinear([0, 10], 0.995)).toBeCloseTo(9.95, 5);
  });
});
