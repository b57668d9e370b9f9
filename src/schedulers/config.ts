/**
 * Scheduler configs: the fields of diffusers' `scheduler_config.json`, verbatim, with each class's
 * own defaults (diffusers 0.26.3, the `__init__` signature of every scheduler class). Keys starting
 * with `_` (`_class_name`, `_diffusers_version`) are metadata and ignored. Keys a class does not take
 * are returned as warnings (diffusers logs and ignores them), or rejected with `strict: true`.
 */
import { ConfigError } from "../errors.js";
import {
  type BetaSchedule,
  type PredictionType,
  type TimestepSpacing,
  type DDPMVarianceType,
  type DPMSolverAlgorithmType,
  type BaseSchedulerConfig,
  type ThresholdingConfig,
  type DDPMSchedulerConfig,
  type DDIMSchedulerConfig,
  type PNDMSchedulerConfig,
  type EulerDiscreteSchedulerConfig,
  type EulerAncestralDiscreteSchedulerConfig,
  type LMSDiscreteSchedulerConfig,
  type DPMSolverMultistepSchedulerConfig,
  type SchedulerConfigMap,
  DEFAULTS,
} from "./config-defaults.js";
import { FieldReader } from "./config-reader.js";
import type { SchedulerClassName } from "./scheduler.js";

export { DEFAULTS };
export type {
  BetaSchedule,
  PredictionType,
  TimestepSpacing,
  DDPMVarianceType,
  DPMSolverAlgorithmType,
  BaseSchedulerConfig,
  ThresholdingConfig,
  DDPMSchedulerConfig,
  DDIMSchedulerConfig,
  PNDMSchedulerConfig,
  EulerDiscreteSchedulerConfig,
  EulerAncestralDiscreteSchedulerConfig,
  LMSDiscreteSchedulerConfig,
  DPMSolverMultistepSchedulerConfig,
  SchedulerConfigMap,
};

const PREDICTION_TYPES: readonly PredictionType[] = ["epsilon", "v_prediction", "sample"];
const SPACINGS: readonly TimestepSpacing[] = ["linspace", "leading", "trailing"];
const COMMON_BETA_SCHEDULES: readonly BetaSchedule[] = ["linear", "scaled_linear", "squaredcos_cap_v2"];

function readBase(
  r: FieldReader,
  d: BaseSchedulerConfig,
  opts: { betaSchedules?: readonly BetaSchedule[]; predictionTypes?: readonly PredictionType[] } = {},
): BaseSchedulerConfig {
  const num_train_timesteps = r.number("num_train_timesteps", d.num_train_timesteps, {
    integer: true,
    min: 2,
  });
  const trained_betas = r.numberArrayOrNull("trained_betas", d.trained_betas);
  if (trained_betas !== null && trained_betas.length !== num_train_timesteps) {
    throw new ConfigError(
      r.file,
      "trained_betas",
      `an array of num_train_timesteps (${num_train_timesteps}) numbers`,
      `${trained_betas.length} numbers`,
    );
  }
  return {
    num_train_timesteps,
    beta_start: r.number("beta_start", d.beta_start, { min: 0 }),
    beta_end: r.number("beta_end", d.beta_end, { min: 0 }),
    beta_schedule: r.oneOf("beta_schedule", opts.betaSchedules ?? COMMON_BETA_SCHEDULES, d.beta_schedule),
    trained_betas,
    prediction_type: r.oneOf("prediction_type", opts.predictionTypes ?? PREDICTION_TYPES, d.prediction_type),
    timestep_spacing: r.oneOf("timestep_spacing", SPACINGS, d.timestep_spacing),
    steps_offset: r.number("steps_offset", d.steps_offset, { integer: true, min: 0 }),
  };
}

function readThresholding(r: FieldReader, d: ThresholdingConfig): ThresholdingConfig {
  return {
    thresholding: r.boolean("thresholding", d.thresholding),
    dynamic_thresholding_ratio: r.number("dynamic_thresholding_ratio", d.dynamic_thresholding_ratio, {
      min: 0,
      max: 1,
    }),
    sample_max_value: r.number("sample_max_value", d.sample_max_value, { min: 0 }),
  };
}

