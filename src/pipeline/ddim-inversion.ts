/**
 * DDIM inversion: clean latents -> the noise that deterministic DDIM turns back into them, and the
 * DDIM reconstruction from given noisy latents. The loop of diffusers 0.26.3
 * StableDiffusionDiffEditPipeline.invert (src/diffusers/pipelines/stable_diffusion_diffedit/
 * pipeline_stable_diffusion_diffedit.py, num_reg_steps = 0, inpaint_strength = 1) and of
 * Tune-A-Video's `ddim_inversion`, over the component interfaces in ./types.ts:
 *
 *   for t in scheduler.timesteps:                     (ascending for DDIMInverseScheduler)
 *     eps = unet(scale_model_input(x, t), t, embeds)  ([uncond, cond] batch when guidance > 1)
 *     eps = u + g (c - u)                             (guidance > 1)
 *     x = scheduler.step(eps, t, x).prev_sample
 *
 * The video engine inverts AnimateDiff / Tune-A-Video frames with `invertLatents`; latents may hold
 * any batch (frames), one prompt embedding is repeated over it.
 */
import { InvalidArgumentError, throwIfAborted } from "../errors.js";
import type { LongTaskOptions } from "../progress.js";
import type { NoiseGenerator, Scheduler, StepOutput } from "../schedulers/scheduler.js";
import { type HostTensor, shapeToString, tensor } from "../tensor.js";
import { chunkBatch, classifierFreeGuidance, concatBatch } from "./guidance.js";
import type { DenoisingUNet } from "./types.js";

export interface DDIMInversionComponents {
  readonly unet: DenoisingUNet;
  /**
   * A fresh scheduler for this run (schedulers hold per-run state): a DDIMInverseScheduler
   * (`fromConfig("ddim_inverse", config)`) for `invertLatents`, any scheduler for `reconstructLatents`.
   */
  readonly scheduler: Scheduler;
}

export interface DDIMLoopOptions extends LongTaskOptions {
  /** [B, C, h, w] latents to start from (invertLatents: clean, already times the VAE scaling_factor). */
  readonly latents: HostTensor<"float32">;
  /** Text embeddings [B or 1, L, D] (one is repeated over the batch). */
  readonly promptEmbeds: HostTensor<"float32">;
  /** (required when guidanceScale > 1) unconditional embeddings [B or 1, L, D]. */
  readonly negativePromptEmbeds?: HostTensor<"float32">;
  /** (optional, default 50) */
  readonly numInferenceSteps?: number;
  /** (optional, default 1) classifier-free guidance scale; <= 1 runs the conditional batch only. */
  readonly guidanceScale?: number;
  /**
   * (optional, default 1) DiffEdit's `inpaint_strength`, in [0, 1]: only the first
   * floor(N * strength) of the N steps are taken. invertLatents keeps the lowest inverse timesteps
   * (`get_inverse_timesteps`: timesteps[:-t_start]), reconstructLatents the last forward ones
   * (`get_timesteps`: timesteps[t_start:]), t_start = N - floor(N * strength).
   */
  readonly strength?: number;
  /** (optional) DDIM eta for reconstructLatents' steps (the inverse scheduler takes none). */
  readonly eta?: number;
  /** (optional) noise for random reconstruction steps (eta > 0, ancestral schedulers). */
  readonly generator?: NoiseGenerator;
  /**
   * (optional) receives each step's tensors: `stepNN.timestep` (int64 scalar), `stepNN.noise_pred_text`
   * (+ `stepNN.noise_pred_uncond` with guidance: the UNet halves), `stepNN.pred_original_sample`,
   * `stepNN.latents_out`.
   */
  readonly trace?: (name: string, value: HostTensor) => void;
}

export interface DDIMLoopResult {
  /** The latents after the last step. */
  readonly latents: HostTensor<"float32">;
  /** The latents after every step, in order (DiffEdit's inverted_latents; the last is `latents`). */
  readonly steps: readonly HostTensor<"float32">[];
  /** The timesteps visited. */
  readonly timesteps: readonly number[];
}

