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
import type { EulerAncestralDiscreteSchedulerConfig } from "./config.js";
import { KDiffusionScheduler } from "./k-diffusion-scheduler.js";
import type { StepOptions, StepOutput } from "./scheduler.js";
import { predictOriginalFromSigma } from "./sigma-ops.js";
import { type F32Tensor, build, checkStepTensors, drawNoise } from "./tensor-ops.js";

const f32 = Math.fround;

export class EulerAncestralDiscreteScheduler extends KDiffusionScheduler<"EulerAncestralDiscreteScheduler"> {
  /** Builds from (part of) a config; missing fields take this class's diffusers defaults. */
  constructor(config: Partial<EulerAncestralDiscreteSchedulerConfig> = {}) {
    super("EulerAncestralDiscreteScheduler", config);
  }

  step(modelOutputIn: F32Tensor, t: number, sampleIn: F32Tensor, options: StepOptions = {}): StepOutput {
    const { modelOutput, sample } = checkStepTensors(modelOutputIn, sampleIn);
    const index = this.stepIndexFor(t);
    const sigma = this.sigmaAt(index);
    const sigmaTo = this.sigmaAt(index + 1);
    const x = sample.data;
    const x0 = predictOriginalFromSigma(this.config.prediction_type, modelOutput, sample, sigma);
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
    this.advancePast(index);
    return { prevSample, predOriginalSample: x0 };
  }
}
