/**
 * DPMSolverMultistepScheduler: multistep DPM-Solver / DPM-Solver++ (Lu et al. 2022), e.g. "DPM++ 2M"
 * = algorithm_type "dpmsolver++", solver_order 2. Port of diffusers 0.26.3
 * src/diffusers/schedulers/scheduling_dpmsolver_multistep.py.
 *
 * Each step converts the model output to x_0 (dpmsolver++) or eps (dpmsolver), stores it, and applies
 * the update of order min(solver_order, outputs seen); the first step is first order, and the last
 * step is first order when `euler_at_final`, or `lower_order_final` with < 15 steps, or
 * `final_sigmas_type` "zero" (the second-to-last is at most second order with lower_order_final and
 * < 15 steps). Timesteps are integers; sigmas are interpolated at them and end with 0 ("zero") or
 * sigma at t=0 ("sigma_min").
 * State (reset by setTimesteps): step index, the last `solver_order` converted outputs, and how many
 * lower-order steps have been taken.
 */
import { limitPredictedOriginal } from "./alpha-ops.js";
import type { DPMSolverMultistepSchedulerConfig } from "./config.js";
import {
  firstOrderUpdate,
  secondOrderUpdate,
  sigmaToAlphaSigma,
  thirdOrderUpdate,
} from "./dpm-solver-updates.js";
import { roundHalfEven } from "./numeric.js";
import { epsilonFromX0, predictedEpsilon, predictedOriginal, x0FromEpsilon } from "./prediction.js";
import type { StepOptions, StepOutput } from "./scheduler.js";
import { requireSchedule } from "./sigma-ops.js";
import { SigmaScheduler } from "./sigma-scheduler.js";
import {
  karrasSchedule,
  logSigmas,
  luLambdas,
  sigmaToT,
  sigmasAtTimesteps,
  trainingSigmas,
} from "./sigmas.js";
import { checkNumInferenceSteps, multistepTimesteps } from "./spacing.js";
import { type F32Tensor, checkFloat32, checkSameShape, drawNoise, splitChannels } from "./tensor-ops.js";

const f32 = Math.fround;

export class DPMSolverMultistepScheduler extends SigmaScheduler<"DPMSolverMultistepScheduler"> {
  readonly initNoiseSigma = 1;
  private modelOutputs: (F32Tensor | undefined)[] = [];
  private lowerOrderNums = 0;

  /** Builds from (part of) a config; missing fields take this class's diffusers defaults. */
  constructor(config: Partial<DPMSolverMultistepSchedulerConfig> = {}) {
    super("DPMSolverMultistepScheduler", config);
  }

  /** Number of training timesteps whose lambda is >= lambda_min_clipped (diffusers' `last_timestep`). */
  private lastTimestep(): number {
    const c = this.config;
    let clipped = 0; // searchsorted(flip(lambda_t), lambda_min_clipped), side "left"
    for (let t = this.alphasCumprod.length - 1; t >= 0; t--) {
      const a = this.alphasCumprod[t] ?? NaN;
      const lambda = f32(f32(Math.log(f32(Math.sqrt(a)))) - f32(Math.log(f32(Math.sqrt(f32(1 - a))))));
      if (lambda < c.lambda_min_clipped) clipped++;
      else break;
    }
    return c.num_train_timesteps - clipped;
  }

  setTimesteps(numInferenceSteps: number): void {
    const c = this.config;
    const n = numInferenceSteps;
    checkNumInferenceSteps(n, c.num_train_timesteps);
    const last = this.lastTimestep();
    let timesteps = multistepTimesteps(c.timestep_spacing, last, c.num_train_timesteps, n, c.steps_offset);
    const train = trainingSigmas(this.alphasCumprod);
    const logs = logSigmas(train);
    let sigmas: number[];
    if (c.use_karras_sigmas) {
      ({ sigmas, timesteps } = karrasSchedule(train, logs, n));
    } else if (c.use_lu_lambdas) {
      sigmas = luLambdas(logs[0] ?? 0, logs[logs.length - 1] ?? 0, n).map(Math.exp);
      timesteps = sigmas.map((s) => roundHalfEven(sigmaToT(s, logs)));
    } else {
      sigmas = sigmasAtTimesteps(timesteps, train);
    }
    const sigmaLast = c.final_sigmas_type === "sigma_min" ? (train[0] ?? 0) : 0;
    this.startRun(timesteps, Float32Array.from([...sigmas, sigmaLast]), timesteps.length);
    this.modelOutputs = Array.from({ length: c.solver_order }, () => undefined);
    this.lowerOrderNums = 0;
  }

