import { describe, expect, it } from "vitest";
import { at, pattern } from "../../test/helpers/scheduler-tensors.js";
import { SD_SCHEDULER_CONFIG } from "../../test/helpers/scheduler-config.js";
import { ConfigError, UnsupportedError } from "../errors.js";
import { DEFAULTS } from "./config.js";
import { DDIMInverseScheduler } from "./ddim-inverse.js";
import { DDIMScheduler } from "./ddim.js";

const SD = { ...SD_SCHEDULER_CONFIG, clip_sample: false, set_alpha_to_one: false } as const;
const shape = [1, 2, 2, 2];
const x = pattern(shape, 1);
const eps = pattern(shape, 2);

describe("DDIMInverseScheduler.setTimesteps", () => {
  it("ascends: leading k * (T // N) + offset, trailing reversed round(arange(T, 0, -T/N)) - 1", () => {
    const lead = new DDIMInverseScheduler(SD);
    lead.setTimesteps(4);
    expect(lead.timesteps).toEqual([1, 251, 501, 751]);
    lead.setTimesteps(8);
    expect(lead.timesteps).toEqual([1, 126, 251, 376, 501, 626, 751, 876]);
    const trail = new DDIMInverseScheduler({ ...SD, timestep_spacing: "trailing" });
    trail.setTimesteps(3);
    // arange(1000, 0, -333.33) = 1000, 666.67, 333.33 -> 1000, 667, 333 -> reversed, minus 1
    expect(trail.timesteps).toEqual([332, 666, 999]);
  });

  it("rejects linspace spacing and keeps diffusers' clip_sample = True default", () => {
    expect(() => new DDIMInverseScheduler({ ...SD, timestep_spacing: "linspace" })).toThrow(ConfigError);
    expect(DEFAULTS.DDIMInverseScheduler.clip_sample).toBe(true);
    expect(DEFAULTS.DDIMInverseScheduler.set_alpha_to_one).toBe(true);
  });
});

describe("DDIMInverseScheduler.step", () => {
  it("moves x from t - T // N to t: sqrt(a_t) x0 + sqrt(1 - a_t) eps", () => {
    const s = new DDIMInverseScheduler(SD);
    s.setTimesteps(8);
    expect(s.sourceTimestep(251)).toBe(126);
    const as = s.alphasCumprod[126] ?? NaN;
    const at_ = s.alphasCumprod[251] ?? NaN;
    const r = s.step(eps, 251, x);
    const x0 = (at(x, 5) - Math.sqrt(1 - as) * at(eps, 5)) / Math.sqrt(as);
    expect(at(r.predOriginalSample ?? x, 5)).toBeCloseTo(x0, 5);
    expect(at(r.prevSample, 5)).toBeCloseTo(Math.sqrt(at_) * x0 + Math.sqrt(1 - at_) * at(eps, 5), 5);
  });

  it("starts the first step from initial_alpha_cumprod (alpha_bar_0, or 1 with set_alpha_to_one)", () => {
    const s = new DDIMInverseScheduler(SD);
    s.setTimesteps(8);
    expect(s.sourceTimestep(1)).toBe(-124);
    expect(s.initialAlphaCumprod).toBe(s.alphasCumprod[0]);
    const one = new DDIMInverseScheduler({ ...SD, set_alpha_to_one: true });
    one.setTimesteps(8);
    // from alpha_bar = 1 the sample is x_0 itself: x_1 = sqrt(a_1) x + sqrt(1 - a_1) eps
    const a1 = one.alphasCumprod[1] ?? NaN;
    const r = one.step(eps, 1, x);
    expect(at(r.prevSample, 2)).toBeCloseTo(Math.sqrt(a1) * at(x, 2) + Math.sqrt(1 - a1) * at(eps, 2), 6);
    // The deprecated set_alpha_to_zero, when not null, replaces set_alpha_to_one (diffusers' __init__).
    expect(
      new DDIMInverseScheduler({ ...SD, set_alpha_to_one: true, set_alpha_to_zero: false })
        .initialAlphaCumprod,
    ).toBe(s.alphasCumprod[0]);
    expect(
      new DDIMInverseScheduler({ ...SD, set_alpha_to_one: false, set_alpha_to_zero: true })
        .initialAlphaCumprod,
    ).toBe(1);
    expect(
      new DDIMInverseScheduler({ ...SD, set_alpha_to_one: true, set_alpha_to_zero: null })
        .initialAlphaCumprod,
    ).toBe(1);
  });

  it("is undone by a DDIM step with the same eps (exact inverse for a fixed model output)", () => {
    const inv = new DDIMInverseScheduler(SD);
    const fwd = new DDIMScheduler(SD);
    inv.setTimesteps(8);
    fwd.setTimesteps(8);
    const up = inv.step(eps, 501, x).prevSample;
    const back = fwd.step(eps, 501, up).prevSample;
    for (let i = 0; i < x.data.length; i++) expect(at(back, i)).toBeCloseTo(at(x, i), 5);
  });

  it("has no add_noise", () => {
    const s = new DDIMInverseScheduler(SD);
    expect(() => s.addNoise()).toThrow(UnsupportedError);
  });
});