/** [n, ...] from [1, ...] by repetition; a tensor of batch n as it is. */
function repeatBatch(t: HostTensor<"float32">, n: number, name: string): HostTensor<"float32"> {
  const batch = t.shape[0];
  if (batch === n) return t;
  if (batch === 1) return concatBatch(Array.from({ length: n }, () => t));
  throw new InvalidArgumentError(name, `a batch of 1 or ${n} (the latents' batch)`, shapeToString(t.shape));
}

function checkFloat3d(t: HostTensor, name: string): void {
  if (t.dtype !== "float32" || t.shape.length !== 3) {
    throw new InvalidArgumentError(name, "float32 [batch, tokens, dim] embeddings", shapeToString(t.shape));
  }
}

interface PreparedLoop {
  readonly latents: HostTensor<"float32">;
  /** [uncond, cond] with guidance, else cond; each repeated to the latents' batch. */
  readonly embeds: HostTensor<"float32">;
  readonly guidance: number;
  readonly steps: number;
}

function prepare(o: DDIMLoopOptions): PreparedLoop {
  const latents = o.latents;
  if (latents.dtype !== "float32" || latents.shape.length !== 4) {
    throw new InvalidArgumentError(
      "latents",
      "float32 [batch, channels, h, w]",
      shapeToString(latents.shape),
    );
  }
  const batch = latents.shape[0] ?? 0;
  const steps = o.numInferenceSteps ?? 50;
  if (!Number.isInteger(steps) || steps < 1)
    throw new InvalidArgumentError("numInferenceSteps", "a positive integer", steps);
  const guidance = o.guidanceScale ?? 1;
  if (!Number.isFinite(guidance))
    throw new InvalidArgumentError("guidanceScale", "a finite number", guidance);
  checkFloat3d(o.promptEmbeds, "promptEmbeds");
  const cond = repeatBatch(o.promptEmbeds, batch, "promptEmbeds");
  if (guidance <= 1) return { latents, embeds: cond, guidance, steps };
  const negative = o.negativePromptEmbeds;
  if (negative === undefined) {
    throw new InvalidArgumentError("negativePromptEmbeds", "embeddings when guidanceScale > 1", undefined, {
      hint: "encode the negative (or empty) prompt, or pass guidanceScale 1",
    });
  }
  checkFloat3d(negative, "negativePromptEmbeds");
  const uncond = repeatBatch(negative, batch, "negativePromptEmbeds");
  if (uncond.shape.slice(1).join() !== cond.shape.slice(1).join()) {
    throw new InvalidArgumentError(
      "negativePromptEmbeds",
      `shape ${shapeToString(cond.shape)} (that of promptEmbeds)`,
      shapeToString(uncond.shape),
    );
  }
  return { latents, embeds: concatBatch([uncond, cond]), guidance, steps };
}

/**
 * The timesteps a strength keeps (diffusers' DiffEdit `get_inverse_timesteps` / `get_timesteps`):
 * t_start = N - min(floor(N * strength), N) steps are dropped from the noisy end.
 */
function strengthTimesteps(
  all: readonly number[],
  steps: number,
  strength: number,
  direction: "inverse" | "forward",
): number[] {
  if (!(strength >= 0 && strength <= 1))
    throw new InvalidArgumentError("strength", "a number in [0, 1]", strength);
  const tStart = Math.max(steps - Math.min(Math.trunc(steps * strength), steps), 0);
  if (tStart === 0) return [...all];
  return direction === "inverse" ? all.slice(0, -tStart) : all.slice(tStart);
}

