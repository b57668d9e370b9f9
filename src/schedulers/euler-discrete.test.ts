import { describe, expect, it } from "vitest";
import { ConstantNoise, at, filled, pattern } from "../../test/helpers/scheduler-tensors.js";
import { SD_SCHEDULER_CONFIG as SD } from "../../test/helpers/scheduler-config.js";
import { InvalidArgumentError } from "../errors.js";
import { EulerDiscreteScheduler } from "./euler-discrete.js";

const shape = [1, 1, 2, 2];
const f32 = Math.fround;
const sigmaAt = (s: EulerDiscreteScheduler, t: number): number => {
  const a = s.alphasCumprod[t] ?? NaN;
  return Math.sqrt((1 - a) / a);
};

describe("EulerDiscreteScheduler.setTimesteps", () => {
  it("gives float32 timesteps per spacing and sigmas ending in 0", () => {
    const s = new EulerDiscreteScheduler(SD);
    s.setTimesteps(4);
    expect(s.timesteps).toEqual([999, 666, 333, 0]);
    expect(s.sigmas).toHaveLength(5);
    expect(s.sigmas[4]).toBe(0);
    expect(s.sigmas[1]).toBeCloseTo(sigmaAt(s, 666), 5);
    s.setTimesteps(20);
    expect(s.timesteps[1]).toBe(f32(999 - 999 / 19));
    // sigma at a fractional timestep is interpolated linearly between the integer neighbours
    const t = s.timesteps[1] ?? 0;
    const w = t - Math.floor(t);
    expect(s.sigmas[1]).toBeCloseTo((1 - w) * sigmaAt(s, Math.floor(t)) + w * sigmaAt(s, Math.ceil(t)), 4);
    const lead = new EulerDiscreteScheduler({ ...SD, timestep_spacing: "leading" });
    lead.setTimesteps(4);
    expect(lead.timesteps).toEqual([751, 501, 251, 1]);
    const trail = new EulerDiscreteScheduler({ ...SD, timestep_spacing: "trailing" });
    trail.setTimesteps(4);
    expect(trail.timesteps).toEqual([999, 749, 499, 249]);
  });

  it("sets init_noise_sigma to max sigma, or sqrt(max^2 + 1) for leading", () => {
    const s = new EulerDiscreteScheduler(SD);
    s.setTimesteps(10);
    expect(s.initNoiseSigma).toBe(s.sigmas[0]);
    const lead = new EulerDiscreteScheduler({ ...SD, timestep_spacing: "leading" });
    lead.setTimesteps(10);
    expect(lead.initNoiseSigma).toBeCloseTo(Math.sqrt((lead.sigmas[0] ?? 0) ** 2 + 1), 5);
  });

  it("uses Karras sigmas (rho = 7) and maps them back to fractional timesteps", () => {
    const s = new EulerDiscreteScheduler({ ...SD, use_karras_sigmas: true });
    s.setTimesteps(5);
    const max = sigmaAt(s, 999);
    const min = sigmaAt(s, 0);
    expect(s.sigmas[0]).toBeCloseTo(max, 4);
    expect(s.sigmas[4]).toBeCloseTo(min, 6);
    const mid = (max ** (1 / 7) + 0.5 * (min ** (1 / 7) - max ** (1 / 7))) ** 7;
    expect(s.sigmas[2]).toBeCloseTo(mid, 4);
    expect(s.timesteps[0]).toBeCloseTo(999, 3);
    expect(s.timesteps[4]).toBeCloseTo(0, 3);
    // the timestep of sigma_mid lies where the training sigmas cross it
    const t2 = s.timesteps[2] ?? 0;
    expect(sigmaAt(s, Math.floor(t2))).toBeLessThanOrEqual(mid);
    expect(sigmaAt(s, Math.ceil(t2))).toBeGreaterThanOrEqual(mid);
    const capped = new EulerDiscreteScheduler({
      ...SD,
      use_karras_sigmas: true,
      sigma_min: 0.1,
      sigma_max: 10,
    });
    capped.setTimesteps(5);
    expect(capped.sigmas[0]).toBeCloseTo(10, 5);
    expect(capped.sigmas[4]).toBeCloseTo(0.1, 6);
  });

  it("uses 0.25 log(sigma) as timesteps for continuous v-prediction", () => {
    const s = new EulerDiscreteScheduler({
      ...SD,
      timestep_type: "continuous",
      prediction_type: "v_prediction",
    });
    s.setTimesteps(3);
    expect(s.timesteps[0]).toBeCloseTo(0.25 * Math.log(s.sigmas[0] ?? 0), 5);
  });
});

