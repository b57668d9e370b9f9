/**
 * Operations shared by the sigma-parameterised schedulers (Euler, Euler ancestral, LMS): input
 * scaling x / sqrt(sigma^2 + 1), x_0 from the model output, and forward noising
 * x_t = x_0 + sigma_t noise (diffusers 0.26.3 `scale_model_input` / `step` / `add_noise` of
 * scheduling_euler_discrete.py).
 */
import { InvalidArgumentError } from "../errors.js";
import type { PredictionType } from "./config.js";
import { addNoiseStepIndex } from "./sigmas.js";
import { type F32Tensor, build, checkFloat32, checkSameShape, perBatch } from "./tensor-ops.js";

const f32 = Math.fround;

/** Throws unless setTimesteps has produced a schedule. */
export function requireSchedule(steps: readonly number[]): void {
  if (steps.length === 0) {
    throw new InvalidArgumentError("timesteps", "a schedule set by setTimesteps()", "none", {
      hint: "call scheduler.setTimesteps(n) before scaleModelInput/step/addNoise",
    });
  }
}

/** x / sqrt(sigma^2 + 1), the input scaling of the Euler family. */
export function scaleBySigma(sample: F32Tensor, sigma: number): F32Tensor {
  const denom = f32(Math.sqrt(f32(f32(sigma * sigma) + 1)));
  return build(sample.shape, (i) => f32((sample.data[i] ?? 0) / denom));
}

/**
 * x_0 from the model output at noise level `sigma` (the model saw x / sqrt(sigma^2 + 1)):
 * epsilon: x - sigma eps; v_prediction: -sigma / sqrt(sigma^2 + 1) v + x / (sigma^2 + 1); sample: the
 * output itself. Euler with churn passes its raised sigma_hat as `epsilonSigma`, as diffusers does.
 */
export function predictOriginalFromSigma(
  predictionType: PredictionType,
  modelOutput: F32Tensor,
  sample: F32Tensor,
  sigma: number,
  epsilonSigma = sigma,
): F32Tensor {
  const m = modelOutput.data;
  const x = sample.data;
  switch (predictionType) {
    case "epsilon":
      return build(sample.shape, (i) => f32((x[i] ?? 0) - f32(epsilonSigma * (m[i] ?? 0))));
    case "v_prediction": {
      const c1 = f32(-sigma / f32(Math.sqrt(f32(f32(sigma * sigma) + 1))));
      const c2 = f32(f32(sigma * sigma) + 1);
      return build(sample.shape, (i) => f32(f32((m[i] ?? 0) * c1) + f32((x[i] ?? 0) / c2)));
    }
    case "sample":
      return modelOutput;
  }
}

/** x_t = x_0 + sigma(t) noise (Euler-family add_noise, timesteps looked up in the schedule). */
export function addNoiseWithSigmas(
  steps: readonly number[],
  sigmas: Float32Array,
  original: F32Tensor,
  noise: F32Tensor,
  timesteps: readonly number[],
): F32Tensor {
  requireSchedule(steps);
  checkFloat32(original, "original");
  checkFloat32(noise, "noise");
  checkSameShape(original, noise, "original", "noise");
  const sigma = perBatch(
    timesteps.map((t) => sigmas[addNoiseStepIndex(steps, t)] ?? NaN),
    original.shape,
    "timesteps",
  );
  return build(original.shape, (i) => f32((original.data[i] ?? 0) + f32((noise.data[i] ?? 0) * sigma(i))));
}
