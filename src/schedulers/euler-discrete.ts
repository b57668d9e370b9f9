/**
 * EulerDiscreteScheduler: Euler's method on the probability-flow ODE in the sigma parameterisation of
 * Karras et al. 2022 ("Elucidating the Design Space of Diffusion-Based Generative Models", Algorithm
 * 2, with optional churn). Port of diffusers 0.26.3 src/diffusers/schedulers/scheduling_euler_discrete.py.
 *
 *   model input = x / sqrt(sigma^2 + 1)
 *   sigma_hat = sigma (1 + gamma), gamma = min(s_churn / (N), sqrt(2) - 1) inside [s_tmin, s_tmax]
 *   x_0 = x - sigma_hat eps (epsilon) | -sigma / sqrt(sigma^2+1) v + x / (sigma^2+1) (v_prediction) | out (sample)
 *   x_next = x + (x - x_0) / sigma_hat * (sigma_next - sigma_hat)
 * State (reset by setTimesteps): the step index, set from the first timestep seen by
 * scaleModelInput / step and advanced by every step.
 */
import { InvalidArgumentError } from "../errors.js";
import { makeNoiseTables } from "./betas.js";
import { CONSTRUCTOR_PARSE, type EulerDiscreteSchedulerConfig, parseSchedulerConfig } from "./config.js";
import type { Scheduler, StepOptions, StepOutput } from "./scheduler.js";
import { sigmaSchedule } from "./sigma-schedule.js";
import { addNoiseWithSigmas, requireSchedule, scaleBySigma } from "./sigma-ops.js";
import { eulerInitNoiseSigma, initialStepIndex } from "./sigmas.js";
import { checkNumInferenceSteps } from "./spacing.js";
import { type F32Tensor, build, checkFloat32, checkSameShape, drawNoise } from "./tensor-ops.js";

const f32 = Math.fround;

export interface EulerStepOptions extends StepOptions {
  /** (optional, default 0) stochasticity ("churn"); > 0 needs `generator`. */
  readonly sChurn?: number;
  /** (optional, default 0) churn only where sigma >= sTmin. */
  readonly sTmin?: number;
  /** (optional, default Infinity) churn only where sigma <= sTmax. */
  readonly sTmax?: number;
  /** (optional, default 1) scale of the churn noise. */
  readonly sNoise?: number;
}

export class EulerDiscreteScheduler implements Scheduler {
  readonly className = "EulerDiscreteScheduler";
  readonly order = 1;
  readonly config: EulerDiscreteSchedulerConfig;
  readonly betas: Float32Array;
  readonly alphasCumprod: Float32Array;
  private steps: number[] = [];
  private sigmaValues: Float32Array = new Float32Array(0);
  private inferenceSteps: number | undefined;
  private stepIndex: number | undefined;

  /** Builds from (part of) a config; missing fields take EulerDiscreteScheduler's diffusers defaults. */
  constructor(config: Partial<EulerDiscreteSchedulerConfig> = {}) {
    this.config = parseSchedulerConfig("EulerDiscreteScheduler", config, CONSTRUCTOR_PARSE).config;
    const tables = makeNoiseTables(this.config);
    this.betas = tables.betas;
    const acp = tables.alphasCumprod;
    // diffusers: with zero terminal SNR the last alpha_bar is 2^-24 so sigma stays finite.
    if (this.config.rescale_betas_zero_snr) acp[acp.length - 1] = 2 ** -24;
    this.alphasCumprod = acp;
  }

  get timesteps(): readonly number[] {
    return this.steps;
  }

  /** float32 sigmas of the run: one per timestep plus a final 0. */
  get sigmas(): Float32Array {
    return this.sigmaValues;
  }

  get numInferenceSteps(): number | undefined {
    return this.inferenceSteps;
  }

  get initNoiseSigma(): number {
    return eulerInitNoiseSigma(this.sigmaValues, this.config.timestep_spacing);
  }

