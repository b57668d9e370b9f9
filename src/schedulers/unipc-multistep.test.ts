/**
 * UniPCMultistepScheduler beyond the golden fixtures (test/schedulers.test.ts runs those): the
 * solver is exact where the ODE solution is known in closed form, the config is read as diffusers
 * reads it, the corrector switch acts one step late, and a run's state is reset by setTimesteps.
 */
import { describe, expect, it } from "vitest";
import { at, filled, pattern } from "../../test/helpers/scheduler-tensors.js";
import { SD_SCHEDULER_CONFIG as SD } from "../../test/helpers/scheduler-config.js";
import { ConfigError } from "../errors.js";
import type { UniPCMultistepSchedulerConfig } from "./config.js";
import { DPMSolverMultistepScheduler } from "./dpm-solver-multistep.js";
import { fromConfig, resolveSchedulerName } from "./registry.js";
import { trainingSigmas } from "./sigmas.js";
import { UniPCMultistepScheduler } from "./unipc-multistep.js";
import { solveF32 } from "./unipc-updates.js";

const shape = [1, 2, 2, 2];

/** Runs a loop with model output `fn(x, t)`; returns every step's prev_sample. */
function run(
  s: UniPCMultistepScheduler,
  n: number,
  fn: (x: number, i: number, t: number) => number,
): number[][] {
  s.setTimesteps(n);
  let x = pattern(shape, 3);
  const out: number[][] = [];
  for (const t of s.timesteps) {
    const cur = x;
    const y = filled(shape, (i) => fn(at(cur, i), i, t));
    x = s.step(y, t, x).prevSample;
    out.push(Array.from(x.data));
  }
  return out;
}

interface Level {
  readonly alpha: number;
  readonly sigma: number;
}

const level = (sigma: number): Level => {
  const alpha = 1 / Math.sqrt(sigma * sigma + 1);
  return { alpha, sigma: sigma * alpha };
};

/**
 * Largest distance of a run's final sample from the exact solution `exact(x_start, first, last, i)`
 * of the probability-flow ODE between the run's first and last noise levels.
 */
function errorFromExact(
  s: UniPCMultistepScheduler,
  steps: readonly number[][],
  exact: (x: number, first: Level, last: Level, i: number) => number,
): number {
  const first = level(s.sigmas[0] ?? NaN);
  const last = level(s.sigmas[s.sigmas.length - 1] ?? NaN);
  const start = pattern(shape, 3);
  const final = steps[steps.length - 1] ?? [];
  return Math.max(...final.map((v, i) => Math.abs(v - exact(at(start, i), first, last, i))));
}

