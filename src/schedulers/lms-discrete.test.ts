import { describe, expect, it } from "vitest";
import { at, pattern } from "../../test/helpers/scheduler-tensors.js";
import { SD_SCHEDULER_CONFIG as SD } from "../../test/helpers/scheduler-config.js";
import { InvalidArgumentError } from "../errors.js";
import { EulerDiscreteScheduler } from "./euler-discrete.js";
import { LMSDiscreteScheduler } from "./lms-discrete.js";

const shape = [1, 1, 2, 2];

describe("LMSDiscreteScheduler", () => {
  it("has the Euler timesteps and sigmas for each spacing", () => {
    for (const timestep_spacing of ["linspace", "leading", "trailing"] as const) {
      const lms = new LMSDiscreteScheduler({ ...SD, timestep_spacing });
      const euler = new EulerDiscreteScheduler({ ...SD, timestep_spacing });
      lms.setTimesteps(7);
      euler.setTimesteps(7);
      expect(lms.timesteps).toEqual(euler.timesteps);
      expect(Array.from(lms.sigmas)).toEqual(Array.from(euler.sigmas));
    }
  });

  it("integrates the Lagrange basis: order 1 gives sigma_{i+1} - sigma_i", () => {
    const s = new LMSDiscreteScheduler(SD);
    s.setTimesteps(10);
    const [s0 = 0, s1 = 0, s2 = 0] = s.sigmas;
    expect(s.lmsCoefficient(1, 0, 0)).toBeCloseTo(s1 - s0, 5);
    // order 2 at i = 1: l_0(tau) = (tau - s0) / (s1 - s0), l_1(tau) = (tau - s1) / (s0 - s1)
    const c0 = ((s2 - s0) ** 2 - (s1 - s0) ** 2) / (2 * (s1 - s0));
    const c1 = ((s2 - s1) ** 2 - 0) / (2 * (s0 - s1));
    expect(s.lmsCoefficient(2, 1, 0)).toBeCloseTo(c0, 4);
    expect(s.lmsCoefficient(2, 1, 1)).toBeCloseTo(c1, 4);
    expect(s.lmsCoefficient(2, 1, 0) + s.lmsCoefficient(2, 1, 1)).toBeCloseTo(s2 - s1, 4);
  });

  it("takes an Euler step first (order 1)", () => {
    const lms = new LMSDiscreteScheduler(SD);
    const euler = new EulerDiscreteScheduler(SD);
    lms.setTimesteps(10);
    euler.setTimesteps(10);
    const x = pattern(shape, 1);
    const eps = pattern(shape, 2);
    const t = lms.timesteps[0] ?? 0;
    const a = lms.step(eps, t, x).prevSample;
    const b = euler.step(eps, t, x).prevSample;
    for (let i = 0; i < 4; i++) expect(at(a, i)).toBeCloseTo(at(b, i), 4);
  });

  it("forgets its derivatives on setTimesteps", () => {
    const s = new LMSDiscreteScheduler(SD);
    const x = pattern(shape, 1);
    const eps = pattern(shape, 2);
    s.setTimesteps(10);
    const first = s.step(eps, s.timesteps[0] ?? 0, x).prevSample;
    const second = s.step(eps, s.timesteps[1] ?? 0, first).prevSample;
    s.setTimesteps(10);
    s.step(eps, s.timesteps[0] ?? 0, x);
    expect(Array.from(s.step(eps, s.timesteps[1] ?? 0, first).prevSample.data)).toEqual(
      Array.from(second.data),
    );
  });

  it("rejects a bad order option", () => {
    const s = new LMSDiscreteScheduler(SD);
    s.setTimesteps(10);
    const x = pattern(shape, 1);
    expect(() => s.step(x, s.timesteps[0] ?? 0, x, { order: 0 })).toThrow(InvalidArgumentError);
    expect(() => s.step(x, s.timesteps[0] ?? 0, x, { order: 0 })).toThrow(/for options\.order/);
  });
});
