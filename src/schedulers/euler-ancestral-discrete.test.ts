import { describe, expect, it } from "vitest";
import { ConstantNoise, at, pattern } from "../../test/helpers/scheduler-tensors.js";
import { SD_SCHEDULER_CONFIG as SD } from "../../test/helpers/scheduler-config.js";
import { InvalidArgumentError } from "../errors.js";
import { EulerAncestralDiscreteScheduler } from "./euler-ancestral-discrete.js";

const shape = [1, 1, 2, 2];

describe("EulerAncestralDiscreteScheduler", () => {
  it("has the Euler timesteps for each spacing", () => {
    const s = new EulerAncestralDiscreteScheduler(SD);
    s.setTimesteps(4);
    expect(s.timesteps).toEqual([999, 666, 333, 0]);
    const lead = new EulerAncestralDiscreteScheduler({ ...SD, timestep_spacing: "leading" });
    lead.setTimesteps(4);
    expect(lead.timesteps).toEqual([751, 501, 251, 1]);
    expect(lead.initNoiseSigma).toBeCloseTo(Math.sqrt((lead.sigmas[0] ?? 0) ** 2 + 1), 5);
    const trail = new EulerAncestralDiscreteScheduler({ ...SD, timestep_spacing: "trailing" });
    trail.setTimesteps(4);
    expect(trail.timesteps).toEqual([999, 749, 499, 249]);
  });

  it("splits the step into a deterministic part to sigma_down and noise of sigma_up", () => {
    const s = new EulerAncestralDiscreteScheduler(SD);
    s.setTimesteps(10);
    const x = pattern(shape, 1);
    const eps = pattern(shape, 2);
    const sigma = s.sigmas[2] ?? NaN;
    const next = s.sigmas[3] ?? NaN;
    const up = Math.sqrt((next ** 2 * (sigma ** 2 - next ** 2)) / sigma ** 2);
    const down = Math.sqrt(next ** 2 - up ** 2);
    s.setTimesteps(10);
    const t = s.timesteps[2] ?? 0;
    const quiet = s.step(eps, t, x, { generator: new ConstantNoise(0) });
    expect(at(quiet.prevSample, 3)).toBeCloseTo(at(x, 3) + at(eps, 3) * (down - sigma), 4);
    s.setTimesteps(10);
    const noisy = s.step(eps, t, x, { generator: new ConstantNoise(1) });
    expect(at(noisy.prevSample, 3) - at(quiet.prevSample, 3)).toBeCloseTo(up, 4);
    // sigma_up^2 + sigma_down^2 = sigma_next^2
    expect(up ** 2 + down ** 2).toBeCloseTo(next ** 2, 10);
  });

  it("needs a generator on every step", () => {
    const s = new EulerAncestralDiscreteScheduler(SD);
    s.setTimesteps(10);
    const x = pattern(shape, 1);
    const call = (): unknown => s.step(x, s.timesteps[0] ?? 0, x);
    expect(call).toThrow(InvalidArgumentError);
    expect(call).toThrow(/options\.generator/);
  });

  it("rejects stepping past the end of the run", () => {
    const s = new EulerAncestralDiscreteScheduler(SD);
    s.setTimesteps(1);
    const x = pattern(shape, 1);
    const g = new ConstantNoise(0);
    s.step(x, s.timesteps[0] ?? 0, x, { generator: g });
    expect(() => s.step(x, s.timesteps[0] ?? 0, x, { generator: g })).toThrow(/not yet stepped past/);
  });
});
