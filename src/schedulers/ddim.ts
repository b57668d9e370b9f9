/**
 * DDIMScheduler: Song et al. 2021, "Denoising Diffusion Implicit Models", eq. (12). Port of diffusers
 * 0.26.3 src/diffusers/schedulers/scheduling_ddim.py.
 *
 * Step from t to t' = t - T // N (a = alpha_bar; a_{t'} = final_alpha_cumprod when t' < 0, which is 1
 * with `set_alpha_to_one` and alpha_bar_0 otherwise):
 *   x_0 from the model output (prediction_type), clipped or thresholded; eps from the model output
 *   sigma_t = eta sqrt((1 - a_{t'}) / (1 - a_t)) sqrt(1 - a_t / a_{t'})
 *   x_{t'} = sqrt(a_{t'}) x_0 + sqrt(1 - a_{t'} - sigma_t^2) eps + sigma_t z   (z only for eta > 0)
 * State: none besides the timesteps.
 */
import { InvalidArgumentError } from "../errors.js";
import { AlphaBarScheduler } from "./alpha-bar-scheduler.js";
import { checkTrainTimestep, limitPredictedOriginal, predictOriginalSample } from "./alpha-ops.js";
import type { DDIMSchedulerConfig } from "./config.js";
import { alphaBarLevel, epsilonFromX0, predictedEpsilon } from "./prediction.js";
import type { StepOptions, StepOutput } from "./scheduler.js";
import {
  type F32Tensor,
  build,
  checkFloat32,
  checkSameShape,
  checkStepTensors,
  drawNoise,
} from "./tensor-ops.js";

const f32 = Math.fround;

export interface DDIMStepOptions extends StepOptions {
  /** (optional, default 0) weight of the added noise: 0 = deterministic DDIM, 1 = DDPM-like. */
  readonly eta?: number;
  /** (optional, default false) recompute eps from the clipped x_0 (GLIDE). */
  readonly useClippedModelOutput?: boolean;
  /** (optional) the noise z to add when eta > 0, instead of drawing it from `generator`. */
  readonly varianceNoise?: F32Tensor;
}

export class DDIMScheduler extends AlphaBarScheduler<"DDIMScheduler"> {
  /** Builds from (part of) a config; missing fields take DDIMScheduler's diffusers defaults. */
  constructor(config: Partial<DDIMSchedulerConfig> = {}) {
    super("DDIMScheduler", config);
  }

  step(modelOutputIn: F32Tensor, t: number, sampleIn: F32Tensor, options: DDIMStepOptions = {}): StepOutput {
    const c = this.config;
    const n = this.requireInferenceSteps();
    const { modelOutput, sample } = checkStepTensors(modelOutputIn, sampleIn);
    checkTrainTimestep(t, c.num_train_timesteps);
    const eta = options.eta ?? 0;
    if (!Number.isFinite(eta) || eta < 0) throw new InvalidArgumentError("options.eta", "a number >= 0", eta);
    if (options.varianceNoise !== undefined && options.generator !== undefined) {
      throw new InvalidArgumentError("options", "either varianceNoise or generator, not both", "both");
    }

    const a = this.alphaProdAt(t);
    const aPrev = this.alphaProdAt(t - this.stepRatio(n));
    const level = alphaBarLevel(a);
    const betaProd = f32(1 - a);

    const x0 = limitPredictedOriginal(predictOriginalSample(c.prediction_type, modelOutput, sample, a), c);
    const eps =
      options.useClippedModelOutput === true
        ? epsilonFromX0(sample, x0, level)
        : predictedEpsilon(c.prediction_type, modelOutput, sample, level);
    const variance = f32(f32(f32(1 - aPrev) / betaProd) * f32(1 - f32(a / aPrev)));
    const std = f32(eta * f32(Math.sqrt(variance)));
    const dirCoef = f32(Math.sqrt(f32(f32(1 - aPrev) - f32(std * std))));
    const x0Coef = f32(Math.sqrt(aPrev));
    let prev = build(sample.shape, (i) =>
      f32(f32(x0Coef * (x0.data[i] ?? 0)) + f32(dirCoef * (eps.data[i] ?? 0))),
    );
    if (eta > 0) {
      const z =
        options.varianceNoise !== undefined
          ? checkFloat32(options.varianceNoise, "options.varianceNoise")
          : drawNoise(options.generator, modelOutput.shape, "DDIMScheduler (eta > 0)");
      checkSameShape(sample, z, "sample", "options.varianceNoise");
      const base = prev;
      prev = build(sample.shape, (i) => f32((base.data[i] ?? 0) + f32(std * (z.data[i] ?? 0))));
    }
    return { prevSample: prev, predOriginalSample: x0 };
  }
}
