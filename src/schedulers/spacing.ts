/**
 * Timestep spacings (diffusers 0.26.3 `set_timesteps`; Lin et al. 2023, Table 2):
 * - "linspace": evenly spaced over [0, T-1], endpoints included
 * - "leading": k * (T // N) for k = 0..N-1, plus `steps_offset`
 * - "trailing": round(arange(T, 0, -T/N)) - 1, so the first step is always T-1
 */
import { InvalidArgumentError } from "../errors.js";
import type { TimestepSpacing } from "./config.js";
import { npArange, npLinspace, roundHalfEven } from "./numeric.js";

const f32 = Math.fround;

/** Checks `numInferenceSteps` is an integer in [1, numTrainTimesteps] (diffusers' ValueError). */
export function checkNumInferenceSteps(numInferenceSteps: number, numTrainTimesteps: number): void {
  if (
    !Number.isInteger(numInferenceSteps) ||
    numInferenceSteps < 1 ||
    numInferenceSteps > numTrainTimesteps
  ) {
    throw new InvalidArgumentError(
      "numInferenceSteps",
      `an integer in [1, ${numTrainTimesteps}] (num_train_timesteps)`,
      numInferenceSteps,
      { hint: "the scheduler cannot take more inference steps than it has training timesteps" },
    );
  }
}

/** Integer timesteps, descending, as DDPMScheduler / DDIMScheduler compute them. */
export function discreteTimesteps(
  spacing: TimestepSpacing,
  numTrainTimesteps: number,
  numInferenceSteps: number,
  stepsOffset: number,
): number[] {
  switch (spacing) {
    case "linspace":
      return npLinspace(0, numTrainTimesteps - 1, numInferenceSteps)
        .map(roundHalfEven)
        .reverse();
    case "leading": {
      const ratio = Math.floor(numTrainTimesteps / numInferenceSteps);
      const out: number[] = [];
      for (let k = numInferenceSteps - 1; k >= 0; k--) out.push(k * ratio + stepsOffset);
      return out;
    }
    case "trailing":
      return npArange(numTrainTimesteps, 0, -numTrainTimesteps / numInferenceSteps).map(
        (t) => roundHalfEven(t) - 1,
      );
  }
}

/**
 * float32 timesteps, descending, as the Euler / Euler ancestral / LMS schedulers compute them
 * ("linspace" is np.linspace(0, T-1, N, dtype=float32), so values are fractional).
 */
export function sigmaTimesteps(
  spacing: TimestepSpacing,
  numTrainTimesteps: number,
  numInferenceSteps: number,
  stepsOffset: number,
): number[] {
  switch (spacing) {
    case "linspace":
      return npLinspace(0, numTrainTimesteps - 1, numInferenceSteps)
        .map(f32)
        .reverse();
    case "leading":
      return discreteTimesteps("leading", numTrainTimesteps, numInferenceSteps, 0).map((t) =>
        f32(f32(t) + stepsOffset),
      );
    case "trailing":
      return npArange(numTrainTimesteps, 0, -numTrainTimesteps / numInferenceSteps).map((t) =>
        f32(f32(roundHalfEven(t)) - 1),
      );
  }
}

/**
 * Integer timesteps, descending, as the multistep solvers (DPM-Solver, UniPC) compute them: "linspace"
 * is round(linspace(0, last - 1, N + 1))[::-1][:-1] (numpy's half-to-even rounding), "leading" steps
 * by last // (N + 1), "trailing" by T / N from `last`. `last` is the number of usable training
 * timesteps (T, or fewer where DPM-Solver clips lambda).
 */
export function multistepTimesteps(
  spacing: TimestepSpacing,
  last: number,
  numTrainTimesteps: number,
  numInferenceSteps: number,
  stepsOffset: number,
): number[] {
  const n = numInferenceSteps;
  switch (spacing) {
    case "linspace":
      return npLinspace(0, last - 1, n + 1)
        .map(roundHalfEven)
        .reverse()
        .slice(0, -1);
    case "leading": {
      const ratio = Math.floor(last / (n + 1));
      return Array.from({ length: n + 1 }, (_, k) => k * ratio)
        .reverse()
        .slice(0, -1)
        .map((t) => t + stepsOffset);
    }
    case "trailing":
      return npArange(last, 0, -numTrainTimesteps / n).map((t) => roundHalfEven(t) - 1);
  }
}
