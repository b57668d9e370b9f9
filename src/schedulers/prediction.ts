/**
 * What the denoising model predicts (`prediction_type`) turned into x_0 or eps, for the
 * variance-preserving form x_t = alpha x_0 + sigma eps that DDPM/DDIM/PNDM (alpha = sqrt(alpha_bar),
 * sigma = sqrt(1 - alpha_bar)) and DPM-Solver (alpha_t, sigma_t from the run's sigma) share:
 *   x_0 = (x_t - sigma eps) / alpha,   x_0 = alpha x_t - sigma v,
 *   eps = (x_t - alpha x_0) / sigma,   eps = alpha v + sigma x_t.
 * Each product and quotient is rounded to float32 in the order torch evaluates diffusers' expressions.
 * diffusers 0.26.3: scheduling_ddim.py `step` (step 3), scheduling_dpmsolver_multistep.py
 * `convert_model_output`.
 */
import type { PredictionType } from "./config.js";
import { type F32Tensor, build, checkFloat32, checkSameShape, perBatch } from "./tensor-ops.js";

const f32 = Math.fround;

/** The float32 coefficients of x_t = alpha x_0 + sigma eps at one timestep. */
export interface NoiseLevel {
  readonly alpha: number;
  readonly sigma: number;
}

/** alpha = sqrt(alpha_bar), sigma = sqrt(1 - alpha_bar). */
export function alphaBarLevel(alphaProd: number): NoiseLevel {
  return { alpha: f32(Math.sqrt(alphaProd)), sigma: f32(Math.sqrt(f32(1 - alphaProd))) };
}

/** (x_t - sigma eps) / alpha. */
export function x0FromEpsilon(sample: F32Tensor, eps: F32Tensor, { alpha, sigma }: NoiseLevel): F32Tensor {
  const x = sample.data;
  return build(sample.shape, (i) => f32(f32((x[i] ?? 0) - f32(sigma * (eps.data[i] ?? 0))) / alpha));
}

/** alpha x_t - sigma v. */
export function x0FromV(sample: F32Tensor, v: F32Tensor, { alpha, sigma }: NoiseLevel): F32Tensor {
  const x = sample.data;
  return build(sample.shape, (i) => f32(f32(alpha * (x[i] ?? 0)) - f32(sigma * (v.data[i] ?? 0))));
}

/** (x_t - alpha x_0) / sigma. */
export function epsilonFromX0(sample: F32Tensor, x0: F32Tensor, { alpha, sigma }: NoiseLevel): F32Tensor {
  const x = sample.data;
  return build(sample.shape, (i) => f32(f32((x[i] ?? 0) - f32(alpha * (x0.data[i] ?? 0))) / sigma));
}

/** alpha v + sigma x_t. */
export function epsilonFromV(sample: F32Tensor, v: F32Tensor, { alpha, sigma }: NoiseLevel): F32Tensor {
  const x = sample.data;
  return build(sample.shape, (i) => f32(f32(alpha * (v.data[i] ?? 0)) + f32(sigma * (x[i] ?? 0))));
}

/** x_0 from the model output (the output itself for "sample"). */
export function predictedOriginal(
  type: PredictionType,
  modelOutput: F32Tensor,
  sample: F32Tensor,
  level: NoiseLevel,
): F32Tensor {
  if (type === "sample") return modelOutput;
  return (type === "epsilon" ? x0FromEpsilon : x0FromV)(sample, modelOutput, level);
}

/** eps from the model output (the output itself for "epsilon"). */
export function predictedEpsilon(
  type: PredictionType,
  modelOutput: F32Tensor,
  sample: F32Tensor,
  level: NoiseLevel,
): F32Tensor {
  if (type === "epsilon") return modelOutput;
  return (type === "sample" ? epsilonFromX0 : epsilonFromV)(sample, modelOutput, level);
}

/**
 * Forward noising x_t = alpha x_0 + sigma noise, with the level of each batch element's timestep
 * (one timestep for the whole batch, or one per element).
 */
export function noiseToLevels(
  original: F32Tensor,
  noise: F32Tensor,
  timesteps: readonly number[],
  levelAt: (t: number) => NoiseLevel,
): F32Tensor {
  checkFloat32(original, "original");
  checkFloat32(noise, "noise");
  checkSameShape(original, noise, "original", "noise");
  const levels = timesteps.map(levelAt);
  const alpha = perBatch(
    levels.map((l) => l.alpha),
    original.shape,
    "timesteps",
  );
  const sigma = perBatch(
    levels.map((l) => l.sigma),
    original.shape,
    "timesteps",
  );
  return build(original.shape, (i) =>
    f32(f32(alpha(i) * (original.data[i] ?? 0)) + f32(sigma(i) * (noise.data[i] ?? 0))),
  );
}
