/**
 * LCMScheduler: multistep sampling of Latent Consistency Models (Luo et al. 2023, "Latent Consistency
 * Models", Algorithm 3). Port of diffusers 0.26.3 src/diffusers/schedulers/scheduling_lcm.py.
 *
 * Timesteps: the distillation grid [1 .. int(original * strength)] * (T // original) - 1, reversed
 * (T = 1000, original = 50: 999, 979, ..., 19), then indexed at floor(linspace(0, len, N,
 * endpoint=False)); or custom descending timesteps. `timestep_spacing` and `steps_offset` are unused.
 * Step at t (a = alpha_bar; t' = the next entry of the run's timesteps, a_{t'} = final_alpha_cumprod
 * when t' < 0):
 *   x_0 from the model output (prediction_type), clipped or thresholded
 *   c_skip = s^2 / ((k t)^2 + s^2), c_out = k t / sqrt((k t)^2 + s^2)   (s = 0.5, k = timestep_scaling)
 *   denoised = c_out x_0 + c_skip x_t
 *   x_{t'} = sqrt(a_{t'}) denoised + sqrt(1 - a_{t'}) z   (z ~ N(0, I)); the last step returns denoised
 * State (reset by setTimesteps): the step index, found from the first timestep given to `step` (the
 * second match when a value repeats) and advanced by every step.
 */
import { InvalidArgumentError } from "../errors.js";
import { AlphaBarScheduler } from "./alpha-bar-scheduler.js";
import { checkTrainTimestep, limitPredictedOriginal, predictOriginalSample } from "./alpha-ops.js";
import type { LCMSchedulerConfig } from "./config.js";
import type { StepOptions, StepOutput } from "./scheduler.js";
import { initialStepIndex } from "./sigmas.js";
import { type F32Tensor, build, checkStepTensors, drawNoise } from "./tensor-ops.js";

const f32 = Math.fround;

/** sigma_data of the consistency-model boundary conditions (diffusers: 0.5). */
export const LCM_SIGMA_DATA = 0.5;

/** The keyword arguments of diffusers' `LCMScheduler.set_timesteps` besides num_inference_steps. */
export interface LCMSetTimestepsOptions {
  /** (optional, default config original_inference_steps) size of the distillation grid. */
  readonly originalInferenceSteps?: number;
  /**
   * (optional) custom timesteps, strictly descending integers in [0, T - 1]; then
   * numInferenceSteps must be undefined (diffusers: exactly one of the two).
   */
  readonly timesteps?: readonly number[];
  /** (optional, default 1) img2img strength in (0, 1]: the grid keeps int(original * strength) entries. */
  readonly strength?: number;
}

/** c_skip and c_out of the boundary conditions at integer timestep t, as float32 torch computes them. */
export function lcmBoundaryScalings(t: number, timestepScaling: number): { cSkip: number; cOut: number } {
  const scaled = f32(f32(t) * f32(timestepScaling));
  const sigma2 = f32(LCM_SIGMA_DATA * LCM_SIGMA_DATA);
  const denom = f32(f32(scaled * scaled) + sigma2);
  // sigma_data**2 / tensor is torch's __rtruediv__: reciprocal(), then the product.
  return { cSkip: f32(f32(1 / denom) * sigma2), cOut: f32(scaled / f32(Math.sqrt(denom))) };
}

/** The distillation grid: [1 .. count] * (T // original) - 1, ascending, count = int(original * strength). */
export function lcmOriginTimesteps(numTrainTimesteps: number, original: number, strength: number): number[] {
  const k = Math.floor(numTrainTimesteps / original);
  const count = Math.trunc(original * strength);
  return Array.from({ length: Math.max(count, 0) }, (_, i) => (i + 1) * k - 1);
}

function checkStrength(strength: number): void {
  if (!Number.isFinite(strength) || strength <= 0 || strength > 1) {
    throw new InvalidArgumentError("options.strength", "a number in (0, 1]", strength);
  }
}

export class LCMScheduler extends AlphaBarScheduler<"LCMScheduler"> {
  private stepIndex: number | undefined;

  /** Builds from (part of) a config; missing fields take LCMScheduler's diffusers defaults. */
  constructor(config: Partial<LCMSchedulerConfig> = {}) {
    super("LCMScheduler", config);
  }

