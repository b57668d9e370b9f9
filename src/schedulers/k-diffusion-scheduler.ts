/**
 * The samplers diffusers ported from k-diffusion (Euler, Euler ancestral, LMS; diffusers 0.26.3
 * scheduling_euler_discrete.py and siblings) in the sigma parameterisation of Karras et al. 2022:
 * x = x_0 + sigma eps, the model sees x / sqrt(sigma^2 + 1), the initial noise is scaled by the
 * largest sigma, and `set_timesteps` interpolates the training sigmas at float32 timesteps.
 */
import { SigmaScheduler } from "./sigma-scheduler.js";
import { addNoiseWithSigmas, scaleBySigma } from "./sigma-ops.js";
import { type SigmaScheduleOptions, sigmaSchedule } from "./sigma-schedule.js";
import { eulerInitNoiseSigma } from "./sigmas.js";
import { checkNumInferenceSteps } from "./spacing.js";
import { type F32Tensor, checkFloat32 } from "./tensor-ops.js";

export type KDiffusionSchedulerName =
  "EulerDiscreteScheduler" | "EulerAncestralDiscreteScheduler" | "LMSDiscreteScheduler";

export abstract class KDiffusionScheduler<N extends KDiffusionSchedulerName> extends SigmaScheduler<N> {
  get initNoiseSigma(): number {
    return eulerInitNoiseSigma(this.sigmaValues, this.config.timestep_spacing);
  }

  setTimesteps(numInferenceSteps: number): void {
    checkNumInferenceSteps(numInferenceSteps, this.config.num_train_timesteps);
    const schedule = sigmaSchedule(this.alphasCumprod, numInferenceSteps, this.scheduleOptions());
    this.startRun(schedule.timesteps, schedule.sigmas, numInferenceSteps);
  }

  /** How this class builds its sigmas (the base: interpolated training sigmas, no Karras schedule). */
  protected scheduleOptions(): SigmaScheduleOptions {
    const c = this.config;
    return { spacing: c.timestep_spacing, stepsOffset: c.steps_offset, useKarrasSigmas: false };
  }

  scaleModelInput(sample: F32Tensor, t: number): F32Tensor {
    return scaleBySigma(checkFloat32(sample, "sample"), this.sigmaAt(this.currentIndex(t)));
  }

  addNoise(original: F32Tensor, noise: F32Tensor, timesteps: readonly number[]): F32Tensor {
    return addNoiseWithSigmas(this.steps, this.sigmaValues, original, noise, timesteps);
  }
}
