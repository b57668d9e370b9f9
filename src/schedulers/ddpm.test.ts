import { describe, expect, it } from "vitest";
import { ConstantNoise, NO_NOISE, at, filled, pattern } from "../../test/helpers/scheduler-tensors.js";
import { SD_SCHEDULER_CONFIG } from "../../test/helpers/scheduler-config.js";
import { InvalidArgumentError } from "../errors.js";
import { DDPMScheduler } from "./ddpm.js";

const SD = { ...SD_SCHEDULER_CONFIG, clip_sample: false } as const;
const shape = [1, 2, 2, 2];

describe("DDPMScheduler.setTimesteps", () => {
  it("spaces timesteps for each timestep_spacing", () => {
    const s = new DDPMScheduler(SD);
    s.setTimesteps(4);
    expect(s.timesteps).toEqual([751, 501, 251, 1]);
    const lin = new DDPMScheduler({ ...SD, timestep_spacing: "linspace" });
    lin.setTimesteps(4);
    expect(lin.timesteps).toEqual([999, 666, 333, 0]);
    const tr = new DDPMScheduler({ ...SD, timestep_spacing: "trailing" });
    tr.setTimesteps(4);
    expect(tr.timesteps).toEqual([999, 749, 499, 249]);
    expect(tr.numInferenceSteps).toBe(4);
  });
  it("steps back by T // N for every spacing (as diffusers does)", () => {
    const s = new DDPMScheduler({ ...SD, timestep_spacing: "linspace" });
    s.setTimesteps(3);
    expect(s.previousTimestep(999)).toBe(666);
  });
  it("rejects more steps than training timesteps", () => {
    expect(() => new DDPMScheduler(SD).setTimesteps(1001)).toThrow(InvalidArgumentError);
  });
  it("runs custom timesteps, each step going to the next one and the last to -1", () => {
    const s = new DDPMScheduler(SD);
    s.setCustomTimesteps([900, 500, 120]);
    expect(s.timesteps).toEqual([900, 500, 120]);
    expect([900, 500, 120].map((t) => s.previousTimestep(t))).toEqual([500, 120, -1]);
    // the last step reaches alpha_bar = 1: x_0 itself, whatever the noise
    const x = pattern(shape);
    const out = s.step(filled(shape, () => 0.1), 120, x, { generator: new ConstantNoise(1) });
    expect(at(out.prevSample, 3)).toBeCloseTo(at(out.predOriginalSample!, 3), 6);
    expect(() => s.previousTimestep(700)).toThrow("one of the custom timesteps");
    expect(() => s.setCustomTimesteps([500, 900])).toThrow("descending");
    expect(() => s.setCustomTimesteps([1000, 10])).toThrow("below num_train_timesteps");
    s.setTimesteps(4);
    expect(s.previousTimestep(751)).toBe(501);
  });
});

describe("DDPMScheduler.step", () => {
  const x = pattern(shape, 1);
  const out = pattern(shape, 2);

  it("predicts x0 for each prediction_type", () => {
    for (const prediction_type of ["epsilon", "v_prediction", "sample"] as const) {
      const s = new DDPMScheduler({ ...SD, prediction_type });
      s.setTimesteps(10);
      const a = s.alphasCumprod[501] ?? NaN;
      const x0 = s.step(out, 501, x, { generator: new ConstantNoise(0) }).predOriginalSample;
      const expected =
        prediction_type === "epsilon"
          ? (at(x, 3) - Math.sqrt(1 - a) * at(out, 3)) / Math.sqrt(a)
          : prediction_type === "v_prediction"
            ? Math.sqrt(a) * at(x, 3) - Math.sqrt(1 - a) * at(out, 3)
            : at(out, 3);
      expect(x0 === undefined ? NaN : at(x0, 3)).toBeCloseTo(expected, 5);
    }
  });

  it("clips x0 with clip_sample", () => {
    const s = new DDPMScheduler({
      ...SD,
      clip_sample: true,
      clip_sample_range: 0.5,
      prediction_type: "sample",
    });
    s.setTimesteps(10);
    const x0 = s.step(
      filled(shape, () => 3),
      0,
      x,
    ).predOriginalSample;
    expect(x0?.data.every((v) => v === 0.5)).toBe(true);
  });

  it("draws noise for t > 0 and none at t = 0", () => {
    const s = new DDPMScheduler(SD);
    s.setTimesteps(10);
    const g = new ConstantNoise(1);
    s.step(out, 101, x, { generator: g });
    expect(g.calls).toBe(1);
    expect(() => s.step(out, 0, x, { generator: NO_NOISE })).not.toThrow();
  });

  it("needs a generator for stochastic steps", () => {
    const s = new DDPMScheduler(SD);
    s.setTimesteps(10);
    const call = (): unknown => s.step(out, 101, x);
    expect(call).toThrow(InvalidArgumentError);
    expect(call).toThrow(/for options\.generator/);
    try {
      call();
    } catch (e) {
      expect(e instanceof InvalidArgumentError && e.code).toBe("E_INVALID_ARGUMENT");
    }
  });

  it("rejects bad timesteps and mismatched shapes", () => {
    const s = new DDPMScheduler(SD);
    expect(() => s.step(out, 1000, x, { generator: NO_NOISE })).toThrow(/integer timestep in \[0, 999\]/);
    expect(() => s.step(out, 1.5, x)).toThrow(InvalidArgumentError);
    expect(() => s.step(pattern([1, 2, 2, 1]), 10, x)).toThrow(/for modelOutput/);
  });

  it("splits learned_range outputs into mean and variance halves", () => {
    const s = new DDPMScheduler({ ...SD, variance_type: "learned_range" });
    s.setTimesteps(10);
    const both = filled([1, 4, 2, 2], (i) => (i < 8 ? at(out, i) : 1)); // frac = 1 -> variance = beta_t
    const a = s.step(both, 501, x, { generator: new ConstantNoise(1) }).prevSample;
    const b = s.step(both, 501, x, { generator: new ConstantNoise(0) }).prevSample;
    const aT = s.alphasCumprod[501] ?? NaN;
    const aP = s.alphasCumprod[401] ?? NaN;
    expect(at(a, 0) - at(b, 0)).toBeCloseTo(Math.sqrt(1 - aT / aP), 5);
    expect(a.shape).toEqual(shape);
  });
});

describe("DDPMScheduler.addNoise", () => {
  it("is sqrt(abar_t) x0 + sqrt(1 - abar_t) noise per batch element", () => {
    const s = new DDPMScheduler(SD);
    const x0 = filled([2, 1, 1, 2], () => 1);
    const noise = filled([2, 1, 1, 2], () => 2);
    const r = s.addNoise(x0, noise, [10, 900]);
    const a10 = s.alphasCumprod[10] ?? NaN;
    const a900 = s.alphasCumprod[900] ?? NaN;
    expect(at(r, 0)).toBeCloseTo(Math.sqrt(a10) + 2 * Math.sqrt(1 - a10), 6);
    expect(at(r, 3)).toBeCloseTo(Math.sqrt(a900) + 2 * Math.sqrt(1 - a900), 6);
    expect(() => s.addNoise(x0, noise, [1, 2, 3])).toThrow(/1 or 2 values/);
    expect(() => s.addNoise(x0, noise, [1000])).toThrow(InvalidArgumentError);
  });
});