describe("EulerDiscreteScheduler.step", () => {
  it("scales the input by 1 / sqrt(sigma^2 + 1) and takes an Euler step", () => {
    const s = new EulerDiscreteScheduler(SD);
    s.setTimesteps(10);
    const x = pattern(shape, 1);
    const eps = pattern(shape, 2);
    const t = s.timesteps[0] ?? 0;
    const sigma = s.sigmas[0] ?? NaN;
    const next = s.sigmas[1] ?? NaN;
    expect(at(s.scaleModelInput(x, t), 2)).toBeCloseTo(at(x, 2) / Math.sqrt(sigma * sigma + 1), 6);
    const r = s.step(eps, t, x);
    // x0 = x - sigma eps, derivative = eps, x' = x + eps (sigma' - sigma)
    expect(at(r.predOriginalSample ?? x, 2)).toBeCloseTo(at(x, 2) - sigma * at(eps, 2), 4);
    expect(at(r.prevSample, 2)).toBeCloseTo(at(x, 2) + at(eps, 2) * (next - sigma), 4);
  });

  it("turns a v-prediction into x0 = -sigma/sqrt(sigma^2+1) v + x/(sigma^2+1)", () => {
    const s = new EulerDiscreteScheduler({ ...SD, prediction_type: "v_prediction" });
    s.setTimesteps(10);
    const x = pattern(shape, 1);
    const v = pattern(shape, 2);
    const sigma = s.sigmas[0] ?? NaN;
    const x0 = s.step(v, s.timesteps[0] ?? 0, x).predOriginalSample ?? x;
    expect(at(x0, 1)).toBeCloseTo(
      (-sigma / Math.sqrt(sigma ** 2 + 1)) * at(v, 1) + at(x, 1) / (sigma ** 2 + 1),
      5,
    );
  });

  it("advances its step index and resets it on setTimesteps", () => {
    const s = new EulerDiscreteScheduler(SD);
    s.setTimesteps(10);
    const x = pattern(shape, 1);
    const eps = filled(shape, () => 0.1);
    const [t0 = 0, t1 = 0] = s.timesteps;
    const first = s.step(eps, t0, x).prevSample;
    s.step(eps, t1, first);
    s.setTimesteps(10);
    expect(Array.from(s.step(eps, t0, x).prevSample.data)).toEqual(Array.from(first.data));
  });

  it("draws churn noise only with s_churn > 0 and needs a generator for it", () => {
    const s = new EulerDiscreteScheduler(SD);
    s.setTimesteps(10);
    const x = pattern(shape, 1);
    expect(() => s.step(x, s.timesteps[0] ?? 0, x, { sChurn: 1 })).toThrow(/options\.generator/);
    s.setTimesteps(10);
    const g = new ConstantNoise(0);
    s.step(x, s.timesteps[0] ?? 0, x, { generator: g });
    expect(g.calls).toBe(1);
  });

  it("rejects timesteps outside the schedule and use before setTimesteps", () => {
    const fresh = new EulerDiscreteScheduler(SD);
    const x = pattern(shape, 1);
    expect(() => fresh.scaleModelInput(x, 999)).toThrow(/call scheduler\.setTimesteps\(n\)/);
    fresh.setTimesteps(10);
    const call = (): unknown => fresh.step(x, 998.5, x);
    expect(call).toThrow(InvalidArgumentError);
    expect(call).toThrow(/one of the scheduler's timesteps/);
  });
});

describe("EulerDiscreteScheduler.addNoise", () => {
  it("is x0 + sigma(t) noise with sigma looked up in the schedule", () => {
    const s = new EulerDiscreteScheduler(SD);
    s.setTimesteps(10);
    const r = s.addNoise(
      filled(shape, () => 1),
      filled(shape, () => 2),
      [s.timesteps[3] ?? 0],
    );
    expect(at(r, 0)).toBeCloseTo(1 + 2 * (s.sigmas[3] ?? NaN), 5);
    expect(() =>
      s.addNoise(
        filled(shape, () => 1),
        filled(shape, () => 2),
        [5],
      ),
    ).toThrow(InvalidArgumentError);
  });
});