/** The guided loop both directions share; `task` names it in progress events and cancellation. */
async function runLoop(
  c: DDIMInversionComponents,
  o: DDIMLoopOptions,
  task: string,
  direction: "inverse" | "forward",
): Promise<DDIMLoopResult> {
  const trace = o.trace ?? (() => undefined);
  const p = prepare(o);
  const cfg = p.guidance > 1;
  c.scheduler.setTimesteps(p.steps);
  const timesteps = strengthTimesteps(c.scheduler.timesteps, p.steps, o.strength ?? 1, direction);
  let latents = p.latents;
  const visited: HostTensor<"float32">[] = [];
  const batch = latents.shape[0] ?? 0;

  o.onProgress?.({ status: "start", task, total: timesteps.length });
  for (const [i, t] of timesteps.entries()) {
    throwIfAborted(o.signal, task);
    const tag = `step${String(i).padStart(2, "0")}`;
    trace(`${tag}.timestep`, tensor("int64", [], BigInt64Array.of(BigInt(Math.round(t)))));
    const scaled = c.scheduler.scaleModelInput(latents, t);
    const input = cfg ? concatBatch([scaled, scaled]) : scaled;
    const n = input.shape[0] ?? 0;
    const noise = await c.unet.forward({
      sample: input,
      timestep: tensor("float32", [n], new Float32Array(n).fill(t)),
      encoderHiddenStates: p.embeds,
    });
    throwIfAborted(o.signal, task);
    let eps = noise;
    if (cfg) {
      const [uncond, cond] = chunkBatch(noise, 2);
      if (uncond === undefined || cond === undefined) throw new Error("unreachable: chunkBatch(2)");
      trace(`${tag}.noise_pred_uncond`, uncond);
      trace(`${tag}.noise_pred_text`, cond);
      eps = classifierFreeGuidance(uncond, cond, p.guidance);
    } else {
      trace(`${tag}.noise_pred_text`, noise);
    }
    if (eps.shape[0] !== batch) {
      throw new InvalidArgumentError("unet output", `batch ${batch}`, shapeToString(eps.shape));
    }
    const out: StepOutput = c.scheduler.step(eps, t, latents, {
      ...(o.eta === undefined ? {} : { eta: o.eta }),
      ...(o.generator === undefined ? {} : { generator: o.generator }),
    });
    if (out.predOriginalSample !== undefined) trace(`${tag}.pred_original_sample`, out.predOriginalSample);
    latents = out.prevSample;
    trace(`${tag}.latents_out`, latents);
    visited.push(latents);
    o.onProgress?.({ status: "progress", task, done: i + 1, total: timesteps.length });
  }
  o.onProgress?.({ status: "done", task });
  return { latents, steps: visited, timesteps };
}

/**
 * Inverts clean latents to noise with a DDIMInverseScheduler (timesteps ascending; each step is
 * evaluated at its target timestep). Returns the noisy latents at the last timestep and every step's.
 */
export async function invertLatents(
  components: DDIMInversionComponents,
  options: DDIMLoopOptions,
): Promise<DDIMLoopResult> {
  if (components.scheduler.className !== "DDIMInverseScheduler") {
    throw new InvalidArgumentError(
      "components.scheduler",
      'a DDIMInverseScheduler (fromConfig("ddim_inverse", config))',
      components.scheduler.className,
      { hint: "a forward scheduler would denoise the latents instead of inverting them" },
    );
  }
  if ((options.eta !== undefined && options.eta !== 0) || options.generator !== undefined) {
    throw new InvalidArgumentError(
      options.generator === undefined ? "eta" : "generator",
      "none: DDIM inversion is deterministic",
      options.generator === undefined ? options.eta : "a generator",
    );
  }
  return runLoop(components, options, "ddim inversion", "inverse");
}

/**
 * Denoises given noisy latents (e.g. `invertLatents`' result) with a forward scheduler, without
 * scaling them by init_noise_sigma: the reconstruction half of an inversion round trip. Random steps
 * (eta > 0, ancestral schedulers) draw from `options.generator`.
 */
export async function reconstructLatents(
  components: DDIMInversionComponents,
  options: DDIMLoopOptions,
): Promise<DDIMLoopResult> {
  if (components.scheduler.className === "DDIMInverseScheduler") {
    throw new InvalidArgumentError(
      "components.scheduler",
      "a forward scheduler (e.g. DDIMScheduler)",
      components.scheduler.className,
    );
  }
  return runLoop(components, options, "ddim reconstruction", "forward");
}
