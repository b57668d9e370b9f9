import { describe, expect, it } from "vitest";
import { at, filled, pattern } from "../../test/helpers/scheduler-tensors.js";
import { SD_SCHEDULER_CONFIG as SD } from "../../test/helpers/scheduler-config.js";
import { InvalidArgumentError } from "../errors.js";
import { PNDMScheduler } from "./pndm.js";

const shape = [1, 1, 2, 2];

describe("PNDMScheduler.setTimesteps", () => {
  it("repeats the second timestep with skip_prk_steps (N + 1 steps)", () => {
    const s = new PNDMScheduler({ ...SD, skip_prk_steps: true });
    s.setTimesteps(10);
    expect(s.timesteps).toEqual([901, 801, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
    const tr = new PNDMScheduler({ ...SD, skip_prk_steps: true, timestep_spacing: "trailing" });
    tr.setTimesteps(4);
    expect(tr.timesteps).toEqual([999, 749, 749, 499, 249]);
    const lin = new PNDMScheduler({ ...SD, skip_prk_steps: true, timestep_spacing: "linspace" });
    lin.setTimesteps(4);
    expect(lin.timesteps).toEqual([999, 666, 666, 333, 0]);
  });

  it("starts with 12 Runge-Kutta stage timesteps without skip_prk_steps", () => {
    const s = new PNDMScheduler({ ...SD, skip_prk_steps: false });
    s.setTimesteps(10);
    // last four base timesteps 601..901 with half-steps of 50, each stage visited per RK4 pattern
    expect(s.timesteps).toEqual([
      901, 851, 851, 801, 801, 751, 751, 701, 701, 651, 651, 601, 601, 501, 401, 301, 201, 101, 1,
    ]);
    expect(() => s.setTimesteps(3)).toThrow(InvalidArgumentError);
    expect(() => s.setTimesteps(3)).toThrow(/at least 4 with skip_prk_steps=false/);
  });
});

describe("PNDMScheduler.step", () => {
  /** With eps = 0 every transfer is x' = sqrt(abar' / abar) x, so a whole run telescopes. */
  function runZeroEps(skip: boolean): { out: number; expected: number } {
    const s = new PNDMScheduler({ ...SD, skip_prk_steps: skip });
    s.setTimesteps(10);
    let x = filled(shape, () => 1);
    for (const t of s.timesteps)
      x = s.step(
        filled(shape, () => 0),
        t,
        x,
      ).prevSample;
    return {
      out: at(x, 0),
      expected: Math.sqrt((s.alphasCumprod[0] ?? NaN) / (s.alphasCumprod[901] ?? NaN)),
    };
  }

  it("telescopes to sqrt(abar_final / abar_first) x for a zero noise prediction (PLMS)", () => {
    const r = runZeroEps(true);
    expect(r.out).toBeCloseTo(r.expected, 5);
  });

  it("telescopes the same way through the PRK warm-up", () => {
    const r = runZeroEps(false);
    expect(r.out).toBeCloseTo(r.expected, 5);
  });

  it("first step is the DDIM transfer with eps", () => {
    const s = new PNDMScheduler({ ...SD, skip_prk_steps: true });
    s.setTimesteps(10);
    const x = pattern(shape, 1);
    const eps = pattern(shape, 2);
    const a = s.alphasCumprod[901] ?? NaN;
    const ap = s.alphasCumprod[801] ?? NaN;
    const x0 = (at(x, 1) - Math.sqrt(1 - a) * at(eps, 1)) / Math.sqrt(a);
    expect(at(s.step(eps, 901, x).prevSample, 1)).toBeCloseTo(
      Math.sqrt(ap) * x0 + Math.sqrt(1 - ap) * at(eps, 1),
      5,
    );
  });

  it("resets its history on setTimesteps", () => {
    const s = new PNDMScheduler({ ...SD, skip_prk_steps: true });
    const x = pattern(shape, 1);
    const eps = pattern(shape, 2);
    s.setTimesteps(10);
    const first = s.step(eps, 901, x).prevSample;
    s.step(eps, 801, first);
    s.setTimesteps(10);
    expect(Array.from(s.step(eps, 901, x).prevSample.data)).toEqual(Array.from(first.data));
  });

  it("requires setTimesteps first", () => {
    const call = (): unknown => new PNDMScheduler(SD).step(pattern(shape), 901, pattern(shape));
    expect(call).toThrow(InvalidArgumentError);
    expect(call).toThrow(/setTimesteps/);
  });
});