const READERS: { readonly [C in SchedulerClassName]: (r: FieldReader) => SchedulerConfigMap[C] } = {
  DDPMScheduler: (r) => {
    const d = DEFAULTS.DDPMScheduler;
    return {
      ...readBase(r, d, { betaSchedules: [...COMMON_BETA_SCHEDULES, "sigmoid"] }),
      ...readThresholding(r, d),
      variance_type: r.oneOf(
        "variance_type",
        ["fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log", "learned", "learned_range"],
        d.variance_type,
      ),
      clip_sample: r.boolean("clip_sample", d.clip_sample),
      clip_sample_range: r.number("clip_sample_range", d.clip_sample_range, { min: 0 }),
      rescale_betas_zero_snr: r.boolean("rescale_betas_zero_snr", d.rescale_betas_zero_snr),
    };
  },
  DDIMScheduler: (r) => {
    const d = DEFAULTS.DDIMScheduler;
    return {
      ...readBase(r, d),
      ...readThresholding(r, d),
      clip_sample: r.boolean("clip_sample", d.clip_sample),
      clip_sample_range: r.number("clip_sample_range", d.clip_sample_range, { min: 0 }),
      set_alpha_to_one: r.boolean("set_alpha_to_one", d.set_alpha_to_one),
      rescale_betas_zero_snr: r.boolean("rescale_betas_zero_snr", d.rescale_betas_zero_snr),
    };
  },
  PNDMScheduler: (r) => {
    const d = DEFAULTS.PNDMScheduler;
    return {
      ...readBase(r, d, { predictionTypes: ["epsilon", "v_prediction"] }),
      skip_prk_steps: r.boolean("skip_prk_steps", d.skip_prk_steps),
      set_alpha_to_one: r.boolean("set_alpha_to_one", d.set_alpha_to_one),
    };
  },
  EulerDiscreteScheduler: (r) => {
    const d = DEFAULTS.EulerDiscreteScheduler;
    return {
      ...readBase(r, d),
      interpolation_type: r.oneOf("interpolation_type", ["linear", "log_linear"], d.interpolation_type),
      use_karras_sigmas: r.boolean("use_karras_sigmas", d.use_karras_sigmas),
      sigma_min: r.nullableNumber("sigma_min", d.sigma_min, { min: 0 }),
      sigma_max: r.nullableNumber("sigma_max", d.sigma_max, { min: 0 }),
      timestep_type: r.oneOf("timestep_type", ["discrete", "continuous"], d.timestep_type),
      rescale_betas_zero_snr: r.boolean("rescale_betas_zero_snr", d.rescale_betas_zero_snr),
    };
  },
  EulerAncestralDiscreteScheduler: (r) => {
    const d = DEFAULTS.EulerAncestralDiscreteScheduler;
    return {
      ...readBase(r, d, { predictionTypes: ["epsilon", "v_prediction"] }),
      rescale_betas_zero_snr: r.boolean("rescale_betas_zero_snr", d.rescale_betas_zero_snr),
    };
  },
  DPMSolverMultistepScheduler: (r) => {
    const d = DEFAULTS.DPMSolverMultistepScheduler;
    // diffusers re-registers "deis" as "dpmsolver++" and logrho/bh1/bh2 as "midpoint".
    const algorithm = r.oneOf(
      "algorithm_type",
      ["dpmsolver++", "sde-dpmsolver++", "dpmsolver", "sde-dpmsolver", "deis"],
      d.algorithm_type,
    );
    const solver = r.oneOf("solver_type", ["midpoint", "heun", "logrho", "bh1", "bh2"], d.solver_type);
    const config: DPMSolverMultistepSchedulerConfig = {
      ...readBase(r, d),
      ...readThresholding(r, d),
      solver_order: r.number("solver_order", d.solver_order, { integer: true, min: 1, max: 3 }),
      algorithm_type: algorithm === "deis" ? "dpmsolver++" : algorithm,
      solver_type: solver === "heun" ? "heun" : "midpoint",
      lower_order_final: r.boolean("lower_order_final", d.lower_order_final),
      euler_at_final: r.boolean("euler_at_final", d.euler_at_final),
      use_karras_sigmas: r.boolean("use_karras_sigmas", d.use_karras_sigmas),
      use_lu_lambdas: r.boolean("use_lu_lambdas", d.use_lu_lambdas),
      final_sigmas_type: r.oneOf("final_sigmas_type", ["zero", "sigma_min"], d.final_sigmas_type),
      lambda_min_clipped: r.number("lambda_min_clipped", d.lambda_min_clipped),
      variance_type: r.nullableOneOf("variance_type", ["learned", "learned_range"], d.variance_type),
    };
    if (config.final_sigmas_type === "zero" && !config.algorithm_type.endsWith("dpmsolver++")) {
      throw new ConfigError(
        r.file,
        "final_sigmas_type",
        `"sigma_min" with algorithm_type "${config.algorithm_type}"`,
        "zero",
        {
          hint: 'a final sigma of 0 needs a data-prediction solver: use algorithm_type "dpmsolver++" or final_sigmas_type "sigma_min"',
        },
      );
    }
    if (config.solver_order === 3 && config.algorithm_type.startsWith("sde-")) {
      throw new ConfigError(r.file, "solver_order", "1 or 2 for the SDE variants", 3);
    }
    return config;
  },
  LMSDiscreteScheduler: (r) => {
    const d = DEFAULTS.LMSDiscreteScheduler;
    return { ...readBase(r, d), use_karras_sigmas: r.boolean("use_karras_sigmas", d.use_karras_sigmas) };
  },
};

export interface ParseConfigOptions {
  /** Where the config came from, for error messages (optional, default "scheduler_config.json"). */
  readonly file?: string;
  /** Reject keys the class does not take instead of returning them as warnings (optional, default false). */
  readonly strict?: boolean;
}

/** How the scheduler constructors validate the (partial) config object they are given. */
export const CONSTRUCTOR_PARSE: ParseConfigOptions = { file: "scheduler config", strict: true };

export interface ParsedSchedulerConfig<C extends SchedulerClassName> {
  readonly config: SchedulerConfigMap[C];
  /** One line per ignored key. */
  readonly warnings: readonly string[];
}

/** Validates a parsed `scheduler_config.json` object for `className`, filling in that class's defaults. */
export function parseSchedulerConfig<C extends SchedulerClassName>(
  className: C,
  raw: unknown,
  options: ParseConfigOptions = {},
): ParsedSchedulerConfig<C> {
  const file = options.file ?? "scheduler_config.json";
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ConfigError(file, "(root)", "a JSON object", raw);
  }
  const entries: Record<string, unknown> = { ...raw };
  const reader = new FieldReader(entries, file);
  const config = READERS[className](reader);
  const unused = reader.unusedKeys();
  if (options.strict === true && unused.length > 0) {
    const first = unused[0] ?? "";
    throw new ConfigError(file, first, `a field ${className} takes`, entries[first], {
      hint: `unknown field(s) ${unused.join(", ")}: remove them, or parse without strict to ignore them`,
    });
  }
  const warnings = unused.map((k) => `${file}: ${className} does not take "${k}"; ignored`);
  return { config, warnings };
}
