/**
 * Operations shared by the sigma-parameterised schedulers (Euler, Euler ancestral, LMS): input
 * scaling x / sqrt(sigma^2 + 1) and forward noising x_t = x_0 + sigma_t noise (diffusers 0.26.3
 * `scale_model_input` / `add_noise` of scheduling_euler_discrete.py).
 */
import { InvalidArgumentError } from "../errors.js";
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
