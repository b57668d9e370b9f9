/**
 * The fields of diffusers' `scheduler_config.json` per scheduler class, verbatim, and each class's
 * defaults: the keyword defaults of the class's `__init__` in diffusers 0.26.3.
 */
import type { SchedulerClassName } from "./scheduler.js";

export type BetaSchedule = "linear" | "scaled_linear" | "squaredcos_cap_v2" | "sigmoid";
export type PredictionType = "epsilon" | "v_prediction" | "sample";
export type TimestepSpacing = "linspace" | "leading" | "trailing";
export type DDPMVarianceType =
  "fixed_small" | "fixed_small_log" | "fixed_large" | "fixed_large_log" | "learned" | "learned_range";
export type DPMSolverAlgorithmType = "dpmsolver++" | "sde-dpmsolver++" | "dpmsolver" | "sde-dpmsolver";

/** Fields every scheduler takes. */
export interface BaseSchedulerConfig {
  readonly num_train_timesteps: number;
  readonly beta_start: number;
  readonly beta_end: number;
  readonly beta_schedule: BetaSchedule;
  readonly trained_betas: readonly number[] | null;
  readonly prediction_type: PredictionType;
  readonly timestep_spacing: TimestepSpacing;
  readonly steps_offset: number;
}

/** Dynamic thresholding (Imagen) of the predicted x_0. */
export interface ThresholdingConfig {
  readonly thresholding: boolean;
  readonly dynamic_thresholding_ratio: number;
  readonly sample_max_value: number;
}

export interface DDPMSchedulerConfig extends BaseSchedulerConfig, ThresholdingConfig {
  readonly variance_type: DDPMVarianceType;
  readonly clip_sample: boolean;
  readonly clip_sample_range: number;
  readonly rescale_betas_zero_snr: boolean;
}

export interface DDIMSchedulerConfig extends BaseSchedulerConfig, ThresholdingConfig {
  readonly clip_sample: boolean;
  readonly clip_sample_range: number;
  readonly set_alpha_to_one: boolean;
  readonly rescale_betas_zero_snr: boolean;
}

export interface PNDMSchedulerConfig extends BaseSchedulerConfig {
  readonly skip_prk_steps: boolean;
  readonly set_alpha_to_one: boolean;
}

export interface EulerDiscreteSchedulerConfig extends BaseSchedulerConfig {
  readonly interpolation_type: "linear" | "log_linear";
  readonly use_karras_sigmas: boolean;
  readonly sigma_min: number | null;
  readonly sigma_max: number | null;
  readonly timestep_type: "discrete" | "continuous";
  readonly rescale_betas_zero_snr: boolean;
}

export interface EulerAncestralDiscreteSchedulerConfig extends BaseSchedulerConfig {
  readonly rescale_betas_zero_snr: boolean;
}

export interface LMSDiscreteSchedulerConfig extends BaseSchedulerConfig {
  readonly use_karras_sigmas: boolean;
}

export interface DPMSolverMultistepSchedulerConfig extends BaseSchedulerConfig, ThresholdingConfig {
  readonly solver_order: number;
  readonly algorithm_type: DPMSolverAlgorithmType;
  readonly solver_type: "midpoint" | "heun";
  readonly lower_order_final: boolean;
  readonly euler_at_final: boolean;
  readonly use_karras_sigmas: boolean;
  readonly use_lu_lambdas: boolean;
  readonly final_sigmas_type: "zero" | "sigma_min";
  readonly lambda_min_clipped: number;
  readonly variance_type: "learned" | "learned_range" | null;
}

export interface SchedulerConfigMap {
  DDPMScheduler: DDPMSchedulerConfig;
  DDIMScheduler: DDIMSchedulerConfig;
  PNDMScheduler: PNDMSchedulerConfig;
  EulerDiscreteScheduler: EulerDiscreteSchedulerConfig;
  EulerAncestralDiscreteScheduler: EulerAncestralDiscreteSchedulerConfig;
  DPMSolverMultistepScheduler: DPMSolverMultistepSchedulerConfig;
  LMSDiscreteScheduler: LMSDiscreteSchedulerConfig;
}

const BASE: BaseSchedulerConfig = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  trained_betas: null,
  prediction_type: "epsilon",
  timestep_spacing: "leading",
  steps_offset: 0,
};
const THRESHOLDING: ThresholdingConfig = {
  thresholding: false,
  dynamic_thresholding_ratio: 0.995,
  sample_max_value: 1.0,
};

/** Per-class defaults of diffusers 0.26.3 (the keyword defaults of each class's `__init__`). */
export const DEFAULTS: { readonly [C in SchedulerClassName]: SchedulerConfigMap[C] } = {
  // src/diffusers/schedulers/scheduling_ddpm.py
  DDPMScheduler: {
    ...BASE,
    ...THRESHOLDING,
    variance_type: "fixed_small",
    clip_sample: true,
    clip_sample_range: 1.0,
    rescale_betas_zero_snr: false,
  },
  // src/diffusers/schedulers/scheduling_ddim.py
  DDIMScheduler: {
    ...BASE,
    ...THRESHOLDING,
    clip_sample: true,
    clip_sample_range: 1.0,
    set_alpha_to_one: true,
    rescale_betas_zero_snr: false,
  },
  // src/diffusers/schedulers/scheduling_pndm.py
  PNDMScheduler: { ...BASE, skip_prk_steps: false, set_alpha_to_one: false },
  // src/diffusers/schedulers/scheduling_euler_discrete.py
  EulerDiscreteScheduler: {
    ...BASE,
    timestep_spacing: "linspace",
    interpolation_type: "linear",
    use_karras_sigmas: false,
    sigma_min: null,
    sigma_max: null,
    timestep_type: "discrete",
    rescale_betas_zero_snr: false,
  },
  // src/diffusers/schedulers/scheduling_euler_ancestral_discrete.py
  EulerAncestralDiscreteScheduler: { ...BASE, timestep_spacing: "linspace", rescale_betas_zero_snr: false },
  // src/diffusers/schedulers/scheduling_dpmsolver_multistep.py
  DPMSolverMultistepScheduler: {
    ...BASE,
    ...THRESHOLDING,
    timestep_spacing: "linspace",
    solver_order: 2,
    algorithm_type: "dpmsolver++",
    solver_type: "midpoint",
    lower_order_final: true,
    euler_at_final: false,
    use_karras_sigmas: false,
    use_lu_lambdas: false,
    final_sigmas_type: "zero",
    lambda_min_clipped: -Infinity,
    variance_type: null,
  },
  // src/diffusers/schedulers/scheduling_lms_discrete.py
  LMSDiscreteScheduler: { ...BASE, timestep_spacing: "linspace", use_karras_sigmas: false },
};
