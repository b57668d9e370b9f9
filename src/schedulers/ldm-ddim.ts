/**
 * The original LDM DDIM sampler that Uni-ControlNet's demo runs (ShihaoZhaoZSH/Uni-ControlNet
 * `models/ddim_hacked.py` over `ldm/modules/diffusionmodules/util.py` make_ddim_timesteps /
 * make_ddim_sampling_parameters, "uniform" discretisation), behind the Scheduler contract:
 *
 * - timesteps: `c = T // S`, `range(0, T, c) + 1`, visited in reverse: **ceil(T / c) steps**, not
 *   always S (S = 6 -> 7 steps 997, 831, ..., 1); a request whose top step would be >= T fails as the
 *   original does (S = 3 -> 1000: IndexError there, InvalidArgumentError here).
 * - a_t = alphas_cumprod[t], a_prev = alphas_cumprod[previous visited step] (alphas_cumprod[0] for the
 *   last step), sigma = eta sqrt((1 - a_prev) / (1 - a_t) (1 - a_t / a_prev)), all used as float32
 *   (`torch.full`), sqrt(1 - a_t) computed in float32.
 * - pred_x0 = (x - sqrt(1 - a_t) e) / sqrt(a_t); x_prev = sqrt(a_prev) pred_x0 + sqrt(1 - a_prev - sigma^2) e + sigma z.
 *
 * alphas_cumprod: the checkpoint's buffer when given, else `ldmAlphasCumprod()` (betas
 * linspace(sqrt(0.00085), sqrt(0.012), 1000)^2 and cumprod in float64, stored float32, as LDM's
 * register_schedule does).
 */
import { InvalidArgumentError } from "../errors.js";
import { addNoiseWithAlphas, checkTrainTimestep } from "./alpha-ops.js";
import type { NoiseGenerator, Scheduler, StepOutput } from "./scheduler.js";
import { type F32Tensor, build, checkStepTensors, drawNoise } from "./tensor-ops.js";

const f32 = Math.fround;

/** LDM "linear" schedule: float64 maths, float32 results. */
export function ldmSchedule(
  linearStart = 0.00085,
  linearEnd = 0.012,
  numTimesteps = 1000,
): { betas: Float32Array; alphasCumprod: Float32Array } {
  const betas = new Float32Array(numTimesteps);
  const alphasCumprod = new Float32Array(numTimesteps);
  const a = Math.sqrt(linearStart);
  const b = Math.sqrt(linearEnd);
  let prod = 1;
  for (let i = 0; i < numTimesteps; i++) {
    const s = numTimesteps === 1 ? a : a + ((b - a) * i) / (numTimesteps - 1);
    const beta = s * s;
    prod *= 1 - beta;
    betas[i] = beta;
    alphasCumprod[i] = prod;
  }
  return { betas, alphasCumprod };
}

/** make_ddim_timesteps("uniform", S, T) in visiting order (descending). */
export function ldmDdimTimesteps(steps: number, numTimesteps = 1000): number[] {
  if (!Number.isInteger(steps) || steps < 1 || steps > numTimesteps)
    throw new InvalidArgumentError("steps", `an integer in [1, ${numTimesteps}]`, steps);
  const c = Math.floor(numTimesteps / steps);
  const ascending: number[] = [];
  for (let t = 0; t < numTimesteps; t += c) ascending.push(t + 1);
  const top = ascending[ascending.length - 1] ?? 0;
  if (top >= numTimesteps) {
    throw new InvalidArgumentError(
      "steps",
      "a step count whose top DDIM timestep is below the training steps",
      steps,
      {
        hint: `LDM's uniform DDIM spacing gives timestep ${top} for ${steps} steps, past alphas_cumprod (the original raises IndexError); use another count`,
      },
    );
  }
  return ascending.reverse();
}

/** The float32 step coefficients of one timestep (ddim_hacked.py p_sample_ddim). */
export interface LdmDdimCoefficients {
  readonly aT: number;
  readonly aPrev: number;
  readonly sigma: number;
  readonly sqrtOneMinusAt: number;
}

