/**
 * The alpha_bar-parameterised schedulers (DDPM, DDIM, PNDM, DDIM inverse, LCM; diffusers 0.26.3
 * scheduling_ddpm.py, scheduling_ddim.py, scheduling_pndm.py, scheduling_ddim_inverse.py,
 * scheduling_lcm.py): integer timesteps, the model input is the sample itself, the initial noise has
 * unit variance and x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise.
 */
import { InvalidArgumentError } from "../errors.js";
import { addNoiseWithAlphas } from "./alpha-ops.js";
import type { SchedulerConfigMap } from "./config.js";
import { SchedulerBase } from "./scheduler-base.js";
import { checkNumInferenceSteps, discreteTimesteps } from "./spacing.js";
import type { F32Tensor } from "./tensor-ops.js";

export type AlphaBarSchedulerName =
  "DDPMScheduler" | "DDIMScheduler" | "PNDMScheduler" | "DDIMInverseScheduler" | "LCMScheduler";

export abstract class AlphaBarScheduler<N extends AlphaBarSchedulerName> extends SchedulerBase<N> {
  readonly initNoiseSigma = 1;
  /**
   * alpha_bar used as "previous" at the last step (t' < 0): 1 with `set_alpha_to_one` (always for
   * DDPM), else alpha_bar_0.
   */
  readonly finalAlphaCumprod: number;

  protected constructor(className: N, config: Partial<SchedulerConfigMap[N]>) {
    super(className, config);
    const c = this.config;
    const toOne = "set_alpha_to_one" in c ? c.set_alpha_to_one !== false : true;
    this.finalAlphaCumprod = toOne ? 1 : (this.alphasCumprod[0] ?? 1);
  }

  setTimesteps(numInferenceSteps: number): void {
    this.steps = this.spacedTimesteps(numInferenceSteps);
    this.inferenceSteps = numInferenceSteps;
  }

  /** The run's integer timesteps (descending) for the configured spacing, after checking N. */
  protected spacedTimesteps(numInferenceSteps: number): number[] {
    const c = this.config;
    checkNumInferenceSteps(numInferenceSteps, c.num_train_timesteps);
    return discreteTimesteps(c.timestep_spacing, c.num_train_timesteps, numInferenceSteps, c.steps_offset);
  }

  scaleModelInput(sample: F32Tensor): F32Tensor {
    return sample;
  }

  addNoise(original: F32Tensor, noise: F32Tensor, timesteps: readonly number[]): F32Tensor {
    return addNoiseWithAlphas(this.alphasCumprod, original, noise, timesteps);
  }

  /** alpha_bar at timestep t, or `finalAlphaCumprod` for t < 0 (past the last training timestep). */
  protected alphaProdAt(t: number): number {
    return t >= 0 ? (this.alphasCumprod[t] ?? NaN) : this.finalAlphaCumprod;
  }

  /** The step size T // N between the run's timesteps. */
  protected stepRatio(numInferenceSteps: number): number {
    return Math.floor(this.config.num_train_timesteps / numInferenceSteps);
  }

  /** N of the current run; throws before the first setTimesteps (the step needs the spacing). */
  protected requireInferenceSteps(): number {
    if (this.inferenceSteps === undefined) {
      throw new InvalidArgumentError(
        "numInferenceSteps",
        "a number set by setTimesteps() before step()",
        undefined,
        { hint: "call scheduler.setTimesteps(n) first" },
      );
    }
    return this.inferenceSteps;
  }
}
