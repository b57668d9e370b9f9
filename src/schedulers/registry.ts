/**
 * Scheduler lookup by short name ("ddim", "dpmpp_2m", ...) or diffusers class name
 * ("DDIMScheduler", case-sensitive), and construction from a `scheduler_config.json` object. A few
 * short names are presets: a class plus config values (`dpmpp_2m_karras` is DPM-Solver++ 2M with
 * Karras sigmas, the "DPM++ 2M Karras" of A1111-style front ends), applied over the model's config.
 */
import { InvalidArgumentError } from "../errors.js";
import { type ParseConfigOptions, type SchedulerConfigMap, parseSchedulerConfig } from "./config.js";
import { DDIMInverseScheduler } from "./ddim-inverse.js";
import { DDIMScheduler } from "./ddim.js";
import { DDPMScheduler } from "./ddpm.js";
import { DPMSolverMultistepScheduler } from "./dpm-solver-multistep.js";
import { EulerAncestralDiscreteScheduler } from "./euler-ancestral-discrete.js";
import { EulerDiscreteScheduler } from "./euler-discrete.js";
import { LCMScheduler } from "./lcm.js";
import { LMSDiscreteScheduler } from "./lms-discrete.js";
import { PNDMScheduler } from "./pndm.js";
import { UniPCMultistepScheduler } from "./unipc-multistep.js";
import type { Scheduler, SchedulerClassName } from "./scheduler.js";

/** Short names, as a CLI or UI offers them. */
export const SCHEDULER_NAMES: Readonly<Record<string, SchedulerClassName>> = {
  ddim: "DDIMScheduler",
  ddpm: "DDPMScheduler",
  pndm: "PNDMScheduler",
  euler: "EulerDiscreteScheduler",
  euler_ancestral: "EulerAncestralDiscreteScheduler",
  dpmpp_2m: "DPMSolverMultistepScheduler",
  dpmpp_2m_karras: "DPMSolverMultistepScheduler",
  unipc: "UniPCMultistepScheduler",
  lms: "LMSDiscreteScheduler",
  lcm: "LCMScheduler",
  ddim_inverse: "DDIMInverseScheduler",
};

/** Config values a preset short name sets over the model's scheduler config. */
export const SCHEDULER_PRESETS: Readonly<Record<string, Readonly<Record<string, unknown>>>> = {
  dpmpp_2m_karras: { use_karras_sigmas: true },
};

export const SCHEDULER_CLASS_NAMES: readonly SchedulerClassName[] = [
  "DDIMScheduler",
  "DDPMScheduler",
  "PNDMScheduler",
  "EulerDiscreteScheduler",
  "EulerAncestralDiscreteScheduler",
  "DPMSolverMultistepScheduler",
  "UniPCMultistepScheduler",
  "LMSDiscreteScheduler",
  "LCMScheduler",
  "DDIMInverseScheduler",
];

/** Resolves a short name or class name; throws InvalidArgumentError listing the valid names. */
export function resolveSchedulerName(name: string): SchedulerClassName {
  const byClass = SCHEDULER_CLASS_NAMES.find((c) => c === name);
  if (byClass !== undefined) return byClass;
  const byShort = Object.hasOwn(SCHEDULER_NAMES, name) ? SCHEDULER_NAMES[name] : undefined;
  if (byShort !== undefined) return byShort;
  const valid = [...Object.keys(SCHEDULER_NAMES), ...SCHEDULER_CLASS_NAMES].join(", ");
  throw new InvalidArgumentError("scheduler name", `one of ${valid}`, name);
}

/** `config` with the values of preset `name` over it (unchanged for a name that is no preset). */
export function withPreset<T>(name: string, config: T): T | Record<string, unknown> {
  const preset = Object.hasOwn(SCHEDULER_PRESETS, name) ? SCHEDULER_PRESETS[name] : undefined;
  if (preset === undefined || typeof config !== "object" || config === null || Array.isArray(config))
    return config;
  return { ...config, ...preset };
}

export interface FromConfigResult {
  readonly scheduler: Scheduler;
  /** Config keys the class does not take (ignored), one line each. */
  readonly warnings: readonly string[];
}

/**
 * Builds a scheduler from a parsed scheduler_config.json object (or `{}` for all defaults) and
 * returns the warnings about ignored keys. `_class_name` in the config is ignored: `name` decides
 * the class, as with diffusers' `SomeScheduler.from_config(config)`; a preset name's values win over
 * the config's.
 */
export function fromConfigWithWarnings(
  name: string,
  config: unknown = {},
  options: ParseConfigOptions = {},
): FromConfigResult {
  const className = resolveSchedulerName(name);
  const parsed = parseSchedulerConfig(className, withPreset(name, config), options);
  const scheduler = build(className, parsed.config);
  return { scheduler, warnings: parsed.warnings };
}

/** Like `fromConfigWithWarnings`, returning only the scheduler. */
export function fromConfig(name: string, config: unknown = {}, options: ParseConfigOptions = {}): Scheduler {
  return fromConfigWithWarnings(name, config, options).scheduler;
}

const BUILDERS: { readonly [C in SchedulerClassName]: (config: SchedulerConfigMap[C]) => Scheduler } = {
  DDIMScheduler: (c) => new DDIMScheduler(c),
  DDPMScheduler: (c) => new DDPMScheduler(c),
  PNDMScheduler: (c) => new PNDMScheduler(c),
  EulerDiscreteScheduler: (c) => new EulerDiscreteScheduler(c),
  EulerAncestralDiscreteScheduler: (c) => new EulerAncestralDiscreteScheduler(c),
  DPMSolverMultistepScheduler: (c) => new DPMSolverMultistepScheduler(c),
  UniPCMultistepScheduler: (c) => new UniPCMultistepScheduler(c),
  LMSDiscreteScheduler: (c) => new LMSDiscreteScheduler(c),
  LCMScheduler: (c) => new LCMScheduler(c),
  DDIMInverseScheduler: (c) => new DDIMInverseScheduler(c),
};

function build<C extends SchedulerClassName>(className: C, config: SchedulerConfigMap[C]): Scheduler {
  return BUILDERS[className](config);
}
