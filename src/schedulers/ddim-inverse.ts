/**
 * DDIMInverseScheduler: deterministic DDIM run backwards (Song et al. 2021, eq. (12) with eta = 0,
 * solved for the noisier sample), which maps clean latents to the noise DDIM would turn back into
 * them. Port of diffusers 0.26.3 src/diffusers/schedulers/scheduling_ddim_inverse.py.
 *
 * Timesteps ascend: "leading" = k * (T // N) + steps_offset, "trailing" = round(arange(T, 0, -T/N))
 * reversed, minus 1 ("linspace" is rejected, as diffusers' set_timesteps does).
 * Step to t from s = min(t - T // N, T - 1) (a = alpha_bar; a_s = initial_alpha_cumprod when s < 0,
 * which is 1 with `set_alpha_to_one` and alpha_bar_0 otherwise):
 *   x_0, eps from the model output at s (prediction_type), x_0 clipped with clip_sample
 *   x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps
 * The model is evaluated at the target t on the less noisy sample (as the diffusers pipelines do).
 * State: none besides the timesteps. No noise is ever drawn and there is no add_noise.
 */
import { UnsupportedError } from "../errors.js";
import { AlphaBarScheduler } from "./alpha-bar-scheduler.js";
import { checkTrainTimestep, clipSample, predictOriginalSample } from "./alpha-ops.js";
import type { DDIMInverseSchedulerConfig } from "./config.js";
import { alphaBarLevel, predictedEpsilon } from "./prediction.js";
import type { StepOptions, StepOutput } from "./scheduler.js";
import { type F32Tensor, build, checkStepTensors } from "./tensor-ops.js";

const f32 = Math.fround;

export class DDIMInverseScheduler extends AlphaBarScheduler<"DDIMInverseScheduler"> {
  /** Builds from (part of) a config; missing fields take DDIMInverseScheduler's diffusers defaults. */
  constructor(config: Partial<DDIMInverseSchedulerConfig> = {}) {
    const { set_alpha_to_zero: zero } = config;
    super(
      "DDIMInverseScheduler",
      zero === undefined || zero === null ? config : { ...config, set_alpha_to_one: zero },
    );
  }

  /**
   * alpha_bar of the source of the first step (s < 0): 1 with `set_alpha_to_one`, else alpha_bar_0
   * (diffusers `initial_alpha_cumprod`; the same number as DDIM's final_alpha_cumprod).
   */
  get initialAlphaCumprod(): number {
    return this.finalAlphaCumprod;
  }

  /** The run's integer timesteps in ascending order. */
  protected override spacedTimesteps(numInferenceSteps: number): number[] {
    return super.spacedTimesteps(numInferenceSteps).reverse();
  }

  /** The timestep a step to `t` starts from: min(t - T // N, T - 1) (negative for the first step). */
  sourceTimestep(t: number): number {
    const c = this.config;
    return Math.min(t - this.stepRatio(this.requireInferenceSteps()), c.num_train_timesteps - 1);
  }

  step(modelOutputIn: F32Tensor, t: number, sampleIn: F32Tensor, _options: StepOptions = {}): StepOutput {
    const c = this.config;
    const { modelOutput, sample } = checkStepTensors(modelOutputIn, sampleIn);
    checkTrainTimestep(t, c.num_train_timesteps);
    const source = this.sourceTimestep(t);

    const aSource = this.alphaProdAt(source);
    const aTarget = this.alphaProdAt(t);
    let x0 = predictOriginalSample(c.prediction_type, modelOutput, sample, aSource);
    const eps = predictedEpsilon(c.prediction_type, modelOutput, sample, alphaBarLevel(aSource));
    if (c.clip_sample) x0 = clipSample(x0, c.clip_sample_range);

    const dirCoef = f32(Math.sqrt(f32(1 - aTarget)));
    const x0Coef = f32(Math.sqrt(aTarget));
    const prev = build(sample.shape, (i) =>
      f32(f32(x0Coef * (x0.data[i] ?? 0)) + f32(dirCoef * (eps.data[i] ?? 0))),
    );
    return { prevSample: prev, predOriginalSample: x0 };
  }

  /** diffusers' DDIMInverseScheduler has no add_noise: inversion computes the noise instead. */
  override addNoise(): F32Tensor {
    throw new UnsupportedError("addNoise on DDIMInverseScheduler", {
      hint: "diffusers' DDIMInverseScheduler has no add_noise; build a DDIMScheduler from the same config to noise samples",
    });
  }
}
