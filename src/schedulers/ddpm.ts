/**
 * DDPMScheduler: ancestral sampling of Ho et al. 2020 ("Denoising Diffusion Probabilistic Models"),
 * with the posterior q(x_{t-1} | x_t, x_0) of eq. (6)-(7) and the variance choices of
 * Nichol & Dhariwal 2021. Port of diffusers 0.26.3 src/diffusers/schedulers/scheduling_ddpm.py.
 *
 * Step from t to t' = t - T // N:
 *   x_0 = predicted from the model output (prediction_type), clipped or thresholded
 *   mean = sqrt(a_{t'}) (1 - a_t / a_{t'}) / (1 - a_t) x_0 + sqrt(a_t / a_{t'}) (1 - a_{t'}) / (1 - a_t) x_t
 *   x_{t'} = mean + sigma_t z  (z ~ N(0, I), only for t > 0), a = alpha_bar.
 * State: none besides the timesteps (`step` also works before `setTimesteps`, with t' = t - 1).
 */
import { InvalidArgumentError } from "../errors.js";
import { AlphaBarScheduler } from "./alpha-bar-scheduler.js";
import { checkTrainTimestep, limitPredictedOriginal, predictOriginalSample } from "./alpha-ops.js";
import type { DDPMSchedulerConfig } from "./config.js";
import type { StepOptions, StepOutput } from "./scheduler.js";
import {
  type F32Tensor,
  build,
  checkFloat32,
  checkSameShape,
  drawNoise,
  splitChannels,
} from "./tensor-ops.js";

const f32 = Math.fround;

export class DDPMScheduler extends AlphaBarScheduler<"DDPMScheduler"> {
  /** Builds from (part of) a config; missing fields take DDPMScheduler's diffusers defaults. */
  constructor(config: Partial<DDPMSchedulerConfig> = {}) {
    super("DDPMScheduler", config);
  }

  /** Set by `setCustomTimesteps`, cleared by `setTimesteps`. */
  private custom = false;

  override setTimesteps(numInferenceSteps: number): void {
    super.setTimesteps(numInferenceSteps);
    this.custom = false;
  }

  /**
   * Runs exactly `timesteps` (diffusers `set_timesteps(timesteps=[...])`): integers in descending
   * order, the first below num_train_timesteps; each step goes to the next one, the last to -1.
   * N (for a later step without timesteps) stays what it was, as in diffusers.
   */
  setCustomTimesteps(timesteps: readonly number[]): void {
    const T = this.config.num_train_timesteps;
    timesteps.forEach((t, i) => {
      if (!Number.isInteger(t) || t < 0)
        throw new InvalidArgumentError(`timesteps[${i}]`, "a non-negative integer", t);
      if (i > 0 && t >= (timesteps[i - 1] ?? Infinity))
        throw new InvalidArgumentError("timesteps", "descending timesteps", timesteps.join(", "));
    });
    if ((timesteps[0] ?? 0) >= T)
      throw new InvalidArgumentError(
        "timesteps[0]",
        `a timestep below num_train_timesteps ${T}`,
        timesteps[0],
      );
    this.steps = [...timesteps];
    this.custom = true;
  }

  /** t - T // N (diffusers uses this step size for every spacing); with custom timesteps, the next one. */
  previousTimestep(t: number): number {
    if (this.custom) {
      const i = this.steps.indexOf(t);
      if (i < 0)
        throw new InvalidArgumentError("timestep", `one of the custom timesteps ${this.steps.join(", ")}`, t);
      return this.steps[i + 1] ?? -1;
    }
    return t - this.stepRatio(this.inferenceSteps ?? this.config.num_train_timesteps);
  }