  setTimesteps(numInferenceSteps: number): void {
    const c = this.config;
    checkNumInferenceSteps(numInferenceSteps, c.num_train_timesteps);
    const schedule = sigmaSchedule(this.alphasCumprod, numInferenceSteps, {
      spacing: c.timestep_spacing,
      stepsOffset: c.steps_offset,
      useKarrasSigmas: c.use_karras_sigmas,
      interpolationType: c.interpolation_type,
      sigmaMin: c.sigma_min,
      sigmaMax: c.sigma_max,
    });
    this.sigmaValues = schedule.sigmas;
    this.steps =
      c.timestep_type === "continuous" && c.prediction_type === "v_prediction"
        ? Array.from(schedule.sigmas.subarray(0, -1), (s) => f32(0.25 * f32(Math.log(s))))
        : schedule.timesteps;
    this.inferenceSteps = numInferenceSteps;
    this.stepIndex = undefined;
  }

  private currentIndex(t: number): number {
    requireSchedule(this.steps);
    this.stepIndex ??= initialStepIndex(this.steps, t);
    return this.stepIndex;
  }

  scaleModelInput(sample: F32Tensor, t: number): F32Tensor {
    const sigma = this.sigmaValues[this.currentIndex(t)] ?? NaN;
    return scaleBySigma(checkFloat32(sample, "sample"), sigma);
  }

  step(modelOutputIn: F32Tensor, t: number, sampleIn: F32Tensor, options: EulerStepOptions = {}): StepOutput {
    const sample = checkFloat32(sampleIn, "sample");
    const modelOutput = checkFloat32(modelOutputIn, "modelOutput");
    checkSameShape(sample, modelOutput, "sample", "modelOutput");
    const index = this.currentIndex(t);
    if (index + 1 >= this.sigmaValues.length) {
      throw new InvalidArgumentError("t", "a timestep not yet stepped past in this run", t, {
        hint: "call setTimesteps(n) to start a new run",
      });
    }
    const sigma = this.sigmaValues[index] ?? NaN;
    const sigmaNext = this.sigmaValues[index + 1] ?? NaN;
    const sChurn = options.sChurn ?? 0;
    const inRange = (options.sTmin ?? 0) <= sigma && sigma <= (options.sTmax ?? Infinity);
    const gamma = inRange ? Math.min(sChurn / (this.sigmaValues.length - 1), Math.SQRT2 - 1) : 0;
    // diffusers draws this noise on every step (even unused); we draw when a generator is given,
    // so a shared generator's stream stays in step with diffusers.
    const noise =
      gamma > 0 || options.generator !== undefined
        ? drawNoise(options.generator, modelOutput.shape, "EulerDiscreteScheduler")
        : undefined;
    const sigmaHat = f32(sigma * f32(gamma + 1));
    let x = sample.data;
    if (gamma > 0 && noise !== undefined) {
      const sNoise = f32(options.sNoise ?? 1);
      const k = f32(Math.sqrt(f32(f32(sigmaHat * sigmaHat) - f32(sigma * sigma))));
      const src = x;
      x = build(sample.shape, (i) => f32((src[i] ?? 0) + f32(f32((noise.data[i] ?? 0) * sNoise) * k))).data;
    }
    const m = modelOutput.data;
    const xs = x;
    let x0: F32Tensor;
    if (this.config.prediction_type === "sample") {
      x0 = modelOutput;
    } else if (this.config.prediction_type === "epsilon") {
      x0 = build(sample.shape, (i) => f32((xs[i] ?? 0) - f32(sigmaHat * (m[i] ?? 0))));
    } else {
      const c1 = f32(-sigma / f32(Math.sqrt(f32(f32(sigma * sigma) + 1))));
      const c2 = f32(f32(sigma * sigma) + 1);
      x0 = build(sample.shape, (i) => f32(f32((m[i] ?? 0) * c1) + f32((xs[i] ?? 0) / c2)));
    }
    const dt = f32(sigmaNext - sigmaHat);
    const prevSample = build(sample.shape, (i) => {
      const derivative = f32(f32((xs[i] ?? 0) - (x0.data[i] ?? 0)) / sigmaHat);
      return f32((xs[i] ?? 0) + f32(derivative * dt));
    });
    this.stepIndex = index + 1;
    return { prevSample, predOriginalSample: x0 };
  }

  addNoise(original: F32Tensor, noise: F32Tensor, timesteps: readonly number[]): F32Tensor {
    return addNoiseWithSigmas(this.steps, this.sigmaValues, original, noise, timesteps);
  }
}
