/**
 * Noise levels of the sigma-parameterised samplers (Euler, Euler ancestral, LMS, DPM-Solver):
 * sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t), the Karras et al. (2022, eq. 5) schedule, and the
 * inverse map from a sigma back to a fractional training timestep. Mirrors diffusers 0.26.3
 * (`_convert_to_karras`, `_sigma_to_t`, `_convert_to_lu` in scheduling_euler_discrete.py /
 * scheduling_dpmsolver_multistep.py), including where it computes in float32 and where in float64.
 */
import { InvalidArgumentError } from "../errors.js";
import { npInterp, npLinspace, roundHalfEven } from "./numeric.js";

const f32 = Math.fround;

/** sigma_t for every training timestep t (ascending t), float32 like the torch expression. */
export function trainingSigmas(alphasCumprod: Float32Array): Float32Array {
  return alphasCumprod.map((a) => f32(Math.sqrt(f32(f32(1 - a) / a))));
}

/** np.log of the float32 training sigmas (float32 results). */
export function logSigmas(sigmas: Float32Array): Float32Array {
  return sigmas.map((s) => f32(Math.log(s)));
}

/**
 * Karras schedule: (sigma_max^(1/rho) + ramp * (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho for
 * ramp = linspace(0, 1, n), rho = 7. Float64, descending.
 */
export function karrasSigmas(sigmaMin: number, sigmaMax: number, n: number, rho = 7.0): number[] {
  const minInv = sigmaMin ** (1 / rho);
  const maxInv = sigmaMax ** (1 / rho);
  return npLinspace(0, 1, n).map((r) => (maxInv + r * (minInv - maxInv)) ** rho);
}

/** The sigmas of integer timesteps, linearly interpolated in the training table (np.interp). */
export function sigmasAtTimesteps(timesteps: readonly number[], train: Float32Array): number[] {
  return npInterp(
    timesteps,
    Array.from({ length: train.length }, (_, i) => i),
    train,
  );
}

/** Karras sigmas spanning the training sigmas, and the (rounded) timesteps they map back to. */
export function karrasSchedule(
  train: Float32Array,
  logs: Float32Array,
  n: number,
): { sigmas: number[]; timesteps: number[] } {
  const sigmas = karrasSigmas(train[0] ?? 0, train[train.length - 1] ?? 0, n);
  return { sigmas, timesteps: sigmas.map((s) => roundHalfEven(sigmaToT(s, logs))) };
}

/** Lu et al. (DPM-Solver++) log-SNR-uniform schedule: linspace(lambda_max, lambda_min, n) (rho = 1). */
export function luLambdas(lambdaMin: number, lambdaMax: number, n: number): number[] {
  return npLinspace(0, 1, n).map((r) => lambdaMax + r * (lambdaMin - lambdaMax));
}

/**
 * The fractional training timestep whose (log-linearly interpolated) sigma is `sigma`:
 * find the bracketing log-sigmas, w = (low - log sigma) / (low - high), t = (1 - w) i + w (i + 1).
 */
export function sigmaToT(sigma: number, logSigmasTable: Float32Array): number {
  const n = logSigmasTable.length;
  const logSigma = Math.log(Math.max(sigma, 1e-10));
  // numpy: cumsum(dists >= 0).argmax() = first index where the running count reaches its total.
  let total = 0;
  for (const ls of logSigmasTable) if (logSigma - ls >= 0) total++;
  let lowIdx = 0;
  if (total > 0) {
    let count = 0;
    for (let i = 0; i < n; i++) {
      if (logSigma - (logSigmasTable[i] ?? 0) >= 0) count++;
      if (count === total) {
        lowIdx = i;
        break;
      }
    }
  }
  lowIdx = Math.min(lowIdx, n - 2);
  const low = logSigmasTable[lowIdx] ?? 0;
  const high = logSigmasTable[lowIdx + 1] ?? 0;
  let w = (low - logSigma) / f32(low - high);
  w = Math.min(Math.max(w, 0), 1);
  return (1 - w) * lowIdx + w * (lowIdx + 1);
}

/** init_noise_sigma of the Euler family: max sigma, or sqrt(max^2 + 1) for "leading" spacing. */
export function eulerInitNoiseSigma(sigmas: Float32Array, spacing: string): number {
  let max = 0;
  for (const s of sigmas) if (s > max) max = s;
  return spacing === "linspace" || spacing === "trailing" ? max : f32(Math.sqrt(f32(f32(max * max) + 1)));
}

/**
 * Index of timestep `t` in `timesteps` for the first step of a run (diffusers `_init_step_index`):
 * the second match when `t` occurs more than once. `missing` says what to do when it does not occur.
 */
export function initialStepIndex(
  timesteps: readonly number[],
  t: number,
  missing: "throw" | "last" = "throw",
): number {
  const matches: number[] = [];
  timesteps.forEach((v, i) => {
    if (v === t) matches.push(i);
  });
  if (matches.length === 0) {
    if (missing === "last") return timesteps.length - 1;
    throw new InvalidArgumentError("t", "one of the scheduler's timesteps (call setTimesteps first)", t);
  }
  return matches.length > 1 ? (matches[1] ?? 0) : (matches[0] ?? 0);
}

/** Index of `t` for add_noise (diffusers 0.26.3: `(schedule_timesteps == t).nonzero().item()`). */
export function addNoiseStepIndex(timesteps: readonly number[], t: number): number {
  const i = timesteps.indexOf(t);
  if (i < 0) {
    throw new InvalidArgumentError(
      "timesteps",
      "values from the scheduler's timesteps (call setTimesteps first)",
      t,
    );
  }
  return i;
}
