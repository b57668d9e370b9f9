/**
 * PNDMScheduler: pseudo numerical methods of Liu et al. 2022 ("Pseudo Numerical Methods for
 * Diffusion Models on Manifolds"): a few Runge-Kutta (PRK) warm-up steps, then linear multistep
 * (PLMS, Adams-Bashforth up to 4th order) on the DDIM transfer x_{t'} = phi(x_t, eps, t, t'). Port of
 * diffusers 0.26.3 src/diffusers/schedulers/scheduling_pndm.py.
 *
 * Transfer (a = alpha_bar, a_{t'} = final alpha for t' < 0):
 *   x_{t'} = sqrt(a_{t'} / a_t) x_t - (a_{t'} - a_t) eps / (a_t sqrt(1 - a_{t'}) + sqrt(a_t (1 - a_t) a_{t'}))
 * PLMS eps: e1; (e1 + e0)/2 (the repeated second timestep); (3e1 - e2)/2; (23e1 - 16e2 + 5e3)/12;
 * (55e1 - 59e2 + 37e3 - 9e4)/24.
 * With `skip_prk_steps` the run has N + 1 steps and the second timestep is visited twice.
 *
 * State (reset by setTimesteps): `counter` (steps taken), `ets` (last four eps), the PRK accumulator
 * and the sample held across the repeated timestep / the four RK stages.
 */
import { InvalidArgumentError } from "../errors.js";
import { AlphaBarScheduler } from "./alpha-bar-scheduler.js";
import { checkTrainTimestep } from "./alpha-ops.js";
import type { PNDMSchedulerConfig } from "./config.js";
import { alphaBarLevel, predictedEpsilon } from "./prediction.js";
import type { StepOptions, StepOutput } from "./scheduler.js";
import { type F32Tensor, build, checkStepTensors } from "./tensor-ops.js";

const f32 = Math.fround;

export class PNDMScheduler extends AlphaBarScheduler<"PNDMScheduler"> {
  readonly pndmOrder = 4;
  private prkTimesteps: number[] = [];
  private counter = 0;
  private ets: F32Tensor[] = [];
  private curModelOutput: F32Tensor | undefined;
  private curSample: F32Tensor | undefined;

  /** Builds from (part of) a config; missing fields take PNDMScheduler's diffusers defaults. */
  constructor(config: Partial<PNDMSchedulerConfig> = {}) {
    super("PNDMScheduler", config);
  }

  override setTimesteps(numInferenceSteps: number): void {
    const c = this.config;
    const n = numInferenceSteps;
    const base = this.spacedTimesteps(n).reverse();
    let prk: number[] = [];
    let plms: number[];
    if (c.skip_prk_steps) {
      plms = [...base.slice(0, -1), ...base.slice(-2, -1), ...base.slice(-1)].reverse();
    } else {
      if (n < this.pndmOrder) {
        throw new InvalidArgumentError(
          "numInferenceSteps",
          `at least ${this.pndmOrder} with skip_prk_steps=false`,
          n,
        );
      }
      const half = Math.floor(this.stepRatio(n) / 2);
      const stages = base.slice(-this.pndmOrder).flatMap((t) => [t, t + half]);
      prk = stages
        .slice(0, -1)
        .flatMap((t) => [t, t])
        .slice(1, -1)
        .reverse();
      plms = base.slice(0, -3).reverse();
    }
    this.prkTimesteps = prk;
    this.steps = [...prk, ...plms];
    this.inferenceSteps = n;
    this.counter = 0;
    this.ets = [];
    this.curModelOutput = undefined;
    this.curSample = undefined;
  }

  step(modelOutputIn: F32Tensor, t: number, sampleIn: F32Tensor, _options: StepOptions = {}): StepOutput {
    const n = this.requireInferenceSteps();
    const { modelOutput, sample } = checkStepTensors(modelOutputIn, sampleIn);
    checkTrainTimestep(t, this.config.num_train_timesteps);
    const prevSample =
      this.counter < this.prkTimesteps.length && !this.config.skip_prk_steps
        ? this.stepPrk(modelOutput, t, sample, n)
        : this.stepPlms(modelOutput, t, sample, n);
    this.counter += 1;
    return { prevSample };
  }

