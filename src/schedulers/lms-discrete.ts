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
import type { LMSDiscreteSchedulerConfig } from "./config.js";
import { KDiffusionScheduler } from "./k-diffusion-scheduler.js";
import { quad } from "./quadrature.js";
import type { StepOptions, StepOutput } from "./scheduler.js";
import { predictOriginalFromSigma } from "./sigma-ops.js";
import type { SigmaScheduleOptions } from "./sigma-schedule.js";
import { type F32Tensor, build, checkStepTensors } from "./tensor-ops.js";

const f32 = Math.fround;

export interface LMSStepOptions extends StepOptions {
  /** (optional, default 4) order of the multistep method (lower at the first steps). */
  readonly order?: number;
}

export class LMSDiscreteScheduler extends KDiffusionScheduler<"LMSDiscreteScheduler"> {
  private derivatives: F32Tensor[] = [];

  /** Builds from (part of) a config; missing fields take LMSDiscreteScheduler's diffusers defaults. */
  constructor(config: Partial<LMSDiscreteSchedulerConfig> = {}) {
    super("LMSDiscreteScheduler", config);
  }

  protected override scheduleOptions(): SigmaScheduleOptions {
    return { ...super.scheduleOptions(), useKarrasSigmas: this.config.use_karras_sigmas };
  }

  /** As the base, and forgets the derivatives of the previous run. */
  override setTimesteps(numInferenceSteps: number): void {
    super.setTimesteps(numInferenceSteps);
    this.derivatives = [];
  }

  /** c_j of the module docs for step index `i` (diffusers `get_lms_coefficient(order, i, j)`). */
  lmsCoefficient(order: number, i: number, j: number): number {
    const at = (k: number): number => this.sigmaAt(k);
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
    const { modelOutput, sample } = checkStepTensors(modelOutputIn, sampleIn);
    const maxOrder = options.order ?? 4;
    if (!Number.isInteger(maxOrder) || maxOrder < 1)
      throw new InvalidArgumentError("options.order", "an integer >= 1", maxOrder);
    const index = this.stepIndexFor(t);
    const sigma = this.sigmaAt(index);
    const x = sample.data;
    const x0 = predictOriginalFromSigma(this.config.prediction_type, modelOutput, sample, sigma);
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
    this.advancePast(index);
    return { prevSample, predOriginalSample: x0 };
  }
}