describe("UniPCMultistepScheduler", () => {
  it("follows the ODE exactly when the data prediction is constant (x/sigma_t linear in alpha/sigma_t)", () => {
    const c = (i: number): number => 0.3 * Math.sin(i + 1);
    for (const overrides of [
      {},
      { solver_order: 3, solver_type: "bh1" },
      { solver_order: 3, use_karras_sigmas: true },
    ] as const) {
      const s = new UniPCMultistepScheduler({ ...SD, prediction_type: "sample", ...overrides });
      const steps = run(s, 8, (_x, i) => c(i));
      const first = level(s.sigmas[0] ?? NaN);
      const last = level(s.sigmas[s.sigmas.length - 1] ?? NaN);
      const x0 = pattern(shape, 3);
      const final = steps[steps.length - 1] ?? [];
      for (let i = 0; i < final.length; i++) {
        const exact =
          last.sigma *
          (at(x0, i) / first.sigma + c(i) * (last.alpha / last.sigma - first.alpha / first.sigma));
        expect(Math.abs((final[i] ?? NaN) - exact), JSON.stringify(overrides)).toBeLessThan(2e-5);
      }
    }
  });

  it("follows the ODE exactly when the noise prediction is constant, with predict_x0 off", () => {
    const e = (i: number): number => 0.5 * Math.cos(i);
    const s = new UniPCMultistepScheduler({ ...SD, predict_x0: false, solver_order: 3 });
    const steps = run(s, 10, (_x, i) => e(i));
    const error = errorFromExact(
      s,
      steps,
      (x, first, last, i) =>
        last.alpha * (x / first.alpha - e(i) * (first.sigma / first.alpha - last.sigma / last.alpha)),
    );
    expect(error).toBeLessThan(2e-5);
  });

  it("ends the run at sigma(t = 0), or at the last Karras sigma repeated, not at 0", () => {
    const s = new UniPCMultistepScheduler(SD);
    s.setTimesteps(10);
    expect(s.timesteps).toEqual([999, 899, 799, 699, 599, 500, 400, 300, 200, 100]);
    expect(s.sigmas[10]).toBe(trainingSigmas(s.alphasCumprod)[0]);
    expect(s.sigmas[10]).toBeGreaterThan(0);
    const k = new UniPCMultistepScheduler({ ...SD, use_karras_sigmas: true });
    k.setTimesteps(6);
    expect(k.sigmas[6]).toBe(k.sigmas[5]);
    expect(k.timesteps[0]).toBe(999);
  });

  it("skips the corrector of the steps listed in disable_corrector, which shows one step later", () => {
    const fn = (x: number, i: number, t: number): number => 0.8 * x + 0.1 * Math.sin(i + t / 100);
    const plain = run(new UniPCMultistepScheduler(SD), 6, fn);
    const off = run(new UniPCMultistepScheduler({ ...SD, disable_corrector: [1] }), 6, fn);
    expect(off[0]).toEqual(plain[0]);
    expect(off[1]).toEqual(plain[1]);
    expect(off[2]).not.toEqual(plain[2]);
  });

  it("is reset by setTimesteps: the same loop twice gives the same samples", () => {
    const s = new UniPCMultistepScheduler({ ...SD, solver_order: 3 });
    const fn = (x: number, i: number): number => 0.9 * x + 0.01 * i;
    expect(run(s, 7, fn)).toEqual(run(s, 7, fn));
  });

  it("reads the config as diffusers does", () => {
    const aliased = new UniPCMultistepScheduler({
      ...SD,
      solver_type: "midpoint" as UniPCMultistepSchedulerConfig["solver_type"],
    });
    expect(aliased.config.solver_type).toBe("bh2");
    expect(new UniPCMultistepScheduler().config).toMatchObject({
      solver_order: 2,
      predict_x0: true,
      solver_type: "bh2",
      timestep_spacing: "linspace",
      steps_offset: 0,
      disable_corrector: [],
    });
    expect(() => fromConfig("unipc", { solver_p: { _class_name: "DDIMScheduler" } })).toThrow(ConfigError);
    expect(() => fromConfig("unipc", { solver_p: { _class_name: "DDIMScheduler" } })).toThrow(/solver_p/);
    expect(() => fromConfig("unipc", { solver_order: 0 })).toThrow(/solver_order/);
    expect(() => fromConfig("unipc", { disable_corrector: [-1] })).toThrow(/disable_corrector/);
  });
});

describe("scheduler short names unipc and dpmpp_2m_karras", () => {
  it("builds UniPC from a Stable Diffusion config, and DPM++ 2M with Karras sigmas over the config", () => {
    expect(resolveSchedulerName("unipc")).toBe("UniPCMultistepScheduler");
    expect(fromConfig("unipc", { _class_name: "PNDMScheduler", ...SD })).toBeInstanceOf(
      UniPCMultistepScheduler,
    );
    const karras = fromConfig("dpmpp_2m_karras", { ...SD, use_karras_sigmas: false });
    expect(karras).toBeInstanceOf(DPMSolverMultistepScheduler);
    expect(karras instanceof DPMSolverMultistepScheduler && karras.config.use_karras_sigmas).toBe(true);
    const plain = fromConfig("dpmpp_2m", SD);
    plain.setTimesteps(10);
    karras.setTimesteps(10);
    expect(karras.timesteps).not.toEqual(plain.timesteps);
  });
});

describe("solveF32", () => {
  it("solves a system that needs a row exchange", () => {
    const x = solveF32(
      [
        [0, 2, 1],
        [1, 1, 1],
        [4, -1, 2],
      ],
      [7, 6, 8],
    );
    // x = (1, 2, 3)
    expect(x.map((v) => Math.round(v * 1e5) / 1e5)).toEqual([1, 2, 3]);
    expect(() =>
      solveF32(
        [
          [1, 1],
          [1, 1],
        ],
        [1, 2],
      ),
    ).toThrow(/singular/);
  });
});
