/**
 * LMSDiscreteScheduler: linear multistep (Adams-Bashforth in sigma) on the probability-flow ODE,
 * k-diffusion's `sample_lms`. Port of diffusers 0.26.3 src/diffusers/schedulers/scheduling_lms_discrete.py.
 *
 *   d_i = (x_i - x0_i) / sigma_i (x0 from prediction_type, as in Euler)
 *   x_{i+1} = x_i + sum_{j < order} c_j d_{i-j},  c_j = integral_{sigma_i}^{sigma_{i+1}} l_j(tau) dtau
 * where l_j is the Lagrange basis polynomial through sigma_i, ..., sigma_{i-order+1} that is 1 at
 * sigma_{i-j}. The integral is evaluated numerically like diffusers' `scipy.integrate.quad(...,
 * epsrel=1e-4)`, with the integrand in float32 as the torch expression computes it.
 * State (reset by setTimesteps): the step index and the last `order` derivatives.
 */
import { InvalidArgumentError } from "../errors.js";
import { makeNoiseTables } from "./betas.js";
import { CONSTRUCTOR_PARSE, type LMSDiscreteSchedulerConfig, parseSchedulerConfig } from "./config.js";
import { quad } from "./quadrature.js";
import type { Scheduler, StepOptions, StepOutput } from "./scheduler.js";
import { addNoiseWithSigmas, requireSchedule, scaleBySigma } from "./sigma-ops.js";
import { sigmaSchedule } from "./sigma-schedule.js";
import { eulerInitNoiseSigma, initialStepIndex } from "./sigmas.js";
import { checkNumInferenceSteps } from "./spacing.js";
import { type F32Tensor, build, checkFloat32, checkSameShape } from "./tensor-ops.js";

const f32 = Math.fround;

export interface LMSStepOptions extends StepOptions {
  /** (optional, default 4) order of the multistep method (lower at the first steps). */
  readonly order?: number;
}

export class LMSDiscreteScheduler implements Scheduler {
  readonly className = "LMSDiscreteScheduler";
  readonly order = 1;
  readonly config: LMSDiscreteSchedulerConfig;
  readonly betas: Float32Array;
  readonly alphasCumprod: Float32Array;
  private steps: number[] = [];
  private sigmaValues: Float32Array = new Float32Array(0);
  private inferenceSteps: number | undefined;
  private stepIndex: number | undefined;
  private derivatives: F32Tensor[] = [];

  /** Builds from (part of) a config; missing fields take LMSDiscreteScheduler's diffusers defaults. */
  constructor(config: Partial<LMSDiscreteSchedulerConfig> = {}) {
    this.config = parseSchedulerConfig("LMSDiscreteScheduler", config, CONSTRUCTOR_PARSE).config;
    const tables = makeNoiseTables(this.config);
    this.betas = tables.betas;
    this.alphasCumprod = tables.alphasCumprod;
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
      useKarrasSigmas: c.use_karras_sigmas,
    });
    this.steps = schedule.timesteps;
    this.sigmaValues = schedule.sigmas;
    this.inferenceSteps = numInferenceSteps;
    this.stepIndex = undefined;
    this.derivatives = [];
  }

  private currentIndex(t: number): number {
    requireSchedule(this.steps);
    this.stepIndex ??= initialStepIndex(this.steps, t);
    return this.stepIndex;
  }

  scaleModelInput(sample: F32Tensor, t: number): F32Tensor {
    return scaleBySigma(checkFloat32(sample, "sample"), this.sigmaValues[this.currentIndex(t)] ?? NaN);
  }

  /** c_j of the module docs for step index `i` (diffusers `get_lms_coefficient(order, i, j)`). */
  lmsCoefficient(order: number, i: number, j: number): number {
    const s = this.sigmaValues;
    const at = (k: number): number => s[k] ?? NaN;
    const basis = (tau: number): number => {
      let prod = 1;
      for (let k = 0; k < order; k++) {
        if (k === j) continue;
        prod = f32(prod * f32(f32(f32(tau) - at(i - k)) / f32(at(i - j) - at(i - k))));
      }
      return prod;
    };
    return quad(basis, at(i), at(i + 1), { epsabs: 1.49e-8, epsrel: 1e-4 }).value;
  }

  step(modelOutputIn: F32Tensor, t: number, sampleIn: F32Tensor, options: LMSStepOptions = {}): StepOutput {
    const sample = checkFloat32(sampleIn, "sample");
    const modelOutput = checkFloat32(modelOutputIn, "modelOutput");
    checkSameShape(sample, modelOutput, "sample", "modelOutput");
    const maxOrder = options.order ?? 4;
    if (!Number.isInteger(maxOrder) || maxOrder < 1)
      throw new InvalidArgumentError("options.order", "an integer >= 1", maxOrder);
    const index = this.currentIndex(t);
    if (index + 1 >= this.sigmaValues.length) {
      throw new InvalidArgumentError("t", "a timestep not yet stepped past in this run", t, {
        hint: "call setTimesteps(n) to start a new run",
      });
    }
    const sigma = this.sigmaValues[index] ?? NaN;
    const x = sample.data;
    const m = modelOutput.data;
    let x0: F32Tensor;
    if (this.config.prediction_type === "epsilon") {
      x0 = build(sample.shape, (i) => f32((x[i] ?? 0) - f32(sigma * (m[i] ?? 0))));
    } else if (this.config.prediction_type === "v_prediction") {
      const c1 = f32(-sigma / f32(Math.sqrt(f32(f32(sigma * sigma) + 1))));
      const c2 = f32(f32(sigma * sigma) + 1);
      x0 = build(sample.shape, (i) => f32(f32((m[i] ?? 0) * c1) + f32((x[i] ?? 0) / c2)));
    } else {
      x0 = modelOutput;
    }
    const derivative = build(sample.shape, (i) => f32(f32((x[i] ?? 0) - (x0.data[i] ?? 0)) / sigma));
    this.derivatives.push(derivative);
    if (this.derivatives.length > maxOrder) this.derivatives.shift();
    const order = Math.min(index + 1, maxOrder);
    const coefs = Array.from({ length: order }, (_, j) => f32(this.lmsCoefficient(order, index, j)));
    const newestFirst = [...this.derivatives].reverse();
    const prevSample = build(sample.shape, (i) => {
      let acc = 0;
      coefs.forEach((c, j) => {
        const term = f32(c * (newestFirst[j]?.data[i] ?? 0));
        acc = j === 0 ? term : f32(acc + term);
      });
      return f32((x[i] ?? 0) + acc);
    });
    this.stepIndex = index + 1;
    return { prevSample, predOriginalSample: x0 };
  }

  addNoise(original: F32Tensor, noise: F32Tensor, timesteps: readonly number[]): F32Tensor {
    return addNoiseWithSigmas(this.steps, this.sigmaValues, original, noise, timesteps);
  }
}
