/**
 * EulerAncestralDiscreteScheduler: ancestral sampling with Euler steps (k-diffusion's
 * `sample_euler_ancestral`). Port of diffusers 0.26.3
 * src/diffusers/schedulers/scheduling_euler_ancestral_discrete.py.
 *
 * From sigma to sigma_next:
 *   sigma_up = sqrt(sigma_next^2 (sigma^2 - sigma_next^2) / sigma^2), sigma_down = sqrt(sigma_next^2 - sigma_up^2)
 *   x_0 = x - sigma eps (epsilon) | -sigma / sqrt(sigma^2+1) v + x / (sigma^2+1) (v_prediction)
 *   x_next = x + (x - x_0) / sigma * (sigma_down - sigma) + sigma_up z,  z ~ N(0, I) from the generator
 * Every step draws noise, so `step` needs `options.generator`.
 * State (reset by setTimesteps): the step index.
 */
import { InvalidArgumentError } from "../errors.js";
import { makeNoiseTables } from "./betas.js";
import {
  CONSTRUCTOR_PARSE,
  type EulerAncestralDiscreteSchedulerConfig,
  parseSchedulerConfig,
} from "./config.js";
import type { Scheduler, StepOptions, StepOutput } from "./scheduler.js";
import { addNoiseWithSigmas, requireSchedule, scaleBySigma } from "./sigma-ops.js";
import { sigmaSchedule } from "./sigma-schedule.js";
import { eulerInitNoiseSigma, initialStepIndex } from "./sigmas.js";
import { checkNumInferenceSteps } from "./spacing.js";
import { type F32Tensor, build, checkFloat32, checkSameShape, drawNoise } from "./tensor-ops.js";

const f32 = Math.fround;

export class EulerAncestralDiscreteScheduler implements Scheduler {
  readonly className = "EulerAncestralDiscreteScheduler";
  readonly order = 1;
  readonly config: EulerAncestralDiscreteSchedulerConfig;
  readonly betas: Float32Array;
  readonly alphasCumprod: Float32Array;
  private steps: number[] = [];
  private sigmaValues: Float32Array = new Float32Array(0);
  private inferenceSteps: number | undefined;
  private stepIndex: number | undefined;

  /** Builds from (part of) a config; missing fields take this class's diffusers defaults. */
  constructor(config: Partial<EulerAncestralDiscreteSchedulerConfig> = {}) {
    this.config = parseSchedulerConfig("EulerAncestralDiscreteScheduler", config, CONSTRUCTOR_PARSE).config;
    const tables = makeNoiseTables(this.config);
    this.betas = tables.betas;
    const acp = tables.alphasCumprod;
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
      useKarrasSigmas: false,
    });
    this.steps = schedule.timesteps;
    this.sigmaValues = schedule.sigmas;
    this.inferenceSteps = numInferenceSteps;
    this.stepIndex = undefined;
  }

  private currentIndex(t: number): number {
    requireSchedule(this.steps);
    this.stepIndex ??= initialStepIndex(this.steps, t);
    return this.stepIndex;
  }

  scaleModelInput(sample: F32Tensor, t: number): F32Tensor {
    return scaleBySigma(checkFloat32(sample, "sample"), this.sigmaValues[this.currentIndex(t)] ?? NaN);
  }

  step(modelOutputIn: F32Tensor, t: number, sampleIn: F32Tensor, options: StepOptions = {}): StepOutput {
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
    const sigmaTo = this.sigmaValues[index + 1] ?? NaN;
    const x = sample.data;
    const m = modelOutput.data;
    let x0: F32Tensor;
    if (this.config.prediction_type === "epsilon") {
      x0 = build(sample.shape, (i) => f32((x[i] ?? 0) - f32(sigma * (m[i] ?? 0))));
    } else {
      const c1 = f32(-sigma / f32(Math.sqrt(f32(f32(sigma * sigma) + 1))));
      const c2 = f32(f32(sigma * sigma) + 1);
      x0 = build(sample.shape, (i) => f32(f32((m[i] ?? 0) * c1) + f32((x[i] ?? 0) / c2)));
    }
    const to2 = f32(sigmaTo * sigmaTo);
    const from2 = f32(sigma * sigma);
    const sigmaUp = f32(Math.sqrt(f32(f32(to2 * f32(from2 - to2)) / from2)));
    const sigmaDown = f32(Math.sqrt(f32(to2 - f32(sigmaUp * sigmaUp))));
    const dt = f32(sigmaDown - sigma);
    const noise = drawNoise(options.generator, modelOutput.shape, "EulerAncestralDiscreteScheduler");
    const prevSample = build(sample.shape, (i) => {
      const derivative = f32(f32((x[i] ?? 0) - (x0.data[i] ?? 0)) / sigma);
      const moved = f32((x[i] ?? 0) + f32(derivative * dt));
      return f32(moved + f32((noise.data[i] ?? 0) * sigmaUp));
    });
    this.stepIndex = index + 1;
    return { prevSample, predOriginalSample: x0 };
  }

  addNoise(original: F32Tensor, noise: F32Tensor, timesteps: readonly number[]): F32Tensor {
    return addNoiseWithSigmas(this.steps, this.sigmaValues, original, noise, timesteps);
  }
}