  step(modelOutputIn: F32Tensor, t: number, sampleIn: F32Tensor, options: StepOptions = {}): StepOutput {
    const c = this.config;
    const sample = checkFloat32(sampleIn, "sample");
    let modelOutput = checkFloat32(modelOutputIn, "modelOutput");
    checkTrainTimestep(t, c.num_train_timesteps);
    let predictedVariance: F32Tensor | undefined;
    const learned = c.variance_type === "learned" || c.variance_type === "learned_range";
    if (learned && modelOutput.shape[1] === (sample.shape[1] ?? 0) * 2) {
      [modelOutput, predictedVariance] = splitChannels(modelOutput);
    }
    checkSameShape(sample, modelOutput, "sample", "modelOutput");

    const prevT = this.previousTimestep(t);
    const a = this.alphaProdAt(t);
    const aPrev = this.alphaProdAt(prevT);
    const betaProd = f32(1 - a);
    const betaProdPrev = f32(1 - aPrev);
    const currentAlpha = f32(a / aPrev);
    const currentBeta = f32(1 - currentAlpha);

    const x0 = limitPredictedOriginal(predictOriginalSample(c.prediction_type, modelOutput, sample, a), c);
    const coefX0 = f32(f32(f32(Math.sqrt(aPrev)) * currentBeta) / betaProd);
    const coefXt = f32(f32(f32(Math.sqrt(currentAlpha)) * betaProdPrev) / betaProd);
    const mean = build(sample.shape, (i) =>
      f32(f32(coefX0 * (x0.data[i] ?? 0)) + f32(coefXt * (sample.data[i] ?? 0))),
    );
    if (t <= 0) return { prevSample: mean, predOriginalSample: x0 };

    const noise = drawNoise(options.generator, modelOutput.shape, "DDPMScheduler");
    const std = this.noiseScale(a, aPrev, currentBeta, predictedVariance, modelOutputIn.shape);
    const prevSample = build(sample.shape, (i) =>
      f32((mean.data[i] ?? 0) + f32(std(i) * (noise.data[i] ?? 0))),
    );
    return { prevSample, predOriginalSample: x0 };
  }

  /**
   * The factor that multiplies the unit noise at element i, per `variance_type`:
   * posterior variance beta~_t = (1 - a_{t'}) / (1 - a_t) beta_t (clamped to >= 1e-20) for the
   * "small" types, beta_t for the "large" ones, or the model's prediction for "learned*".
   */
  private noiseScale(
    a: number,
    aPrev: number,
    currentBeta: number,
    predicted: F32Tensor | undefined,
    outputShape: readonly number[],
  ): (i: number) => number {
    const type = this.config.variance_type;
    const posterior = Math.max(f32(f32(f32(1 - aPrev) / f32(1 - a)) * currentBeta), 1e-20);
    const needPredicted = (): F32Tensor => {
      if (predicted === undefined) {
        throw new InvalidArgumentError(
          "modelOutput",
          `twice the sample's channels (mean and variance) for variance_type "${type}"`,
          `shape [${outputShape.join(", ")}]`,
        );
      }
      return predicted;
    };
    switch (type) {
      case "fixed_small": {
        const s = f32(Math.sqrt(posterior));
        return () => s;
      }
      case "fixed_small_log": {
        // diffusers: variance = exp(0.5 * log(beta~)), used as the noise scale directly.
        const s = f32(Math.exp(f32(0.5 * f32(Math.log(posterior)))));
        return () => s;
      }
      case "fixed_large": {
        const s = f32(Math.sqrt(currentBeta));
        return () => s;
      }
      case "fixed_large_log": {
        // diffusers takes sqrt(log(beta_t)), which is NaN for beta_t < 1; kept for parity.
        const s = f32(Math.sqrt(f32(Math.log(currentBeta))));
        return () => s;
      }
      case "learned": {
        const p = needPredicted();
        return (i) => f32(Math.sqrt(p.data[i] ?? 0));
      }
      case "learned_range": {
        const p = needPredicted();
        const minLog = f32(Math.log(posterior));
        const maxLog = f32(Math.log(currentBeta));
        return (i) => {
          const frac = f32(f32((p.data[i] ?? 0) + 1) / 2);
          const logVar = f32(f32(frac * maxLog) + f32(f32(1 - frac) * minLog));
          return f32(Math.exp(f32(0.5 * logVar)));
        };
      }
    }
  }
}
