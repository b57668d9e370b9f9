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
import type { EulerDiscreteSchedulerConfig } from "./config.js";
import { KDiffusionScheduler } from "./k-diffusion-scheduler.js";
import type { StepOptions, StepOutput } from "./scheduler.js";
import { predictOriginalFromSigma } from "./sigma-ops.js";
import type { SigmaScheduleOptions } from "./sigma-schedule.js";
import { type F32Tensor, build, checkStepTensors, drawNoise } from "./tensor-ops.js";

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

export class EulerDiscreteScheduler extends KDiffusionScheduler<"EulerDiscreteScheduler"> {
  /** Builds from (part of) a config; missing fields take EulerDiscreteScheduler's diffusers defaults. */
  constructor(config: Partial<EulerDiscreteSchedulerConfig> = {}) {
    super("EulerDiscreteScheduler", config);
  }

  protected override scheduleOptions(): SigmaScheduleOptions {
    const c = this.config;
    return {
      ...super.scheduleOptions(),
      useKarrasSigmas: c.use_karras_sigmas,
      interpolationType: c.interpolation_type,
      sigmaMin: c.sigma_min,
      sigmaMax: c.sigma_max,
    };
  }

  /** As the base, but "continuous" v-prediction models get 0.25 log(sigma) as their timesteps. */
  override setTimesteps(numInferenceSteps: number): void {
    super.setTimesteps(numInferenceSteps);
    const c = this.config;
    if (c.timestep_type === "continuous" && c.prediction_type === "v_prediction") {
      this.steps = Array.from(this.sigmaValues.subarray(0, -1), (s) => f32(0.25 * f32(Math.log(s))));
    }
  }

  step(modelOutputIn: F32Tensor, t: number, sampleIn: F32Tensor, options: EulerStepOptions = {}): StepOutput {
    const { modelOutput, sample } = checkStepTensors(modelOutputIn, sampleIn);
    const index = this.stepIndexFor(t);
    const sigma = this.sigmaAt(index);
    const sigmaNext = this.sigmaAt(index + 1);
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
    let churned = sample;
    if (gamma > 0 && noise !== undefined) {
      const sNoise = f32(options.sNoise ?? 1);
      const k = f32(Math.sqrt(f32(f32(sigmaHat * sigmaHat) - f32(sigma * sigma))));
      churned = build(sample.shape, (i) =>
        f32((sample.data[i] ?? 0) + f32(f32((noise.data[i] ?? 0) * sNoise) * k)),
      );
    }
    const x = churned.data;
    const x0 = predictOriginalFromSigma(this.config.prediction_type, modelOutput, churned, sigma, sigmaHat);
    const dt = f32(sigmaNext - sigmaHat);
    const prevSample = build(sample.shape, (i) => {
      const derivative = f32(f32((x[i] ?? 0) - (x0.data[i] ?? 0)) / sigmaHat);
      return f32((x[i] ?? 0) + f32(derivative * dt));
    });
    this.advancePast(index);
    return { prevSample, predOriginalSample: x0 };
  }
}
