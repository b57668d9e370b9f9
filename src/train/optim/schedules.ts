/**
 * Learning-rate schedules of diffusers `optimization.get_scheduler` (0.26.3): the factor applied to
 * the base lr after `step` calls of lr_scheduler.step() (the lr the next optimiser step uses).
 * "cosine" uses num_cycles 0.5 and does not clamp past num_training_steps; "cosine_with_restarts"
 * takes num_cycles (get_scheduler default 1); "polynomial" decays to lr_end 1e-7 with `power`.
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
}

/** lr(step) = baseLr * factor(step), as diffusers' LambdaLR for `name`. */
export function learningRateSchedule(
  name: ScheduleName,
  baseLr: number,
  options: ScheduleOptions = {},
): (step: number) => number {
  if (!SCHEDULE_NAMES.includes(name))
    throw new InvalidArgumentError("lr scheduler", `one of ${SCHEDULE_NAMES.join(", ")}`, name);
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
