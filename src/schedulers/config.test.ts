import { describe, expect, it } from "vitest";
import { ConfigError } from "../errors.js";
import { DEFAULTS, parseSchedulerConfig } from "./config.js";

describe("DEFAULTS (diffusers 0.26.3 __init__ defaults)", () => {
  it("uses leading spacing for DDPM/DDIM/PNDM and linspace for the sigma schedulers", () => {
    expect(DEFAULTS.DDPMScheduler.timestep_spacing).toBe("leading");
    expect(DEFAULTS.DDIMScheduler.timestep_spacing).toBe("leading");
    expect(DEFAULTS.PNDMScheduler.timestep_spacing).toBe("leading");
    expect(DEFAULTS.EulerDiscreteScheduler.timestep_spacing).toBe("linspace");
    expect(DEFAULTS.EulerAncestralDiscreteScheduler.timestep_spacing).toBe("linspace");
    expect(DEFAULTS.LMSDiscreteScheduler.timestep_spacing).toBe("linspace");
    expect(DEFAULTS.DPMSolverMultistepScheduler.timestep_spacing).toBe("linspace");
  });
  it("has the per-class switches", () => {
    expect(DEFAULTS.DDIMScheduler.set_alpha_to_one).toBe(true);
    expect(DEFAULTS.PNDMScheduler.set_alpha_to_one).toBe(false);
    expect(DEFAULTS.PNDMScheduler.skip_prk_steps).toBe(false);
    expect(DEFAULTS.DDPMScheduler.variance_type).toBe("fixed_small");
    expect(DEFAULTS.DDPMScheduler.clip_sample).toBe(true);
    expect(DEFAULTS.DPMSolverMultistepScheduler).toMatchObject({
      solver_order: 2,
      algorithm_type: "dpmsolver++",
      solver_type: "midpoint",
      lower_order_final: true,
      final_sigmas_type: "zero",
      lambda_min_clipped: -Infinity,
      variance_type: null,
    });
    expect(DEFAULTS.EulerDiscreteScheduler).toMatchObject({
      interpolation_type: "linear",
      timestep_type: "discrete",
      sigma_min: null,
    });
    expect(DEFAULTS.LMSDiscreteScheduler.beta_schedule).toBe("linear");
    expect(DEFAULTS.LMSDiscreteScheduler.beta_start).toBe(0.0001);
  });
});

describe("parseSchedulerConfig", () => {
  it("fills missing keys with the class defaults and ignores _-keys", () => {
    const { config, warnings } = parseSchedulerConfig("DDIMScheduler", {
      _class_name: "PNDMScheduler",
      _diffusers_version: "0.26.3",
      beta_schedule: "scaled_linear",
      steps_offset: 1,
    });
    expect(config.beta_schedule).toBe("scaled_linear");
    expect(config.steps_offset).toBe(1);
    expect(config.clip_sample).toBe(true);
    expect(warnings).toEqual([]);
  });

  it("keeps nullable defaults null when the key is absent", () => {
    const { config } = parseSchedulerConfig("EulerDiscreteScheduler", {});
    expect(config.sigma_min).toBeNull();
    expect(parseSchedulerConfig("EulerDiscreteScheduler", { sigma_max: 80 }).config.sigma_max).toBe(80);
    expect(parseSchedulerConfig("DPMSolverMultistepScheduler", {}).config.variance_type).toBeNull();
  });

  it("returns unknown keys as warnings", () => {
    const { warnings } = parseSchedulerConfig("EulerDiscreteScheduler", {
      skip_prk_steps: true,
      set_alpha_to_one: false,
    });
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toContain('"skip_prk_steps"');
  });

  it("rejects unknown keys under strict", () => {
    const call = (): unknown =>
      parseSchedulerConfig("LMSDiscreteScheduler", { solver_order: 2 }, { strict: true, file: "s.json" });
    expect(call).toThrow(ConfigError);
    expect(call).toThrow(/s\.json: field "solver_order"/);
    try {
      call();
    } catch (e) {
      expect(e instanceof ConfigError && e.code).toBe("E_CONFIG");
    }
  });

  it("names the field of a value with the wrong type", () => {
    expect(() => parseSchedulerConfig("DDPMScheduler", { num_train_timesteps: "1000" })).toThrow(
      /"num_train_timesteps" should be an integer/,
    );
    expect(() => parseSchedulerConfig("DDPMScheduler", { clip_sample: 1 })).toThrow(
      /"clip_sample" should be true or false/,
    );
    expect(() => parseSchedulerConfig("DDIMScheduler", { timestep_spacing: "uniform" })).toThrow(
      /"timestep_spacing" should be one of "linspace", "leading", "trailing"/,
    );
    expect(() => parseSchedulerConfig("DDIMScheduler", { beta_schedule: "sigmoid" })).toThrow(ConfigError);
    expect(() => parseSchedulerConfig("DDPMScheduler", { beta_schedule: "sigmoid" })).not.toThrow();
    expect(() => parseSchedulerConfig("DPMSolverMultistepScheduler", { solver_order: 4 })).toThrow(
      /"solver_order" should be an integer in \[1, 3\]/,
    );
    expect(() => parseSchedulerConfig("DDIMScheduler", [])).toThrow(/"\(root\)" should be a JSON object/);
  });

  it("checks trained_betas against num_train_timesteps", () => {
    expect(() =>
      parseSchedulerConfig("DDIMScheduler", { num_train_timesteps: 3, trained_betas: [0.1, 0.2] }),
    ).toThrow(/"trained_betas"/);
    const { config } = parseSchedulerConfig("DDIMScheduler", {
      num_train_timesteps: 2,
      trained_betas: [0.1, 0.2],
    });
    expect(config.trained_betas).toEqual([0.1, 0.2]);
  });

  it("rejects prediction types a class cannot step", () => {
    expect(() => parseSchedulerConfig("PNDMScheduler", { prediction_type: "sample" })).toThrow(
      /"prediction_type"/,
    );
    expect(() =>
      parseSchedulerConfig("EulerAncestralDiscreteScheduler", { prediction_type: "sample" }),
    ).toThrow(ConfigError);
  });

  it("maps DPM-Solver's legacy names and rejects a zero final sigma for noise-prediction solvers", () => {
    const { config } = parseSchedulerConfig("DPMSolverMultistepScheduler", {
      algorithm_type: "deis",
      solver_type: "bh2",
    });
    expect(config.algorithm_type).toBe("dpmsolver++");
    expect(config.solver_type).toBe("midpoint");
    expect(() =>
      parseSchedulerConfig("DPMSolverMultistepScheduler", { algorithm_type: "dpmsolver" }),
    ).toThrow(/"final_sigmas_type"/);
    expect(() =>
      parseSchedulerConfig("DPMSolverMultistepScheduler", {
        algorithm_type: "dpmsolver",
        final_sigmas_type: "sigma_min",
      }),
    ).not.toThrow();
  });
});
