import { describe, expect, it } from "vitest";
import { ConstantNoise, NO_NOISE, at, filled, pattern } from "../../test/helpers/scheduler-tensors.js";
import { SD_SCHEDULER_CONFIG } from "../../test/helpers/scheduler-config.js";
import { InvalidArgumentError } from "../errors.js";
import { DDIMScheduler } from "./ddim.js";

const SD = { ...SD_SCHEDULER_CONFIG, clip_sample: false } as const;
const shape = [1, 2, 2, 2];
const x = pattern(shape, 1);
const eps = pattern(shape, 2);

describe("DDIMScheduler.setTimesteps", () => {
  it("spaces timesteps for each timestep_spacing", () => {
    const lead = new DDIMScheduler({ ...SD, set_alpha_to_one: false });
    lead.setTimesteps(10);
    expect(lead.timesteps).toEqual([901, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
    const lin = new DDIMScheduler({ ...SD, timestep_spacing: "linspace" });
    lin.setTimesteps(5);
    // round(linspace(0, 999, 5)) = 0, 250 (249.75), 500 (499.5 -> even), 749 (749.25), 999
    expect(lin.timesteps).toEqual([999, 749, 500, 250, 0]);
    const tr = new DDIMScheduler({ ...SD, timestep_spacing: "trailing" });
    tr.setTimesteps(5);
    expect(tr.timesteps).toEqual([999, 799, 599, 399, 199]);
  });
});

describe("DDIMScheduler.step (eta = 0)", () => {
  it("is sqrt(abar_prev) x0 + sqrt(1 - abar_prev) eps", () => {
    const s = new DDIMScheduler(SD);
    s.setTimesteps(10);
    const a = s.alphasCumprod[501] ?? NaN;
    const ap = s.alphasCumprod[401] ?? NaN;
    const r = s.step(eps, 501, x, { generator: NO_NOISE });
    const x0 = (at(x, 5) - Math.sqrt(1 - a) * at(eps, 5)) / Math.sqrt(a);
    expect(at(r.prevSample, 5)).toBeCloseTo(Math.sqrt(ap) * x0 + Math.sqrt(1 - ap) * at(eps, 5), 5);
  });

  it("ends on x0 with set_alpha_to_one and on alpha_bar_0 without it", () => {
    const one = new DDIMScheduler({ ...SD, set_alpha_to_one: true });
    one.setTimesteps(10);
    const r1 = one.step(eps, 1, x);
    expect(at(r1.prevSample, 2)).toBeCloseTo(at(r1.predOriginalSample ?? x, 2), 6);
    const zero = new DDIMScheduler({ ...SD, set_alpha_to_one: false });
    zero.setTimesteps(10);
    expect(zero.finalAlphaCumprod).toBe(zero.alphasCumprod[0]);
    const r0 = zero.step(eps, 1, x);
    const a0 = zero.alphasCumprod[0] ?? NaN;
    const x0 = at(r0.predOriginalSample ?? x, 2);
    expect(at(r0.prevSample, 2)).toBeCloseTo(Math.sqrt(a0) * x0 + Math.sqrt(1 - a0) * at(eps, 2), 5);
  });

  it("derives eps from x0 for v_prediction and sample", () => {
    const v = new DDIMScheduler({ ...SD, prediction_type: "v_prediction" });
    v.setTimesteps(10);
    const a = v.alphasCumprod[501] ?? NaN;
    const rv = v.step(eps, 501, x);
    expect(at(rv.predOriginalSample ?? x, 0)).toBeCloseTo(
      Math.sqrt(a) * at(x, 0) - Math.sqrt(1 - a) * at(eps, 0),
      5,
    );
    const smp = new DDIMScheduler({ ...SD, prediction_type: "sample" });
    smp.setTimesteps(10);
    expect(at(smp.step(eps, 501, x).predOriginalSample ?? x, 0)).toBe(at(eps, 0));
  });
});

describe("DDIMScheduler.step (eta > 0)", () => {
  it("adds eta * sqrt((1 - a') / (1 - a) (1 - a / a')) times the noise", () => {
    const s = new DDIMScheduler(SD);
    s.setTimesteps(10);
    const a = s.alphasCumprod[501] ?? NaN;
    const ap = s.alphasCumprod[401] ?? NaN;
    const sigma = Math.sqrt(((1 - ap) / (1 - a)) * (1 - a / ap));
    const withNoise = s.step(eps, 501, x, { eta: 1, varianceNoise: filled(shape, () => 1) });
    const noNoise = s.step(eps, 501, x, { eta: 1, generator: new ConstantNoise(0) });
    expect(at(withNoise.prevSample, 0) - at(noNoise.prevSample, 0)).toBeCloseTo(sigma, 5);
    const x0 = at(noNoise.predOriginalSample ?? x, 0);
    expect(at(noNoise.prevSample, 0)).toBeCloseTo(
      Math.sqrt(ap) * x0 + Math.sqrt(1 - ap - sigma * sigma) * at(eps, 0),
      5,
    );
  });

  it("rejects missing or doubled noise and a negative eta", () => {
    const s = new DDIMScheduler(SD);
    s.setTimesteps(10);
    expect(() => s.step(eps, 501, x, { eta: 0.5 })).toThrow(/options\.generator/);
    expect(() => s.step(eps, 501, x, { eta: 0.5, generator: new ConstantNoise(), varianceNoise: x })).toThrow(
      /either varianceNoise or generator/,
    );
    expect(() => s.step(eps, 501, x, { eta: -1 })).toThrow(InvalidArgumentError);
  });

  it("requires setTimesteps before step", () => {
    const call = (): unknown => new DDIMScheduler(SD).step(eps, 501, x);
    expect(call).toThrow(InvalidArgumentError);
    expect(call).toThrow(/call scheduler\.setTimesteps\(n\) first/);
  });
});
