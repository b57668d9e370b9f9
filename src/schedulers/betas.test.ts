import { describe, expect, it } from "vitest";
import { ConfigError } from "../errors.js";
import { alphasCumprodFromBetas, betasForAlphaBar, makeBetas, rescaleZeroTerminalSnr } from "./betas.js";
import { DEFAULTS } from "./config.js";

const f32 = Math.fround;
const base = { ...DEFAULTS.DDPMScheduler };

describe("makeBetas", () => {
  it("linear: float32 linspace from beta_start to beta_end", () => {
    const b = makeBetas({ ...base, beta_schedule: "linear" });
    expect(b).toHaveLength(1000);
    expect(b[0]).toBe(f32(0.0001));
    expect(b[999]).toBe(f32(0.02));
  });

  it("scaled_linear: squares a float32 linspace of square roots", () => {
    const b = makeBetas({ ...base, beta_schedule: "scaled_linear", beta_start: 0.00085, beta_end: 0.012 });
    const r0 = f32(Math.sqrt(0.00085));
    const r1 = f32(Math.sqrt(0.012));
    expect(b[0]).toBe(f32(r0 * r0));
    expect(b[999]).toBe(f32(r1 * r1));
    expect(b[500]).toBeCloseTo(
      (Math.sqrt(0.00085) + (500 / 999) * (Math.sqrt(0.012) - Math.sqrt(0.00085))) ** 2,
      8,
    );
  });

  it("squaredcos_cap_v2: 1 - abar((i+1)/T) / abar(i/T) with abar(t) = cos((t+0.008)/1.008 pi/2)^2, capped at 0.999", () => {
    const b = makeBetas({ ...base, beta_schedule: "squaredcos_cap_v2" });
    const abar = (t: number): number => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
    expect(b[0]).toBe(f32(1 - abar(1 / 1000) / abar(0)));
    expect(b[999]).toBe(f32(0.999));
    expect(betasForAlphaBar(4, 0.999, "exp")[0]).toBe(f32(1 - Math.exp(-3)));
  });

  it("sigmoid (DDPM): sigmoid(linspace(-6, 6)) scaled into [beta_start, beta_end]", () => {
    const b = makeBetas({ ...base, beta_schedule: "sigmoid", num_train_timesteps: 3 });
    expect(b[1]).toBeCloseTo(0.0001 + 0.5 * (0.02 - 0.0001), 8);
    expect(b[0]).toBeCloseTo(0.0001 + (0.02 - 0.0001) / (1 + Math.exp(6)), 8);
  });

  it("prefers trained_betas", () => {
    expect(Array.from(makeBetas({ ...base, num_train_timesteps: 2, trained_betas: [0.25, 0.5] }))).toEqual([
      0.25, 0.5,
    ]);
  });

  it("throws ConfigError for an unknown schedule", () => {
    const bad = { ...base, beta_schedule: "cubic" as "linear" };
    expect(() => makeBetas(bad, "cfg.json")).toThrow(ConfigError);
    expect(() => makeBetas(bad, "cfg.json")).toThrow(/cfg\.json: field "beta_schedule"/);
  });
});

describe("alphasCumprodFromBetas", () => {
  it("is the running product of 1 - beta", () => {
    expect(Array.from(alphasCumprodFromBetas(Float32Array.from([0.5, 0.5, 0.75])))).toEqual([
      0.5, 0.25, 0.0625,
    ]);
  });
});

describe("rescaleZeroTerminalSnr", () => {
  it("makes the last alpha_bar zero and keeps the first", () => {
    const betas = makeBetas({
      ...base,
      beta_schedule: "scaled_linear",
      beta_start: 0.00085,
      beta_end: 0.012,
    });
    const before = alphasCumprodFromBetas(betas);
    const after = alphasCumprodFromBetas(rescaleZeroTerminalSnr(betas));
    expect(after[999]).toBe(0);
    expect(after[0]).toBeCloseTo(before[0] ?? 0, 6);
    // sqrt(abar) is an affine map of the original: check the midpoint
    const s = (a: Float32Array, i: number): number => Math.sqrt(a[i] ?? 0);
    const expectedMid = ((s(before, 500) - s(before, 999)) * s(before, 0)) / (s(before, 0) - s(before, 999));
    expect(s(after, 500)).toBeCloseTo(expectedMid, 5);
  });
});
