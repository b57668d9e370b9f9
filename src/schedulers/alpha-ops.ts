/**
 * Pieces shared by the alpha_bar-parameterised schedulers (DDPM, DDIM, PNDM): forward noising,
 * x_0 prediction for each `prediction_type`, clipping and dynamic thresholding of x_0.
 * diffusers 0.26.3: scheduling_ddpm.py (`add_noise`, `_threshold_sample`, the "1. compute predicted
 * original sample" block of `step`).
 */
import { InvalidArgumentError } from "../errors.js";
import type { PredictionType, ThresholdingConfig } from "./config.js";
import { quantileLinear } from "./numeric.js";
import { alphaBarLevel, noiseToLevels, predictedOriginal } from "./prediction.js";
import { type F32Tensor, build } from "./tensor-ops.js";

const f32 = Math.fround;

/** Checks `t` is an integer training timestep in [0, numTrain - 1]. */
export function checkTrainTimestep(t: number, numTrain: number, name = "t"): number {
  if (!Number.isInteger(t) || t < 0 || t >= numTrain) {
    throw new InvalidArgumentError(name, `an integer timestep in [0, ${numTrain - 1}]`, t);
  }
  return t;
}

/** x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise, per batch element. */
export function addNoiseWithAlphas(
  alphasCumprod: Float32Array,
  original: F32Tensor,
  noise: F32Tensor,
  timesteps: readonly number[],
): F32Tensor {
  return noiseToLevels(original, noise, timesteps, (t) =>
    alphaBarLevel(alphasCumprod[checkTrainTimestep(t, alphasCumprod.length, "timesteps")] ?? NaN),
  );
}

/**
 * x_0 predicted from the model output at a timestep with cumulative alpha `alphaProd`:
 * epsilon: (x_t - sqrt(1 - a) eps) / sqrt(a); sample: a copy of the output;
 * v_prediction: sqrt(a) x_t - sqrt(1 - a) v.
 */
export function predictOriginalSample(
  predictionType: PredictionType,
  modelOutput: F32Tensor,
  sample: F32Tensor,
  alphaProd: number,
): F32Tensor {
  if (predictionType === "sample") return build(sample.shape, (i) => modelOutput.data[i] ?? 0);
  return predictedOriginal(predictionType, modelOutput, sample, alphaBarLevel(alphaProd));
}

/** Clamps every value to [-range, range]. */
export function clipSample(x: F32Tensor, range: number): F32Tensor {
  const r = f32(range);
  return build(x.shape, (i) => Math.min(Math.max(x.data[i] ?? 0, -r), r));
}

/**
 * Dynamic thresholding (Saharia et al. 2022, Imagen): per batch element, s = the
 * `dynamic_thresholding_ratio` quantile of |x|, clamped to [1, sample_max_value]; x = clamp(x, -s, s) / s.
 */
export function thresholdSample(x: F32Tensor, config: ThresholdingConfig): F32Tensor {
  const batch = x.shape[0] ?? 1;
  const per = x.data.length / Math.max(batch, 1);
  const limits: number[] = [];
  for (let b = 0; b < batch; b++) {
    const row = x.data.subarray(b * per, (b + 1) * per).map(Math.abs);
    const q = quantileLinear(row, config.dynamic_thresholding_ratio);
    limits.push(f32(Math.min(Math.max(q, 1), config.sample_max_value)));
  }
  return build(x.shape, (i) => {
    const s = limits[Math.floor(i / per)] ?? 1;
    return f32(Math.min(Math.max(x.data[i] ?? 0, -s), s) / s);
  });
}

/** Applies `thresholding` or else `clip_sample` to a predicted x_0, as DDPM/DDIM do. */
export function limitPredictedOriginal(
  x0: F32Tensor,
  config: ThresholdingConfig & { readonly clip_sample?: boolean; readonly clip_sample_range?: number },
): F32Tensor {
  if (config.thresholding) return thresholdSample(x0, config);
  if (config.clip_sample === true) return clipSample(x0, config.clip_sample_range ?? 1);
  return x0;
}