export interface LdmDdimOptions {
  /** (optional) the checkpoint's alphas_cumprod buffer; default ldmSchedule(). */
  readonly alphasCumprod?: Float32Array;
  /** (optional, default 0) DDIM eta. */
  readonly eta?: number;
}

export class LdmDdimSampler implements Scheduler {
  readonly className = "DDIMScheduler" as const;
  readonly order = 1;
  readonly betas: Float32Array;
  readonly alphasCumprod: Float32Array;
  readonly initNoiseSigma = 1;
  readonly eta: number;
  private steps: number[] = [];
  private requested: number | undefined;

  constructor(options: LdmDdimOptions = {}) {
    const schedule = ldmSchedule();
    this.alphasCumprod = options.alphasCumprod ?? schedule.alphasCumprod;
    this.betas = options.alphasCumprod
      ? Float32Array.from(
          this.alphasCumprod,
          (a, i) => 1 - a / (i === 0 ? 1 : (this.alphasCumprod[i - 1] ?? 1)),
        )
      : schedule.betas;
    this.eta = options.eta ?? 0;
    if (!Number.isFinite(this.eta) || this.eta < 0)
      throw new InvalidArgumentError("eta", "a number >= 0", this.eta);
  }

  get timesteps(): readonly number[] {
    return this.steps;
  }

  get numInferenceSteps(): number | undefined {
    return this.requested;
  }

  /** Requested S; the run has `timesteps.length` steps (ceil(T / (T // S))). */
  setTimesteps(numInferenceSteps: number): void {
    this.steps = ldmDdimTimesteps(numInferenceSteps, this.alphasCumprod.length);
    this.requested = numInferenceSteps;
  }

  scaleModelInput(sample: F32Tensor): F32Tensor {
    return sample;
  }

  /** The coefficients at visited timestep `t`. */
  coefficients(t: number): LdmDdimCoefficients {
    const i = this.steps.indexOf(t);
    if (i < 0)
      throw new InvalidArgumentError("t", `one of this run's timesteps (${this.steps.join(", ")})`, t);
    const ac = this.alphasCumprod;
    const aT = ac[t] ?? NaN;
    const next = this.steps[i + 1];
    const aPrev = next === undefined ? (ac[0] ?? NaN) : (ac[next] ?? NaN);
    const sigma = f32(this.eta * Math.sqrt(((1 - aPrev) / (1 - aT)) * (1 - aT / aPrev)));
    return { aT, aPrev, sigma, sqrtOneMinusAt: f32(Math.sqrt(f32(1 - aT))) };
  }

  step(
    modelOutputIn: F32Tensor,
    t: number,
    sampleIn: F32Tensor,
    options: { readonly generator?: NoiseGenerator; readonly varianceNoise?: F32Tensor } = {},
  ): StepOutput {
    const { modelOutput: e, sample: x } = checkStepTensors(modelOutputIn, sampleIn);
    const { aT, aPrev, sigma, sqrtOneMinusAt } = this.coefficients(t);
    const sqrtAt = f32(Math.sqrt(aT));
    const x0 = build(x.shape, (i) =>
      f32(f32((x.data[i] ?? 0) - f32(sqrtOneMinusAt * (e.data[i] ?? 0))) / sqrtAt),
    );
    const dirCoef = f32(Math.sqrt(f32(f32(1 - aPrev) - f32(sigma * sigma))));
    const x0Coef = f32(Math.sqrt(aPrev));
    const z =
      sigma > 0
        ? (options.varianceNoise ?? drawNoise(options.generator, x.shape, "LDM DDIM (eta > 0)"))
        : undefined;
    const prev = build(x.shape, (i) => {
      const v = f32(f32(x0Coef * (x0.data[i] ?? 0)) + f32(dirCoef * (e.data[i] ?? 0)));
      return z === undefined ? v : f32(v + f32(sigma * (z.data[i] ?? 0)));
    });
    return { prevSample: prev, predOriginalSample: x0 };
  }

  addNoise(original: F32Tensor, noise: F32Tensor, timesteps: readonly number[]): F32Tensor {
    for (const t of timesteps) checkTrainTimestep(t, this.alphasCumprod.length, "timesteps");
    return addNoiseWithAlphas(this.alphasCumprod, original, noise, timesteps);
  }
}
