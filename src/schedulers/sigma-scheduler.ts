/**
 * The sigma-parameterised schedulers (Euler, Euler ancestral, LMS, DPM-Solver, UniPC; diffusers 0.26.3):
 * a run is a list of timesteps with one float32 noise level sigma each plus a final one, and the
 * scheduler keeps diffusers' hidden `_step_index` into it, found from the first timestep it is given
 * and advanced by every step.
 */
import { InvalidArgumentError } from "../errors.js";
import type { SchedulerConfigMap } from "./config.js";
import { SchedulerBase } from "./scheduler-base.js";
import { requireSchedule } from "./sigma-ops.js";
import { sigmaToAlphaSigma } from "./dpm-solver-updates.js";
import { noiseToLevels } from "./prediction.js";
import { initialStepIndex } from "./sigmas.js";
import type { F32Tensor } from "./tensor-ops.js";

export type SigmaSchedulerName =
  | "EulerDiscreteScheduler"
  | "EulerAncestralDiscreteScheduler"
  | "LMSDiscreteScheduler"
  | "DPMSolverMultistepScheduler"
  | "UniPCMultistepScheduler";

export abstract class SigmaScheduler<N extends SigmaSchedulerName> extends SchedulerBase<N> {
  protected sigmaValues: Float32Array = new Float32Array(0);
  private stepIndex: number | undefined;

  protected constructor(className: N, config: Partial<SchedulerConfigMap[N]>) {
    super(className, config);
    // diffusers (Euler, Euler ancestral): with zero terminal SNR the last alpha_bar is 2^-24, so that
    // sigma stays finite.
    const c = this.config;
    if ("rescale_betas_zero_snr" in c && c.rescale_betas_zero_snr === true) {
      this.alphasCumprod[this.alphasCumprod.length - 1] = 2 ** -24;
    }
  }

  /** float32 sigmas of the run: one per timestep plus the final one. */
  get sigmas(): Float32Array {
    return this.sigmaValues;
  }

  /** Starts a run: its timesteps, their sigmas and N; the step index is found again at the next call. */
  protected startRun(timesteps: number[], sigmas: Float32Array, numInferenceSteps: number): void {
    this.steps = timesteps;
    this.sigmaValues = sigmas;
    this.inferenceSteps = numInferenceSteps;
    this.stepIndex = undefined;
  }

  protected sigmaAt(index: number): number {
    return this.sigmaValues[index] ?? NaN;
  }

  /**
   * The index of the current step: at the first call of a run, the index of `t` in the timesteps
   * (diffusers `_init_step_index`; `missing` says what to do when `t` is not one of them).
   */
  protected currentIndex(t: number, missing: "throw" | "last" = "throw"): number {
    requireSchedule(this.steps);
    this.stepIndex ??= initialStepIndex(this.steps, t, missing);
    return this.stepIndex;
  }

  /** `currentIndex` for a step, which needs a next sigma to step to. */
  protected stepIndexFor(t: number, missing: "throw" | "last" = "throw"): number {
    const index = this.currentIndex(t, missing);
    if (index + 1 >= this.sigmaValues.length) {
      throw new InvalidArgumentError("t", "a timestep not yet stepped past in this run", t, {
        hint: "call setTimesteps(n) to start a new run",
      });
    }
    return index;
  }

  /**
   * Variance-preserving forward noising at the run's levels (DPM-Solver, UniPC `add_noise`):
   * x_t = alpha_t x_0 + sigma_t noise with alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma alpha_t,
   * sigma looked up by timestep (the last one for a timestep not in the run).
   */
  protected noiseAtRunLevels(original: F32Tensor, noise: F32Tensor, timesteps: readonly number[]): F32Tensor {
    requireSchedule(this.steps);
    return noiseToLevels(original, noise, timesteps, (t) =>
      sigmaToAlphaSigma(this.sigmaAt(initialStepIndex(this.steps, t, "last"))),
    );
  }

  /** Ends the step at `index`: the next call works on the following timestep. */
  protected advancePast(index: number): void {
    this.stepIndex = index + 1;
  }
}
