/**
 * Learning-rate schedules of diffusers `optimization.get_scheduler` (0.26.3): the factor applied to
 * the base lr after `step` calls of lr_scheduler.step() (the lr the next optimiser step uses).
 * "cosine" uses num_cycles 0.5 and does not clamp past num_training_steps; "cosine_with_restarts"
 * takes num_cycles (get_scheduler default 1); "polynomial" decays to lr_end 1e-7 with `power`;
 * "piecewise_constant" multiplies by the factor of the step range its `stepRules` give.
 * Reference: huggingface/diffusers v0.26.3 src/diffusers/optimization.py.
 */
import { InvalidArgumentError } from "../../errors.js";

export const SCHEDULE_NAMES = [
  "constant",
  "constant_with_warmup",
  "linear",
  "cosine",
  "cosine_with_restarts",
  "polynomial",
] as const;
export type ScheduleName = (typeof SCHEDULE_NAMES)[number];

/**
 * Every get_scheduler name of diffusers 0.26.3: SCHEDULE_NAMES (set by warmup and total steps) and
 * "piecewise_constant" (set by `stepRules`).
 */
export const GET_SCHEDULER_NAMES = [...SCHEDULE_NAMES, "piecewise_constant"] as const;
export type GetSchedulerName = (typeof GET_SCHEDULER_NAMES)[number];

export interface ScheduleOptions {
  /** (optional, default 0) */
  readonly numWarmupSteps?: number;
  /** Required by linear, cosine, cosine_with_restarts and polynomial. */
  readonly numTrainingSteps?: number;
  /** (optional) cosine_with_restarts cycles (default 1); ignored by "cosine" (always 0.5), as diffusers. */
  readonly numCycles?: number;
  /** (optional, default 1) polynomial power. */
  readonly power?: number;
  /** (optional, default 1e-7) polynomial end lr. */
  readonly lrEnd?: number;
  /**
   * Required by piecewise_constant: diffusers' `step_rules`, "<factor>:<step>,...,<last factor>",
   * e.g. "1:10,0.1:20,0.01:30,0.005" = factor 1 before step 10, 0.1 before 20, 0.01 before 30,
   * then 0.005.
   */
  readonly stepRules?: string;
}

/** Python's int() of a string: optional sign, decimal digits (single underscores between). */
function pythonInt(text: string): number | undefined {
  const t = text.trim();
  return /^[-+]?\d+(_\d+)*$/.test(t) ? Number(t.replace(/_/g, "")) : undefined;
}

/** Python's float() of a string (decimal or inf / infinity / nan, any case). */
function pythonFloat(text: string): number | undefined {
  const t = text.trim().replace(/(?<=\d)_(?=\d)/g, "");
  const special = /^([-+]?)(inf|infinity|nan)$/i.exec(t);
  if (special) return special[2]?.toLowerCase() === "nan" ? NaN : (special[1] === "-" ? -1 : 1) * Infinity;
  return /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(t) ? Number(t) : undefined;
}

/**
 * diffusers 0.26.3 get_piecewise_constant_schedule's factor: the rules "<factor>:<step>" (a later
 * rule for the same step replaces an earlier one) sorted by step; the factor of the first rule whose
 * step is above `s`, else the last value.
 */
function piecewiseConstant(stepRules: string | undefined): (s: number) => number {
  const bad = (detail: string): InvalidArgumentError =>
    new InvalidArgumentError("stepRules", `"<factor>:<step>,...,<last factor>" (${detail})`, stepRules);
  if (typeof stepRules !== "string") throw bad("required by the piecewise_constant schedule");
  const parts = stepRules.split(",");
  const rules = new Map<number, number>();
  for (const rule of parts.slice(0, -1)) {
    const fields = rule.split(":");
    const step = pythonInt(fields[1] ?? "");
    const value = pythonFloat(fields[0] ?? "");
    if (fields.length !== 2 || step === undefined || value === undefined) throw bad(`rule "${rule}"`);
    rules.set(step, value);
  }
  const last = pythonFloat(parts[parts.length - 1] ?? "");
  if (last === undefined) throw bad(`last factor "${parts[parts.length - 1] ?? ""}"`);
  const sorted = [...rules.keys()].sort((a, b) => a - b);
  return (s) => {
    for (const step of sorted) if (s < step) return rules.get(step) ?? last;
    return last;
  };
}

/** lr(step) = baseLr * factor(step), as diffusers' LambdaLR for `name`. */
export function learningRateSchedule(
  name: GetSchedulerName,
  baseLr: number,
  options: ScheduleOptions = {},
): (step: number) => number {
  if (!GET_SCHEDULER_NAMES.includes(name))
    throw new InvalidArgumentError("lr scheduler", `one of ${GET_SCHEDULER_NAMES.join(", ")}`, name);
  if (name === "piecewise_constant") {
    const rule = piecewiseConstant(options.stepRules);
    return (step) => baseLr * rule(step);
  }
  const w = options.numWarmupSteps ?? 0;
  const total = options.numTrainingSteps;
  const needsTotal = name !== "constant" && name !== "constant_with_warmup";
  if (needsTotal && (total === undefined || !Number.isInteger(total) || total < 1)) {
    throw new InvalidArgumentError("numTrainingSteps", `a positive integer for the ${name} schedule`, total);
  }
  const t = total ?? 0;
  const warm = (s: number): number => s / Math.max(1, w);
  const progress = (s: number): number => (s - w) / Math.max(1, t - w);
  const factor = (s: number): number => {
    switch (name) {
      case "constant":
        return 1;
      case "constant_with_warmup":
        return s < w ? warm(s) : 1;
      case "linear":
        return s < w ? warm(s) : Math.max(0, (t - s) / Math.max(1, t - w));
      case "cosine":
        return s < w ? warm(s) : Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 0.5 * 2 * progress(s))));
      case "cosine_with_restarts": {
        if (s < w) return warm(s);
        const p = progress(s);
        if (p >= 1) return 0;
        return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * (((options.numCycles ?? 1) * p) % 1))));
      }
      case "polynomial": {
        const lrEnd = options.lrEnd ?? 1e-7;
        if (!(baseLr > lrEnd))
          throw new InvalidArgumentError("lr", `a base lr above lr_end ${lrEnd}`, baseLr);
        if (s < w) return warm(s);
        if (s > t) return lrEnd / baseLr;
        const remaining = 1 - (s - w) / (t - w);
        return ((baseLr - lrEnd) * remaining ** (options.power ?? 1) + lrEnd) / baseLr;
      }
    }
  };
  return (step) => baseLr * factor(step);
}