  private stepPrk(modelOutput: F32Tensor, t: number, sample: F32Tensor, n: number): F32Tensor {
    const ratio = this.stepRatio(n);
    const prevT = t - (this.counter % 2 === 1 ? 0 : Math.floor(ratio / 2));
    const stageT = this.prkTimesteps[Math.floor(this.counter / 4) * 4] ?? t;
    const stage = this.counter % 4;
    const sixth = f32(1 / 6);
    const third = f32(1 / 3);
    const acc = this.curModelOutput;
    const accumulate = (w: number): F32Tensor =>
      build(modelOutput.shape, (i) => f32((acc?.data[i] ?? 0) + f32(w * (modelOutput.data[i] ?? 0))));
    let eps = modelOutput;
    if (stage === 0) {
      this.curModelOutput = accumulate(sixth);
      this.ets.push(modelOutput);
      this.curSample = sample;
    } else if (stage === 1 || stage === 2) {
      this.curModelOutput = accumulate(third);
    } else {
      eps = accumulate(sixth);
      this.curModelOutput = undefined;
    }
    return this.prevSampleFrom(this.curSample ?? sample, stageT, prevT, eps);
  }

  private stepPlms(modelOutput: F32Tensor, tIn: number, sampleIn: F32Tensor, n: number): F32Tensor {
    if (!this.config.skip_prk_steps && this.ets.length < 3) {
      throw new InvalidArgumentError(
        "step order",
        "the PRK warm-up steps before PLMS steps",
        `${this.ets.length} stored outputs`,
        {
          hint: "visit scheduler.timesteps in order from the start (see scheduling_pndm.py)",
        },
      );
    }
    const ratio = this.stepRatio(n);
    let t = tIn;
    let sample = sampleIn;
    let prevT = t - ratio;
    if (this.counter !== 1) {
      this.ets = [...this.ets.slice(-3), modelOutput];
    } else {
      prevT = t;
      t = t + ratio;
    }
    const e = (k: number): Float32Array => this.ets[this.ets.length - k]?.data ?? new Float32Array(0);
    const m = modelOutput.data;
    let eps: F32Tensor;
    if (this.ets.length === 1 && this.counter === 0) {
      eps = modelOutput;
      this.curSample = sample;
    } else if (this.ets.length === 1 && this.counter === 1) {
      const e1 = e(1);
      eps = build(modelOutput.shape, (i) => f32(f32((m[i] ?? 0) + (e1[i] ?? 0)) / 2));
      sample = this.curSample ?? sample;
      this.curSample = undefined;
    } else if (this.ets.length === 2) {
      const [e1, e2] = [e(1), e(2)];
      eps = build(modelOutput.shape, (i) => f32(f32(f32(3 * (e1[i] ?? 0)) - (e2[i] ?? 0)) / 2));
    } else if (this.ets.length === 3) {
      const [e1, e2, e3] = [e(1), e(2), e(3)];
      eps = build(modelOutput.shape, (i) =>
        f32(f32(f32(f32(23 * (e1[i] ?? 0)) - f32(16 * (e2[i] ?? 0))) + f32(5 * (e3[i] ?? 0))) / 12),
      );
    } else {
      const [e1, e2, e3, e4] = [e(1), e(2), e(3), e(4)];
      const w = f32(1 / 24);
      eps = build(modelOutput.shape, (i) => {
        const s = f32(
          f32(f32(f32(55 * (e1[i] ?? 0)) - f32(59 * (e2[i] ?? 0))) + f32(37 * (e3[i] ?? 0))) -
            f32(9 * (e4[i] ?? 0)),
        );
        return f32(w * s);
      });
    }
    return this.prevSampleFrom(sample, t, prevT, eps);
  }

  /** The transfer phi(x_t, eps, t, t') of the module docs (eq. 9 of the PNDM paper). */
  private prevSampleFrom(sample: F32Tensor, t: number, prevT: number, modelOutput: F32Tensor): F32Tensor {
    const a = this.alphaProdAt(t);
    const aPrev = this.alphaProdAt(prevT);
    const betaProd = f32(1 - a);
    const betaProdPrev = f32(1 - aPrev);
    const x = sample.data;
    const eps = predictedEpsilon(this.config.prediction_type, modelOutput, sample, alphaBarLevel(a));
    const sampleCoef = f32(Math.sqrt(f32(aPrev / a)));
    const denom = f32(f32(a * f32(Math.sqrt(betaProdPrev))) + f32(Math.sqrt(f32(f32(a * betaProd) * aPrev))));
    const diff = f32(aPrev - a);
    const e = eps.data;
    return build(sample.shape, (i) =>
      f32(f32(sampleCoef * (x[i] ?? 0)) - f32(f32(diff * (e[i] ?? 0)) / denom)),
    );
  }
}
