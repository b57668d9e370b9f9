/**
 * Scheduler configs: diffusers' `scheduler_config.json` fields, verbatim, parsed with the project's
 * config parser (`src/config/parse.ts`) against each class's field table (config-fields.ts) and then
 * checked across fields. Keys starting with `_` (`_class_name`, `_diffusers_version`) are metadata and
 * ignored. Keys a class does not take are returned as warnings (diffusers logs and ignores them), or
 * rejected with `strict: true`.
 */
import { type ParseOptions, type Parsed, parseConfig } from "../config/parse.js";
import { ConfigError } from "../errors.js";
import {
  type BaseSchedulerConfig,
  type DPMSolverMultistepSchedulerConfig,
  type SchedulerConfigMap,
  SCHEDULER_FIELDS,
} from "./config-fields.js";
import type { SchedulerClassName } from "./scheduler.js";

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
  UniPCMultistepSchedulerConfig,
  UniPCSolverType,
  DDIMInverseSchedulerConfig,
  LCMSchedulerConfig,
  SchedulerConfigMap,
} from "./config-fields.js";

export interface ParseConfigOptions extends Pick<ParseOptions, "strict"> {
  /** Where the config came from, for error messages (optional, default "scheduler_config.json"). */
  readonly file?: string;
}

/** How the scheduler constructors validate the (partial) config object they are given. */
export const CONSTRUCTOR_PARSE: ParseConfigOptions = { file: "scheduler config", strict: true };

export type ParsedSchedulerConfig<C extends SchedulerClassName> = Parsed<SchedulerConfigMap[C]>;

function checkTrainedBetas(file: string, c: BaseSchedulerConfig): void {
  if (c.trained_betas !== null && c.trained_betas.length !== c.num_train_timesteps) {
    throw new ConfigError(
      file,
      "trained_betas",
      `an array of num_train_timesteps (${c.num_train_timesteps}) numbers`,
      `${c.trained_betas.length} numbers`,
    );
  }
}

function checkDPMSolver(file: string, c: DPMSolverMultistepSchedulerConfig): void {
  if (c.final_sigmas_type === "zero" && !c.algorithm_type.endsWith("dpmsolver++")) {
    throw new ConfigError(
      file,
      "final_sigmas_type",
      `"sigma_min" with algorithm_type "${c.algorithm_type}"`,
      "zero",
      {
        hint: 'a final sigma of 0 needs a data-prediction solver: use algorithm_type "dpmsolver++" or final_sigmas_type "sigma_min"',
      },
    );
  }
  if (c.solver_order === 3 && c.algorithm_type.startsWith("sde-")) {
    throw new ConfigError(file, "solver_order", "1 or 2 for the SDE variants", 3);
  }
}

type Parser<C extends SchedulerClassName> = (
  file: string,
  raw: unknown,
  options: ParseOptions,
) => Parsed<SchedulerConfigMap[C]>;

const F = SCHEDULER_FIELDS;
const PARSERS: { readonly [C in SchedulerClassName]: Parser<C> } = {
  DDPMScheduler: (file, raw, o) => parseConfig(file, raw, F.DDPMScheduler, o),
  DDIMScheduler: (file, raw, o) => parseConfig(file, raw, F.DDIMScheduler, o),
  PNDMScheduler: (file, raw, o) => parseConfig(file, raw, F.PNDMScheduler, o),
  EulerDiscreteScheduler: (file, raw, o) => parseConfig(file, raw, F.EulerDiscreteScheduler, o),
  EulerAncestralDiscreteScheduler: (file, raw, o) =>
    parseConfig(file, raw, F.EulerAncestralDiscreteScheduler, o),
  DPMSolverMultistepScheduler: (file, raw, o) => {
    const parsed = parseConfig(file, raw, F.DPMSolverMultistepScheduler, o);
    checkDPMSolver(file, parsed.config);
    return parsed;
  },
  UniPCMultistepScheduler: (file, raw, o) => parseConfig(file, raw, F.UniPCMultistepScheduler, o),
  LMSDiscreteScheduler: (file, raw, o) => parseConfig(file, raw, F.LMSDiscreteScheduler, o),
  DDIMInverseScheduler: (file, raw, o) => parseConfig(file, raw, F.DDIMInverseScheduler, o),
  LCMScheduler: (file, raw, o) => parseConfig(file, raw, F.LCMScheduler, o),
};

/** Validates a parsed `scheduler_config.json` object for `className`, filling in that class's defaults. */
export function parseSchedulerConfig<C extends SchedulerClassName>(
  className: C,
  raw: unknown,
  options: ParseConfigOptions = {},
): ParsedSchedulerConfig<C> {
  const file = options.file ?? "scheduler_config.json";
  const strict = options.strict === true;
  const parsed = PARSERS[className](file, raw, { strict, owner: className });
  checkTrainedBetas(file, parsed.config);
  return parsed;
}

/** Per-class defaults of diffusers 0.26.3 (the keyword defaults of each class's `__init__`). */
export const DEFAULTS: { readonly [C in SchedulerClassName]: SchedulerConfigMap[C] } = {
  DDPMScheduler: parseSchedulerConfig("DDPMScheduler", {}).config,
  DDIMScheduler: parseSchedulerConfig("DDIMScheduler", {}).config,
  PNDMScheduler: parseSchedulerConfig("PNDMScheduler", {}).config,
  EulerDiscreteScheduler: parseSchedulerConfig("EulerDiscreteScheduler", {}).config,
  EulerAncestralDiscreteScheduler: parseSchedulerConfig("EulerAncestralDiscreteScheduler", {}).config,
  DPMSolverMultistepScheduler: parseSchedulerConfig("DPMSolverMultistepScheduler", {}).config,
  UniPCMultistepScheduler: parseSchedulerConfig("UniPCMultistepScheduler", {}).config,
  LMSDiscreteScheduler: parseSchedulerConfig("LMSDiscreteScheduler", {}).config,
  DDIMInverseScheduler: parseSchedulerConfig("DDIMInverseScheduler", {}).config,
  LCMScheduler: parseSchedulerConfig("LCMScheduler", {}).config,
};
