/**
 * The fields of diffusers' `scheduler_config.json` per scheduler class, verbatim, as types and as
 * field-spec tables for `src/config/parse.ts`. Each spec holds the class's default: the keyword
 * default of its `__init__` in diffusers 0.26.3 (file named above each table).
 */
import { type FieldSpec, type FieldsOf, field } from "../config/parse.js";
import { ConfigError } from "../errors.js";
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

export type UniPCSolverType = "bh1" | "bh2";

export interface UniPCMultistepSchedulerConfig extends BaseSchedulerConfig, ThresholdingConfig {
  readonly solver_order: number;
  readonly predict_x0: boolean;
  readonly solver_type: UniPCSolverType;
  readonly lower_order_final: boolean;
  /** Step indices after which the corrector is skipped (the corrector of step i runs at step i + 1). */
  readonly disable_corrector: readonly number[];
  /** diffusers' optional predictor scheduler object; a config file can only hold null. */
  readonly solver_p: null;
  readonly use_karras_sigmas: boolean;
}

export interface DDIMInverseSchedulerConfig extends BaseSchedulerConfig {
  readonly clip_sample: boolean;
  readonly clip_sample_range: number;
  readonly set_alpha_to_one: boolean;
  /** Deprecated spelling of set_alpha_to_one, which it replaces when not null. */
  readonly set_alpha_to_zero: boolean | null;
  readonly rescale_betas_zero_snr: boolean;
}

export interface LCMSchedulerConfig extends BaseSchedulerConfig, ThresholdingConfig {
  readonly original_inference_steps: number;
  readonly clip_sample: boolean;
  readonly clip_sample_range: number;
  readonly set_alpha_to_one: boolean;
  readonly timestep_scaling: number;
  readonly rescale_betas_zero_snr: boolean;
}

export interface SchedulerConfigMap {
  DDPMScheduler: DDPMSchedulerConfig;
  DDIMScheduler: DDIMSchedulerConfig;
  PNDMScheduler: PNDMSchedulerConfig;
  EulerDiscreteScheduler: EulerDiscreteSchedulerConfig;
  EulerAncestralDiscreteScheduler: EulerAncestralDiscreteSchedulerConfig;
  DPMSolverMultistepScheduler: DPMSolverMultistepSchedulerConfig;
  UniPCMultistepScheduler: UniPCMultistepSchedulerConfig;
  LMSDiscreteScheduler: LMSDiscreteSchedulerConfig;
  DDIMInverseScheduler: DDIMInverseSchedulerConfig;
  LCMScheduler: LCMSchedulerConfig;
}

const PREDICTION_TYPES: readonly PredictionType[] = ["epsilon", "v_prediction", "sample"];
const COMMON_BETA_SCHEDULES: readonly BetaSchedule[] = ["linear", "scaled_linear", "squaredcos_cap_v2"];

/** The shared fields; classes differ in the default spacing and in what they accept. */
function baseFields(
  timestepSpacing: TimestepSpacing,
  accepts: { betaSchedules?: readonly BetaSchedule[]; predictionTypes?: readonly PredictionType[] } = {},
): FieldsOf<BaseSchedulerConfig> {
  return {
    num_train_timesteps: field.int(1000, { min: 2 }),
    beta_start: field.number(0.0001, { min: 0 }),
    beta_end: field.number(0.02, { min: 0 }),
    beta_schedule: field.oneOf(accepts.betaSchedules ?? COMMON_BETA_SCHEDULES, "linear"),
    trained_betas: field.nullable(field.list(field.number(0), [])),
    prediction_type: field.oneOf(accepts.predictionTypes ?? PREDICTION_TYPES, "epsilon"),
    timestep_spacing: field.oneOf(["linspace", "leading", "trailing"], timestepSpacing),
    steps_offset: field.int(0, { min: 0 }),
  };
}

const THRESHOLDING_FIELDS: FieldsOf<ThresholdingConfig> = {
  thresholding: field.bool(false),
  dynamic_thresholding_ratio: field.number(0.995, { min: 0, max: 1 }),
  sample_max_value: field.number(1.0, { min: 0 }),
};

const CLIP_SAMPLE_FIELDS = {
  clip_sample: field.bool(true),
  clip_sample_range: field.number(1.0, { min: 0 }),
};

/** A choice that also takes diffusers' legacy names, each read as its replacement. */
function oneOfWithAliases<const V extends string>(
  values: readonly V[],
  aliases: Readonly<Record<string, V>>,
  fallback: V,
): FieldSpec<V> {
  const accepted = field.oneOf([...values, ...Object.keys(aliases)], fallback);
  return {
    default: fallback,
    parse(value, file, path) {
      const name = accepted.parse(value, file, path);
      return values.find((v) => v === name) ?? aliases[name] ?? fallback;
    },
  };
}

