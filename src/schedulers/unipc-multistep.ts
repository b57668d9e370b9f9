/**
 * UniPCMultistepScheduler: the UniPC predictor-corrector sampler (Zhao et al. 2023), a common
 * default of Stable Diffusion front ends at 10-25 steps. Port of diffusers 0.26.3
 * src/diffusers/schedulers/scheduling_unipc_multistep.py (the formulas are in unipc-updates.ts).
 *
 * Each step converts the model output to x_0 (`predict_x0`, the default) or eps; first corrects
 * the sample the previous step predicted (UniC, with the new output, unless that step index is in
 * `disable_corrector`), then predicts the next sample (UniP). The order warms up from 1 and, with
 * `lower_order_final`, never exceeds the number of steps left. Timesteps are integers; sigmas are
 * interpolated at them (or Karras sigmas, with timesteps mapped back), and the run ends at
 * sigma(t = 0) (Karras: the last sigma repeated), not at 0 — as in diffusers 0.26.3.
 * State (reset by setTimesteps): step index, the last `solver_order` converted outputs with their
 * sigmas, the sample before the last predictor, the order of the last predictor.
 */
import { limitPredictedOriginal } from "./alpha-ops.js";
import type { UniPCMultistepSchedulerConfig } from "./config.js";
import { sigmaToAlphaSigma } from "./dpm-solver-updates.js";
import { predictedEpsilon, predictedOriginal } from "./prediction.js";
import type { StepOptions, StepOutput } from "./scheduler.js";
import { requireSchedule } from "./sigma-ops.js";
import { SigmaScheduler } from "./sigma-scheduler.js";
import { karrasSchedule, logSigmas, sigmasAtTimesteps, trainingSigmas } from "./sigmas.js";
import { checkNumInferenceSteps, multistepTimesteps } from "./spacing.js";
import { type F32Tensor, checkFloat32, checkSameShape } from "./tensor-ops.js";
import { type UniPCPoint, uniCorrector, uniPredictor } from "./unipc-updates.js";

interface Stored {
  readonly point: UniPCPoint;
  readonly output: F32Tensor;
}

export class UniPCMultistepScheduler extends SigmaScheduler<"UniPCMultistepScheduler"> {
  readonly initNoiseSigma = 1;
  /** Converted outputs of the last steps, oldest first (at most solver_order). */
  private outputs: Stored[] = [];
  private lowerOrderNums = 0;
  /** The sample the last predictor started from (the corrector's x), with its order. */
  private last: { readonly sample: F32Tensor; readonly order: number } | undefined;

  /** Builds from (part of) a config; missing fields take this class's diffusers defaults. */
  constructor(config: Partial<UniPCMultistepSchedulerConfig> = {}) {
    super("UniPCMultistepScheduler", config);
  }

  setTimesteps(numInferenceSteps: number): void {
    const c = this.config;
    const n = numInferenceSteps;
    const total = c.num_train_timesteps;
    checkNumInferenceSteps(n, total);
    let timesteps = multistepTimesteps(c.timestep_spacing, total, total, n, c.steps_offset);
    const train = trainingSigmas(this.alphasCumprod);
    let sigmas: number[];
    let sigmaLast: number;
    if (c.use_karras_sigmas) {
      ({ sigmas, timesteps } = karrasSchedule(train, logSigmas(train), n));
      sigmaLast = sigmas[sigmas.length - 1] ?? 0;
    } else {
      sigmas = sigmasAtTimesteps(timesteps, train);
      sigmaLast = train[0] ?? 0;
    }
    this.startRun(timesteps, Float32Array.from([...sigmas, sigmaLast]), timesteps.length);
    this.outputs = [];
    this.lowerOrderNums = 0;
    this.last = undefined;
  }

  scaleModelInput(sample: F32Tensor): F32Tensor {
    return sample;
  }

  /** The model output as the solver wants it: x_0 with `predict_x0` (thresholded if asked), else eps. */
  convertModelOutput(modelOutput: F32Tensor, sample: F32Tensor, sigma: number): F32Tensor {
    const c = this.config;
    checkSameShape(sample, modelOutput, "sample", "modelOutput");
    const level = sigmaToAlphaSigma(sigma);
    if (c.predict_x0)
      return limitPredictedOriginal(predictedOriginal(c.prediction_type, modelOutput, sample, level), c);
    return predictedEpsilon(c.prediction_type, modelOutput, sample, level);
  }

  private point(index: number): UniPCPoint {
    return sigmaToAlphaSigma(this.sigmaAt(index));
  }

  step(modelOutputIn: F32Tensor, t: number, sampleIn: F32Tensor, _options: StepOptions = {}): StepOutput {
    const c = this.config;
    requireSchedule(this.steps);
    let sample = checkFloat32(sampleIn, "sample");
    const modelOutput = checkFloat32(modelOutputIn, "modelOutput");
    const index = this.stepIndexFor(t, "last");
    const here = this.point(index);
    const converted = this.convertModelOutput(modelOutput, sample, this.sigmaAt(index));
    const solver = { predictX0: c.predict_x0, solverType: c.solver_type } as const;

    if (index > 0 && !c.disable_corrector.includes(index - 1) && this.last !== undefined) {
      // UniC: refine the sample the last predictor produced, using the output at that sample.
      const [m0, ...history] = [...this.outputs].reverse();
      if (m0 === undefined) throw new Error("UniPC: corrector without a stored output");
      sample = uniCorrector(
        {
          ...solver,
          target: here,
          from: m0.point,
          sample: this.last.sample,
          m0: m0.output,
          history: history.slice(0, this.last.order - 1),
        },
        converted,
        this.last.order,
      );
    }

    this.outputs = [...this.outputs, { point: here, output: converted }].slice(-c.solver_order);
    const left = this.steps.length - index;
    const order = Math.min(
      c.lower_order_final ? Math.min(c.solver_order, left) : c.solver_order,
      this.lowerOrderNums + 1,
    );
    this.last = { sample, order };
    const [, ...history] = [...this.outputs].reverse();
    const prevSample = uniPredictor(
      {
        ...solver,
        target: this.point(index + 1),
        from: here,
        sample,
        m0: converted,
        history: history.slice(0, order - 1),
      },
      order,
    );
    if (this.lowerOrderNums < c.solver_order) this.lowerOrderNums += 1;
    this.advancePast(index);
    return { prevSample };
  }

  /** x_t = alpha_t x_0 + sigma_t noise, with sigma looked up from the run's timesteps. */
  addNoise(original: F32Tensor, noise: F32Tensor, timesteps: readonly number[]): F32Tensor {
    return this.noiseAtRunLevels(original, noise, timesteps);
  }
}
