/**
 * The scheduler contract shared by every sampler, modelled on diffusers' `SchedulerMixin`
 * (diffusers 0.26.3: src/diffusers/schedulers/scheduling_utils.py):
 *
 * ```ts
 * scheduler.setTimesteps(n);
 * let latents = noise; // unit Gaussian, then every element times scheduler.initNoiseSigma
 * for (const t of scheduler.timesteps) {
 *   const input = scheduler.scaleModelInput(latents, t);
 *   const eps = unet(input, t);
 *   latents = scheduler.step(eps, t, latents, { generator }).prevSample;
 * }
 * ```
 *
 * **Hidden state.** Like diffusers, a scheduler instance is the state of *one* denoising run: the
 * current step index (Euler, LMS, DPM-Solver), the model-output history (PNDM `ets`, LMS derivatives,
 * DPM-Solver `model_outputs`) and the PNDM counter live in the instance. `setTimesteps` resets all of
 * it, so call it at the start of every run, and never share one instance between concurrent runs
 * (make one scheduler per run with `fromConfig`). `step` must be called with the timesteps in the
 * order of `timesteps`; multistep schedulers assume consecutive calls.
 */
import type { HostTensor } from "../tensor.js";

/** A source of standard normal noise; `TorchGenerator` from `src/random/torch-generator.ts` is one. */
export interface NoiseGenerator {
  randn(shape: readonly number[]): HostTensor<"float32">;
}

/** Options every `step` accepts; schedulers add their own (DDIM `eta`, Euler `sChurn`, LMS `order`). */
export interface StepOptions {
  /**
   * Noise for stochastic steps: DDPM variance (t > 0), DDIM with eta > 0, Euler ancestral, SDE
   * variants of DPM-Solver, Euler with `sChurn` > 0. Required exactly when the step draws noise;
   * draws happen in the same order and shapes as diffusers' `randn_tensor` calls.
   */
  readonly generator?: NoiseGenerator;
}

export interface StepOutput {
  /** x_{t-1}: the sample to feed to the next step. */
  readonly prevSample: HostTensor<"float32">;
  /** The model's estimate of x_0, for schedulers whose diffusers `step` returns it. */
  readonly predOriginalSample?: HostTensor<"float32">;
  /**
   * LCM only (diffusers `LCMSchedulerOutput.denoised`): the consistency-model estimate of x_0,
   * c_out * x_0 + c_skip * sample, which the last step returns as its prevSample.
   */
  readonly denoised?: HostTensor<"float32">;
}

/** The diffusers class names we implement, verbatim. */
export type SchedulerClassName =
  | "DDPMScheduler"
  | "DDIMScheduler"
  | "PNDMScheduler"
  | "EulerDiscreteScheduler"
  | "EulerAncestralDiscreteScheduler"
  | "DPMSolverMultistepScheduler"
  | "UniPCMultistepScheduler"
  | "LMSDiscreteScheduler"
  | "DDIMInverseScheduler"
  | "LCMScheduler";

export interface Scheduler {
  readonly className: SchedulerClassName;
  /** How many model evaluations one step of the underlying solver needs (diffusers `order`). */
  readonly order: number;
  /** Training-time betas as diffusers builds them (float32). */
  readonly betas: Float32Array;
  /** Cumulative products of (1 - beta) (float32, like `torch.cumprod` on CPU). */
  readonly alphasCumprod: Float32Array;
  /**
   * The timesteps of the current run, in the order to visit them. Integers for DDPM/DDIM/PNDM/
   * DPM-Solver; float32 values (possibly fractional) for Euler, Euler ancestral and LMS. Empty until
   * `setTimesteps` is called.
   */
  readonly timesteps: readonly number[];
  /**
   * float32 noise levels of the run for the sigma-parameterised schedulers (Euler, Euler ancestral,
   * LMS, DPM-Solver, UniPC): one per timestep plus the final one. Absent for DDPM/DDIM/PNDM.
   */
  readonly sigmas?: Float32Array;
  /** `numInferenceSteps` given to the last `setTimesteps`, or undefined before the first call. */
  readonly numInferenceSteps: number | undefined;
  /** Standard deviation of the initial noise: multiply unit Gaussian noise by it. */
  readonly initNoiseSigma: number;
  /** Sets the timesteps of a run and resets all hidden state (step index, model-output history). */
  setTimesteps(numInferenceSteps: number): void;
  /** Scales the denoising model's input for timestep `t` (identity except in the Euler/LMS family). */
  scaleModelInput(sample: HostTensor<"float32">, t: number): HostTensor<"float32">;
  /** One reverse-diffusion step from `sample` at timestep `t`, given the model's output. */
  step(
    modelOutput: HostTensor<"float32">,
    t: number,
    sample: HostTensor<"float32">,
    options?: StepOptions,
  ): StepOutput;
  /**
   * Forward diffusion q(x_t | x_0): noises `original` to the given timesteps (one per batch element,
   * or a single one for the whole batch).
   */
  addNoise(
    original: HostTensor<"float32">,
    noise: HostTensor<"float32">,
    timesteps: readonly number[],
  ): HostTensor<"float32">;
}
