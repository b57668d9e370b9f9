/**
 * What every scheduler class holds: its validated config, the training tables built from it
 * (diffusers 0.26.3: the `__init__` of each scheduler) and the timesteps of the current run.
 * Subclasses add their family's conventions (alpha-bar-scheduler.ts, sigma-scheduler.ts) and the
 * algorithm itself.
 */
import { makeNoiseTables } from "./betas.js";
import { CONSTRUCTOR_PARSE, type SchedulerConfigMap, parseSchedulerConfig } from "./config.js";
import type { Scheduler, SchedulerClassName, StepOptions, StepOutput } from "./scheduler.js";
import type { F32Tensor } from "./tensor-ops.js";

export abstract class SchedulerBase<N extends SchedulerClassName> implements Scheduler {
  /** diffusers' class attribute: one model evaluation per step (multistep history is extra). */
  readonly order = 1;
  readonly config: SchedulerConfigMap[N];
  readonly betas: Float32Array;
  readonly alphasCumprod: Float32Array;
  protected steps: number[] = [];
  protected inferenceSteps: number | undefined;

  /** Parses (part of) a config for `className`; missing fields take that class's diffusers defaults. */
  protected constructor(
    readonly className: N,
    config: Partial<SchedulerConfigMap[N]>,
  ) {
    this.config = parseSchedulerConfig(className, config, CONSTRUCTOR_PARSE).config;
    const tables = makeNoiseTables(this.config);
    this.betas = tables.betas;
    this.alphasCumprod = tables.alphasCumprod;
  }

  get timesteps(): readonly number[] {
    return this.steps;
  }

  get numInferenceSteps(): number | undefined {
    return this.inferenceSteps;
  }

  abstract readonly initNoiseSigma: number;
  abstract setTimesteps(numInferenceSteps: number): void;
  abstract scaleModelInput(sample: F32Tensor, t: number): F32Tensor;
  abstract step(modelOutput: F32Tensor, t: number, sample: F32Tensor, options?: StepOptions): StepOutput;
  abstract addNoise(original: F32Tensor, noise: F32Tensor, timesteps: readonly number[]): F32Tensor;
}
