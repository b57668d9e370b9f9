/**
 * Shared `set_timesteps` logic of the Euler-family schedulers (EulerDiscrete, EulerAncestralDiscrete,
 * LMSDiscrete in diffusers 0.26.3): float32 timesteps for the spacing, sigmas interpolated linearly
 * (np.interp) from the training sigmas at those timesteps, optionally replaced by a Karras schedule
 * (then the timesteps become the fractional training timesteps of those sigmas), and a final 0.
 */
import type { TimestepSpacing } from "./config.js";
import { npInterp, torchLinspaceF32 } from "./numeric.js";
import { karrasSigmas, logSigmas, sigmaToT, trainingSigmas } from "./sigmas.js";
import { sigmaTimesteps } from "./spacing.js";

const f32 = Math.fround;

export interface SigmaScheduleOptions {
  readonly spacing: TimestepSpacing;
  readonly stepsOffset: number;
  readonly useKarrasSigmas: boolean;
  /** Euler only: "log_linear" spaces N + 1 sigmas evenly in log space between sigma_max and sigma_min. */
  readonly interpolationType?: "linear" | "log_linear";
  /** Euler only: overrides of the Karras range (config sigma_min / sigma_max). */
  readonly sigmaMin?: number | null;
  readonly sigmaMax?: number | null;
}

export interface SigmaSchedule {
  /** float32 timesteps (what the UNet receives). */
  readonly timesteps: number[];
  /** float32 sigmas, one per timestep plus a final 0. */
  readonly sigmas: Float32Array;
}

export function sigmaSchedule(
  alphasCumprod: Float32Array,
  numInferenceSteps: number,
  o: SigmaScheduleOptions,
): SigmaSchedule {
  const numTrain = alphasCumprod.length;
  let timesteps = sigmaTimesteps(o.spacing, numTrain, numInferenceSteps, o.stepsOffset);
  const train = trainingSigmas(alphasCumprod);
  const logs = logSigmas(train);
  let sigmas: number[];
  if (o.interpolationType === "log_linear") {
    const first = f32(Math.log(train[numTrain - 1] ?? 1));
    const last = f32(Math.log(train[0] ?? 1));
    sigmas = Array.from(torchLinspaceF32(first, last, numInferenceSteps + 1), (v) => f32(Math.exp(v)));
  } else {
    const knots = Array.from({ length: numTrain }, (_, i) => i);
    sigmas = npInterp(timesteps, knots, train);
  }
  if (o.useKarrasSigmas) {
    const sigmaMin = o.sigmaMin ?? sigmas[sigmas.length - 1] ?? 0;
    const sigmaMax = o.sigmaMax ?? sigmas[0] ?? 0;
    sigmas = karrasSigmas(sigmaMin, sigmaMax, numInferenceSteps);
    timesteps = sigmas.map((s) => f32(sigmaToT(s, logs)));
  }
  return { timesteps, sigmas: Float32Array.from([...sigmas, 0]) };
}