export const SCHEDULER_FIELDS: { readonly [C in SchedulerClassName]: FieldsOf<SchedulerConfigMap[C]> } = {
  // src/diffusers/schedulers/scheduling_ddpm.py
  DDPMScheduler: {
    ...baseFields("leading", { betaSchedules: [...COMMON_BETA_SCHEDULES, "sigmoid"] }),
    ...THRESHOLDING_FIELDS,
    variance_type: field.oneOf(
      ["fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log", "learned", "learned_range"],
      "fixed_small",
    ),
    ...CLIP_SAMPLE_FIELDS,
    rescale_betas_zero_snr: field.bool(false),
  },
  // src/diffusers/schedulers/scheduling_ddim.py
  DDIMScheduler: {
    ...baseFields("leading"),
    ...THRESHOLDING_FIELDS,
    ...CLIP_SAMPLE_FIELDS,
    set_alpha_to_one: field.bool(true),
    rescale_betas_zero_snr: field.bool(false),
  },
  // src/diffusers/schedulers/scheduling_pndm.py
  PNDMScheduler: {
    ...baseFields("leading", { predictionTypes: ["epsilon", "v_prediction"] }),
    skip_prk_steps: field.bool(false),
    set_alpha_to_one: field.bool(false),
  },
  // src/diffusers/schedulers/scheduling_euler_discrete.py
  EulerDiscreteScheduler: {
    ...baseFields("linspace"),
    interpolation_type: field.oneOf(["linear", "log_linear"], "linear"),
    use_karras_sigmas: field.bool(false),
    sigma_min: field.nullable(field.number(0, { min: 0 })),
    sigma_max: field.nullable(field.number(0, { min: 0 })),
    timestep_type: field.oneOf(["discrete", "continuous"], "discrete"),
    rescale_betas_zero_snr: field.bool(false),
  },
  // src/diffusers/schedulers/scheduling_euler_ancestral_discrete.py
  EulerAncestralDiscreteScheduler: {
    ...baseFields("linspace", { predictionTypes: ["epsilon", "v_prediction"] }),
    rescale_betas_zero_snr: field.bool(false),
  },
  // src/diffusers/schedulers/scheduling_dpmsolver_multistep.py
  DPMSolverMultistepScheduler: {
    ...baseFields("linspace"),
    ...THRESHOLDING_FIELDS,
    solver_order: field.int(2, { min: 1, max: 3 }),
    // diffusers re-registers "deis" as "dpmsolver++" and logrho/bh1/bh2 as "midpoint".
    algorithm_type: oneOfWithAliases(
      ["dpmsolver++", "sde-dpmsolver++", "dpmsolver", "sde-dpmsolver"],
      { deis: "dpmsolver++" },
      "dpmsolver++",
    ),
    solver_type: oneOfWithAliases(
      ["midpoint", "heun"],
      { logrho: "midpoint", bh1: "midpoint", bh2: "midpoint" },
      "midpoint",
    ),
    lower_order_final: field.bool(true),
    euler_at_final: field.bool(false),
    use_karras_sigmas: field.bool(false),
    use_lu_lambdas: field.bool(false),
    final_sigmas_type: field.oneOf(["zero", "sigma_min"], "zero"),
    lambda_min_clipped: field.number(-Infinity, { infinite: true }),
    variance_type: field.nullable(field.oneOf(["learned", "learned_range"], "learned")),
  },
  // src/diffusers/schedulers/scheduling_unipc_multistep.py
  UniPCMultistepScheduler: {
    ...baseFields("linspace"),
    ...THRESHOLDING_FIELDS,
    // diffusers takes any positive order; each step solves an order x order system.
    solver_order: field.int(2, { min: 1, max: 6 }),
    predict_x0: field.bool(true),
    // diffusers re-registers the DPM-Solver names midpoint/heun/logrho as "bh2".
    solver_type: oneOfWithAliases(["bh1", "bh2"], { midpoint: "bh2", heun: "bh2", logrho: "bh2" }, "bh2"),
    lower_order_final: field.bool(true),
    disable_corrector: field.list(field.int(0, { min: 0 }), []),
    solver_p: {
      default: null,
      parse(value, file, path) {
        if (value === null) return null;
        throw new ConfigError(file, path, "null", value, {
          hint: "a solver_p scheduler (UniC on top of another predictor) is not supported; remove the key",
        });
      },
    },
    use_karras_sigmas: field.bool(false),
  },
  // src/diffusers/schedulers/scheduling_lms_discrete.py
  LMSDiscreteScheduler: { ...baseFields("linspace"), use_karras_sigmas: field.bool(false) },
  // src/diffusers/schedulers/scheduling_ddim_inverse.py ("linspace" spacing raises in its set_timesteps)
  DDIMInverseScheduler: {
    ...baseFields("leading"),
    timestep_spacing: field.oneOf(["leading", "trailing"], "leading"),
    ...CLIP_SAMPLE_FIELDS,
    set_alpha_to_one: field.bool(true),
    // deprecated spelling: when not null it replaces set_alpha_to_one (diffusers' __init__ kwargs)
    set_alpha_to_zero: field.nullable(field.bool(true)),
    rescale_betas_zero_snr: field.bool(false),
  },
  // src/diffusers/schedulers/scheduling_lcm.py (timestep_spacing and steps_offset are read but unused)
  LCMScheduler: {
    ...baseFields("leading"),
    beta_start: field.number(0.00085, { min: 0 }),
    beta_end: field.number(0.012, { min: 0 }),
    beta_schedule: field.oneOf(COMMON_BETA_SCHEDULES, "scaled_linear"),
    ...THRESHOLDING_FIELDS,
    original_inference_steps: field.int(50, { min: 1 }),
    ...CLIP_SAMPLE_FIELDS,
    clip_sample: field.bool(false),
    set_alpha_to_one: field.bool(true),
    timestep_scaling: field.number(10.0, { min: 0 }),
    rescale_betas_zero_snr: field.bool(false),
  },
};
