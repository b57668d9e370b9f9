import { describe, expect, it } from "vitest";
import { ConstantNoise, at, filled, pattern } from "../../test/helpers/scheduler-tensors.js";
import { SD_SCHEDULER_CONFIG as SD } from "../../test/helpers/scheduler-config.js";
import { InvalidArgumentError } from "../errors.js";
import { DPMSolverMultistepScheduler } from "./dpm-solver-multistep.js";

const shape = [1, 1, 2, 2];

/** Runs a whole loop with model output = 0.05 x + pattern; returns the final sample and the last x0 prediction. */
function run(
  s: DPMSolverMultistepScheduler,
  n: number,
  generator?: ConstantNoise,
): { x: number[]; lastX0: number[] } {
  s.setTimesteps(n);
  let x = pattern(shape, 1);
  let lastX0: number[] = [];
  for (const t of s.timesteps) {
    const cur = x;
    const eps = filled(shape, (i) => 0.05 * at(cur, i) + Math.cos(i));
    const sigma = s.sigmas[s.timesteps.indexOf(t)] ?? NaN;
    const alpha = 1 / Math.sqrt(sigma * sigma + 1);
    lastX0 = Array.from(x.data, (v, i) => (v - sigma * alpha * at(eps, i)) / alpha);
    x = s.step(eps, t, x, generator === undefined ? {} : { generator }).prevSample;
  }
  return { x: Array.from(x.data), lastX0 };
}

describe("DPMSolverMultistepScheduler.setTimesteps", () => {
  it("uses round(linspace(0, T-1, N+1))[::-1][:-1] for linspace (499.5 -> 500)", () => {
    const s = new DPMSolverMultistepScheduler(SD);
    s.setTimesteps(10);
    expect(s.timesteps).toEqual([999, 899, 799, 699, 599, 500, 400, 300, 200, 100]);
    expect(s.sigmas).toHaveLength(11);
    expect(s.sigmas[10]).toBe(0);
    expect(s.initNoiseSigma).toBe(1);
  });
  it("spaces leading by (T // (N+1)) and trailing by T/N", () => {
    const lead = new DPMSolverMultistepScheduler({ ...SD, timestep_spacing: "leading" });
    lead.setTimesteps(4);
    // 1000 // 5 = 200: 800, 600, 400, 200 (+ steps_offset)
    expect(lead.timesteps).toEqual([801, 601, 401, 201]);
    const trail = new DPMSolverMultistepScheduler({ ...SD, timestep_spacing: "trailing" });
    trail.setTimesteps(4);
    expect(trail.timesteps).toEqual([999, 749, 499, 249]);
  });
  it("ends at sigma(t=0) with final_sigmas_type sigma_min", () => {
    const s = new DPMSolverMultistepScheduler({ ...SD, final_sigmas_type: "sigma_min" });
    s.setTimesteps(5);
    const a0 = s.alphasCumprod[0] ?? NaN;
    expect(s.sigmas[5]).toBeCloseTo(Math.sqrt((1 - a0) / a0), 7);
  });
  it("rounds Karras sigmas back to integer timesteps", () => {
    const s = new DPMSolverMultistepScheduler({ ...SD, use_karras_sigmas: true });
    s.setTimesteps(8);
    expect(s.timesteps[0]).toBe(999);
    expect(s.timesteps.every(Number.isInteger)).toBe(true);
    const aMax = s.alphasCumprod[999] ?? NaN;
    expect(s.sigmas[0]).toBeCloseTo(Math.sqrt((1 - aMax) / aMax), 4);
    expect(s.sigmas[8]).toBe(0);
  });
});

describe("DPMSolverMultistepScheduler.step", () => {
  it("lands exactly on the x0 prediction when the final sigma is 0 (first-order last step)", () => {
    for (const n of [10, 20]) {
      const r = run(new DPMSolverMultistepScheduler(SD), n);
      for (let i = 0; i < 4; i++) expect(r.x[i]).toBeCloseTo(r.lastX0[i] ?? NaN, 4);
    }
  });

  it("is first order on the first step: sigma'/sigma x - alpha' (e^-h - 1) x0", () => {
    const s = new DPMSolverMultistepScheduler(SD);
    s.setTimesteps(10);
    const x = pattern(shape, 1);
    const eps = pattern(shape, 2);
    const [s0 = 0, s1 = 0] = s.sigmas;
    const a0 = 1 / Math.sqrt(s0 * s0 + 1);
    const a1 = 1 / Math.sqrt(s1 * s1 + 1);
    const h = Math.log(a1 / (s1 * a1)) - Math.log(a0 / (s0 * a0));
    const x0 = (at(x, 1) - s0 * a0 * at(eps, 1)) / a0;
    const expected = ((s1 * a1) / (s0 * a0)) * at(x, 1) - a1 * (Math.exp(-h) - 1) * x0;
    expect(at(s.step(eps, 999, x).prevSample, 1)).toBeCloseTo(expected, 4);
  });

  it("differs between solver orders after the first step", () => {
    const first = run(new DPMSolverMultistepScheduler({ ...SD, solver_order: 1 }), 6).x;
    const second = run(new DPMSolverMultistepScheduler({ ...SD, solver_order: 2 }), 6).x;
    const third = run(new DPMSolverMultistepScheduler({ ...SD, solver_order: 3 }), 6).x;
    expect(first).not.toEqual(second);
    expect(second).not.toEqual(third);
    expect(third.every(Number.isFinite)).toBe(true);
  });

  it("draws noise for the SDE variant only", () => {
    const g = new ConstantNoise(0);
    run(new DPMSolverMultistepScheduler({ ...SD, algorithm_type: "sde-dpmsolver++" }), 4, g);
    expect(g.calls).toBe(4);
    const s = new DPMSolverMultistepScheduler({ ...SD, algorithm_type: "sde-dpmsolver++" });
    s.setTimesteps(4);
    const x = pattern(shape, 1);
    expect(() => s.step(x, 999, x)).toThrow(/options\.generator/);
  });

  it("supports the noise-prediction solver with a sigma_min end", () => {
    const r = run(
      new DPMSolverMultistepScheduler({ ...SD, algorithm_type: "dpmsolver", final_sigmas_type: "sigma_min" }),
      8,
    );
    expect(r.x.every(Number.isFinite)).toBe(true);
  });

  it("requires setTimesteps first", () => {
    const x = pattern(shape, 1);
    const call = (): unknown => new DPMSolverMultistepScheduler(SD).step(x, 999, x);
    expect(call).toThrow(InvalidArgumentError);
    expect(call).toThrow(/setTimesteps/);
  });
});

describe("DPMSolverMultistepScheduler.addNoise", () => {
  it("is alpha_t x0 + sigma_t noise with alpha_t = 1 / sqrt(sigma^2 + 1)", () => {
    const s = new DPMSolverMultistepScheduler(SD);
    s.setTimesteps(10);
    const x0 = pattern(shape, 1);
    const noise = pattern(shape, 2);
    const sigma = s.sigmas[5] ?? NaN;
    const alpha = 1 / Math.sqrt(sigma * sigma + 1);
    const r = s.addNoise(x0, noise, [500]);
    expect(at(r, 2)).toBeCloseTo(alpha * at(x0, 2) + sigma * alpha * at(noise, 2), 5);
  });
});
