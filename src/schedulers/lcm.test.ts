import { describe, expect, it } from "vitest";
import { ConstantNoise, NO_NOISE, at, pattern } from "../../test/helpers/scheduler-tensors.js";
import { SD_SCHEDULER_CONFIG } from "../../test/helpers/scheduler-config.js";
import { InvalidArgumentError } from "../errors.js";
import { DEFAULTS } from "./config.js";
import { LCMScheduler, lcmBoundaryScalings, lcmOriginTimesteps } from "./lcm.js";

const SD = { ...SD_SCHEDULER_CONFIG, set_alpha_to_one: false } as const;
const shape = [1, 2, 2, 2];
const x = pattern(shape, 1);
const eps = pattern(shape, 2);

describe("LCMScheduler config", () => {
  it("takes diffusers 0.26.3 LCMScheduler defaults", () => {
    expect(DEFAULTS.LCMScheduler).toMatchObject({
      beta_schedule: "scaled_linear",
      beta_start: 0.00085,
      beta_end: 0.012,
      original_inference_steps: 50,
      clip_sample: false,
      set_alpha_to_one: true,
      timestep_scaling: 10,
    });
  });
});

describe("LCM boundary conditions", () => {
  it("c_skip = 0.25 / ((10 t)^2 + 0.25), c_out = 10 t / sqrt((10 t)^2 + 0.25)", () => {
    // t = 1: (10 t)^2 + 0.25 = 100.25
    const one = lcmBoundaryScalings(1, 10);
    expect(one.cSkip).toBeCloseTo(0.25 / 100.25, 9);
    expect(one.cOut).toBeCloseTo(10 / Math.sqrt(100.25), 7);
    // t = 0: the consistency function is the identity (c_skip = 1, c_out = 0)
    expect(lcmBoundaryScalings(0, 10)).toEqual({ cSkip: 1, cOut: 0 });
    // c_out^2 + c_skip = 1 at every t; at large t the model's x_0 is taken as is
    for (const t of [4, 19, 259, 999]) {
      const { cSkip, cOut } = lcmBoundaryScalings(t, 10);
      expect(cOut * cOut + cSkip).toBeCloseTo(1, 6);
    }
    expect(lcmBoundaryScalings(999, 10).cSkip).toBeLessThan(3e-9);
  });
});

describe("LCMScheduler.setTimesteps", () => {
  it("indexes the reversed distillation grid at floor(linspace(0, len, N, endpoint=False))", () => {
    expect(lcmOriginTimesteps(1000, 50, 1).slice(0, 3)).toEqual([19, 39, 59]);
    expect(lcmOriginTimesteps(1000, 50, 1)).toHaveLength(50);
    const s = new LCMScheduler(SD);
    s.setTimesteps(4);
    // grid 999, 979, ..., 19; indices 0, 12 (12.5), 25, 37 (37.5)
    expect(s.timesteps).toEqual([999, 759, 499, 259]);
    s.setTimesteps(3, { originalInferenceSteps: 20 });
    // k = 50: grid 999, 949, ..., 49; indices 0, 6 (6.67), 13 (13.33)
    expect(s.timesteps).toEqual([999, 699, 349]);
    s.setTimesteps(2, { strength: 0.5 });
    // 25 grid entries 499, ..., 19; indices 0, 12
    expect(s.timesteps).toEqual([499, 259]);
  });

  it("ignores timestep_spacing and steps_offset", () => {
    const a = new LCMScheduler({ ...SD, timestep_spacing: "trailing", steps_offset: 0 });
    const b = new LCMScheduler({ ...SD, timestep_spacing: "linspace", steps_offset: 1 });
    a.setTimesteps(8);
    b.setTimesteps(8);
    expect(a.timesteps).toEqual(b.timesteps);
  });

  it("takes custom descending timesteps (strength keeps the last ones, N stays the full length)", () => {
    const s = new LCMScheduler(SD);
    s.setTimesteps(undefined, { timesteps: [999, 499, 99, 19] });
    expect(s.timesteps).toEqual([999, 499, 99, 19]);
    expect(s.numInferenceSteps).toBe(4);
    s.setTimesteps(undefined, { timesteps: [999, 499, 99, 19], strength: 0.5 });
    expect(s.timesteps).toEqual([99, 19]);
    expect(s.numInferenceSteps).toBe(4);
  });

  it("rejects what diffusers rejects", () => {
    const s = new LCMScheduler(SD);
    expect(() => s.setTimesteps(51)).toThrow(InvalidArgumentError);
    expect(() => s.setTimesteps(26, { strength: 0.5 })).toThrow(/at most int/);
    expect(() => s.setTimesteps(4, { timesteps: [999, 499] })).toThrow(/exactly one/);
    expect(() => s.setTimesteps(undefined)).toThrow(/exactly one/);
    expect(() => s.setTimesteps(undefined, { timesteps: [499, 999] })).toThrow(/descending/);
    expect(() => s.setTimesteps(undefined, { timesteps: [1000, 499] })).toThrow(InvalidArgumentError);
    expect(() => s.setTimesteps(4, { originalInferenceSteps: 2000 })).toThrow(InvalidArgumentError);
  });
});

describe("LCMScheduler.step", () => {
  it("noises the denoised sample to the NEXT timestep of the run, and ends on denoised", () => {
    const s = new LCMScheduler(SD);
    s.setTimesteps(2);
    expect(s.timesteps).toEqual([999, 499]);
    const a = s.alphasCumprod[999] ?? NaN;
    const next = s.alphasCumprod[499] ?? NaN;
    const noise = new ConstantNoise(0.5);
    const r = s.step(eps, 999, x, { generator: noise });
    expect(noise.calls).toBe(1);
    const x0 = (at(x, 3) - Math.sqrt(1 - a) * at(eps, 3)) / Math.sqrt(a);
    const { cSkip, cOut } = lcmBoundaryScalings(999, 10);
    const denoised = cOut * x0 + cSkip * at(x, 3);
    expect(at(r.denoised ?? x, 3)).toBeCloseTo(denoised, 5);
    expect(at(r.prevSample, 3)).toBeCloseTo(Math.sqrt(next) * denoised + Math.sqrt(1 - next) * 0.5, 5);
    const last = s.step(eps, 499, r.prevSample, { generator: NO_NOISE });
    expect(last.prevSample).toBe(last.denoised);
  });

  it("returns the sample itself at t = 0 (c_skip = 1, c_out = 0)", () => {
    const s = new LCMScheduler(SD);
    s.setTimesteps(undefined, { timesteps: [0] });
    const r = s.step(eps, 0, x, { generator: NO_NOISE });
    expect(Array.from(r.prevSample.data)).toEqual(Array.from(x.data));
  });

  it("needs a generator for every step but the last, and setTimesteps first", () => {
    const s = new LCMScheduler(SD);
    expect(() => s.step(eps, 999, x)).toThrow(InvalidArgumentError);
    s.setTimesteps(2);
    expect(() => s.step(eps, 999, x)).toThrow(/options\.generator/);
  });
});
