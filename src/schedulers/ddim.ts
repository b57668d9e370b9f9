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
import {
  addNoiseWithAlphas,
  checkTrainTimestep,
  limitPredictedOriginal,
  predictOriginalSample,
} from "./alpha-ops.js";
import { makeNoiseTables } from "./betas.js";
import { CONSTRUCTOR_PARSE, type DDIMSchedulerConfig, parseSchedulerConfig } from "./config.js";
import type { Scheduler, StepOptions, StepOutput } from "./scheduler.js";
import { checkNumInferenceSteps, discreteTimesteps } from "./spacing.js";
import { type F32Tensor, build, checkFloat32, checkSameShape, drawNoise } from "./tensor-ops.js";

const f32 = Math.fround;

export interface DDIMStepOptions extends StepOptions {
  /** (optional, default 0) weight of the added noise: 0 = deterministic DDIM, 1 = DDPM-like. */
  readonly eta?: number;
  /** (optional, default false) recompute eps from the clipped x_0 (GLIDE). */
  readonly useClippedModelOutput?: boolean;
  /** (optional) the noise z to add when eta > 0, instead of drawing it from `generator`. */
  readonly varianceNoise?: F32Tensor;
}

export class DDIMScheduler implements Scheduler {
  readonly className = "DDIMScheduler";
  readonly order = 1;
  readonly initNoiseSigma = 1;
  readonly config: DDIMSchedulerConfig;
  readonly betas: Float32Array;
  readonly alphasCumprod: Float32Array;
  /** alpha_bar used as "previous" at the last step: 1 with set_alpha_to_one, else alpha_bar_0. */
  readonly finalAlphaCumprod: number;
  private steps: number[] = [];
  private inferenceSteps: number | undefined;

  /** Builds from (part of) a config; missing fields take DDIMScheduler's diffusers defaults. */
  constructor(config: Partial<DDIMSchedulerConfig> = {}) {
    this.config = parseSchedulerConfig("DDIMScheduler", config, CONSTRUCTOR_PARSE).config;
    const tables = makeNoiseTables(this.config);
    this.betas = tables.betas;
    this.alphasCumprod = tables.alphasCumprod;
    this.finalAlphaCumprod = this.config.set_alpha_to_one ? 1 : (this.alphasCumprod[0] ?? 1);
  }

  get timesteps(): readonly number[] {
    return this.steps;
  }

  get numInferenceSteps(): number | undefined {
    return this.inferenceSteps;
  }

  setTimesteps(numInferenceSteps: number): void {
    const c = this.config;
    checkNumInferenceSteps(numInferenceSteps, c.num_train_timesteps);
    this.steps = discreteTimesteps(
      c.timestep_spacing,
      c.num_train_timesteps,
      numInferenceSteps,
      c.steps_offset,
    );
    this.inferenceSteps = numInferenceSteps;
  }

  scaleModelInput(sample: F32Tensor): F32Tensor {
    return sample;
  }

  step(modelOutputIn: F32Tensor, t: number, sampleIn: F32Tensor, options: DDIMStepOptions = {}): StepOutput {
    const c = this.config;
    const n = this.inferenceSteps;
    if (n === undefined) {
      throw new InvalidArgumentError(
        "numInferenceSteps",
        "a number set by setTimesteps() before step()",
        undefined,
        {
          hint: "call scheduler.setTimesteps(n) first",
        },
      );
    }
    const sample = checkFloat32(sampleIn, "sample");
    const modelOutput = checkFloat32(modelOutputIn, "modelOutput");
    checkSameShape(sample, modelOutput, "sample", "modelOutput");
    checkTrainTimestep(t, c.num_train_timesteps);
    const eta = options.eta ?? 0;
    if (!Number.isFinite(eta) || eta < 0) throw new InvalidArgumentError("options.eta", "a number >= 0", eta);
    if (options.varianceNoise !== undefined && options.generator !== undefined) {
      throw new InvalidArgumentError("options", "either varianceNoise or generator, not both", "both");
    }

    const prevT = t - Math.floor(c.num_train_timesteps / n);
    const a = this.alphasCumprod[t] ?? NaN;
    const aPrev = prevT >= 0 ? (this.alphasCumprod[prevT] ?? NaN) : this.finalAlphaCumprod;
    const betaProd = f32(1 - a);
    const sa = f32(Math.sqrt(a));
    const sb = f32(Math.sqrt(betaProd));
    const m = modelOutput.data;
    const x = sample.data;

    let x0 = predictOriginalSample(c.prediction_type, modelOutput, sample, a);
    let eps: F32Tensor;
    if (c.prediction_type === "epsilon") eps = modelOutput;
    else if (c.prediction_type === "sample")
      eps = build(x0.shape, (i) => f32(f32((x[i] ?? 0) - f32(sa * (x0.data[i] ?? 0))) / sb));
    else eps = build(x0.shape, (i) => f32(f32(sa * (m[i] ?? 0)) + f32(sb * (x[i] ?? 0))));
    x0 = limitPredictedOriginal(x0, c);

    const variance = f32(f32(f32(1 - aPrev) / betaProd) * f32(1 - f32(a / aPrev)));
    const std = f32(eta * f32(Math.sqrt(variance)));
    if (options.useClippedModelOutput === true) {
      const clipped = x0;
      eps = build(x0.shape, (i) => f32(f32((x[i] ?? 0) - f32(sa * (clipped.data[i] ?? 0))) / sb));
    }
    const dirCoef = f32(Math.sqrt(f32(f32(1 - aPrev) - f32(std * std))));
    const x0Coef = f32(Math.sqrt(aPrev));
    const epsFinal = eps;
    const x0Final = x0;
    let prev = build(sample.shape, (i) =>
      f32(f32(x0Coef * (x0Final.data[i] ?? 0)) + f32(dirCoef * (epsFinal.data[i] ?? 0))),
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
    return { prevSample: prev, predOriginalSample: x0Final };
  }

  addNoise(original: F32Tensor, noise: F32Tensor, timesteps: readonly number[]): F32Tensor {
    return addNoiseWithAlphas(this.alphasCumprod, original, noise, timesteps);
  }
}