  scaleModelInput(sample: F32Tensor): F32Tensor {
    return sample;
  }

  /** The model output as the solver wants it: x_0 for dpmsolver++ variants, eps for dpmsolver ones. */
  convertModelOutput(modelOutputIn: F32Tensor, sample: F32Tensor, sigma: number): F32Tensor {
    const c = this.config;
    let modelOutput = modelOutputIn;
    if (
      c.variance_type !== null &&
      c.prediction_type === "epsilon" &&
      modelOutput.shape[1] === (sample.shape[1] ?? 0) * 2
    ) {
      [modelOutput] = splitChannels(modelOutput); // diffusers keeps model_output[:, :3] (the mean half)
    }
    checkSameShape(sample, modelOutput, "sample", "modelOutput");
    const level = sigmaToAlphaSigma(sigma);
    if (c.algorithm_type.endsWith("dpmsolver++")) {
      return limitPredictedOriginal(predictedOriginal(c.prediction_type, modelOutput, sample, level), c);
    }
    const eps = predictedEpsilon(c.prediction_type, modelOutput, sample, level);
    if (!c.thresholding) return eps;
    const x0 = limitPredictedOriginal(x0FromEpsilon(sample, eps, level), c);
    return epsilonFromX0(sample, x0, level);
  }

  step(modelOutputIn: F32Tensor, t: number, sampleIn: F32Tensor, options: StepOptions = {}): StepOutput {
    const c = this.config;
    requireSchedule(this.steps);
    const sample = checkFloat32(sampleIn, "sample");
    const modelOutput = checkFloat32(modelOutputIn, "modelOutput");
    const index = this.stepIndexFor(t, "last");
    const count = this.steps.length;
    const lowerOrderFinal =
      index === count - 1 &&
      (c.euler_at_final || (c.lower_order_final && count < 15) || c.final_sigmas_type === "zero");
    const lowerOrderSecond = index === count - 2 && c.lower_order_final && count < 15;

    const converted = this.convertModelOutput(modelOutput, sample, this.sigmaAt(index));
    this.modelOutputs = [...this.modelOutputs.slice(1), converted];
    const noise = c.algorithm_type.startsWith("sde-")
      ? drawNoise(options.generator, converted.shape, `DPMSolverMultistepScheduler (${c.algorithm_type})`)
      : undefined;
    const input = {
      algorithm: c.algorithm_type,
      solverType: c.solver_type,
      sigmas: [index + 1, index, index - 1, index - 2].map((k) => this.sigmaAt(k)),
      outputs: this.modelOutputs.filter((o): o is F32Tensor => o !== undefined),
      sample,
      noise,
    };
    let prevSample: F32Tensor;
    if (c.solver_order === 1 || this.lowerOrderNums < 1 || lowerOrderFinal)
      prevSample = firstOrderUpdate(input);
    else if (c.solver_order === 2 || this.lowerOrderNums < 2 || lowerOrderSecond)
      prevSample = secondOrderUpdate(input);
    else prevSample = thirdOrderUpdate(input);
    if (this.lowerOrderNums < c.solver_order) this.lowerOrderNums += 1;
    this.advancePast(index);
    return { prevSample };
  }

  /** x_t = alpha_t x_0 + sigma_t noise, with sigma looked up from the run's timesteps. */
  addNoise(original: F32Tensor, noise: F32Tensor, timesteps: readonly number[]): F32Tensor {
    return this.noiseAtRunLevels(original, noise, timesteps);
  }
}