  /**
   * Sets the run's timesteps: `setTimesteps(n)` takes n evenly indexed entries of the distillation
   * grid; `setTimesteps(undefined, { timesteps })` uses custom ones. With custom timesteps and
   * strength < 1 only the last int(len * strength) are kept while numInferenceSteps stays the full
   * length (as diffusers does: every kept step then adds noise).
   */
  override setTimesteps(numInferenceSteps: number | undefined, options: LCMSetTimestepsOptions = {}): void {
    const c = this.config;
    const T = c.num_train_timesteps;
    const custom = options.timesteps;
    if ((numInferenceSteps === undefined) === (custom === undefined)) {
      throw new InvalidArgumentError(
        "numInferenceSteps / options.timesteps",
        "exactly one of the two",
        numInferenceSteps === undefined ? "neither" : "both",
      );
    }
    const original = options.originalInferenceSteps ?? c.original_inference_steps;
    if (!Number.isInteger(original) || original < 1 || original > T) {
      throw new InvalidArgumentError(
        "options.originalInferenceSteps",
        `an integer in [1, ${T}] (num_train_timesteps)`,
        original,
      );
    }
    const strength = options.strength ?? 1;
    checkStrength(strength);
    const grid = lcmOriginTimesteps(T, original, strength);

    if (custom !== undefined) {
      if (custom.length === 0) throw new InvalidArgumentError("options.timesteps", "a non-empty list", "[]");
      custom.forEach((t, i) => {
        checkTrainTimestep(t, T, `options.timesteps[${i}]`);
        if (i > 0 && t >= (custom[i - 1] ?? Infinity)) {
          throw new InvalidArgumentError("options.timesteps", "strictly descending timesteps", [...custom]);
        }
      });
      const n = custom.length;
      const init = Math.min(Math.trunc(n * strength), n);
      if (init < 1) {
        throw new InvalidArgumentError(
          "options.strength",
          `at least 1 / ${n} (keeps no custom timestep)`,
          strength,
        );
      }
      this.steps = custom.slice(n - init);
      this.inferenceSteps = n;
    } else {
      const n = numInferenceSteps ?? NaN;
      if (!Number.isInteger(n) || n < 1 || n > T) {
        throw new InvalidArgumentError(
          "numInferenceSteps",
          `an integer in [1, ${T}] (num_train_timesteps)`,
          n,
        );
      }
      if (n > grid.length || n > original) {
        throw new InvalidArgumentError(
          "numInferenceSteps",
          `at most int(originalInferenceSteps * strength) = ${grid.length}`,
          n,
          {
            hint: "the LCM schedule is a subset of the original_inference_steps grid: lower the steps or raise strength / originalInferenceSteps",
          },
        );
      }
      const descending = grid.reverse();
      const ratio = descending.length / n;
      this.steps = Array.from({ length: n }, (_, i) => descending[Math.floor(i * ratio)] ?? NaN);
      this.inferenceSteps = n;
    }
    this.stepIndex = undefined;
  }

  step(modelOutputIn: F32Tensor, t: number, sampleIn: F32Tensor, options: StepOptions = {}): StepOutput {
    const c = this.config;
    const n = this.requireInferenceSteps();
    const { modelOutput, sample } = checkStepTensors(modelOutputIn, sampleIn);
    checkTrainTimestep(t, c.num_train_timesteps);
    const index = (this.stepIndex ??= initialStepIndex(this.steps, t));
    if (index >= this.steps.length) {
      throw new InvalidArgumentError("t", "a timestep not yet stepped past in this run", t, {
        hint: "call setTimesteps(n) to start a new run",
      });
    }
    const prevT = this.steps[index + 1] ?? t;

    const a = this.alphaProdAt(t);
    const aPrev = this.alphaProdAt(prevT);
    const { cSkip, cOut } = lcmBoundaryScalings(t, c.timestep_scaling);
    const x0 = limitPredictedOriginal(predictOriginalSample(c.prediction_type, modelOutput, sample, a), c);
    const denoised = build(sample.shape, (i) =>
      f32(f32(cOut * (x0.data[i] ?? 0)) + f32(cSkip * (sample.data[i] ?? 0))),
    );
    let prevSample = denoised;
    if (index !== n - 1) {
      const z = drawNoise(options.generator, modelOutput.shape, "LCMScheduler (every step but the last)");
      const zCoef = f32(Math.sqrt(f32(1 - aPrev)));
      const dCoef = f32(Math.sqrt(aPrev));
      prevSample = build(sample.shape, (i) =>
        f32(f32(dCoef * (denoised.data[i] ?? 0)) + f32(zCoef * (z.data[i] ?? 0))),
      );
    }
    this.stepIndex = index + 1;
    return { prevSample, denoised };
  }
}
