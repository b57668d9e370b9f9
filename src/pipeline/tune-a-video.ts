/**
 * Tune-A-Video generation (showlab/Tune-A-Video `tuneavideo/util.py: ddim_inversion`,
 * `tuneavideo/pipelines/pipeline_tuneavideo.py`): DDIM inversion of the source clip's latents with
 * the tuned model and the empty prompt (conditional branch only, no guidance), then DDIM sampling of
 * all frames jointly from the inverted z_T with the edited prompt and classifier-free guidance.
 *
 * The inversion is the release's own loop, not diffusers' DDIMInverseScheduler:
 *   for i in 0..N-1: t = timesteps[N-1-i]; eps = unet(x, t, emb(""))
 *     t_prev = t - T//N;  a = acp[t_prev] if t_prev >= 0 else final_alpha_cumprod;  a_next = acp[t]
 *     x = sqrt(a_next) * (x - sqrt(1-a) eps) / sqrt(a) + sqrt(1-a_next) eps
 * with diffusers 0.11.1's DDIMScheduler timesteps, always "leading" (i * (T//N) + steps_offset).
 */
import { join } from "node:path";
import { InvalidArgumentError, throwIfAborted } from "../errors.js";
import { readJsonFile } from "../config/parse.js";
import type { Image } from "../image.js";
import { CLIPTextModel } from "../models/clip/clip-text-model.js";
import { loadUNet3DConditionModel } from "../models/unet3d/runner.js";
import { AutoencoderKL } from "../models/vae/autoencoder-kl.js";
import type { LongTaskOptions } from "../progress.js";
import { TorchGenerator } from "../random/torch-generator.js";
import { fromConfig } from "../schedulers/registry.js";
import type { StepOptions } from "../schedulers/scheduler.js";
import { type HostTensor, tensor, toFloat32 } from "../tensor.js";
import { CLIPTokenizer } from "../tokenizer/clip-tokenizer.js";
import { readAllFrames } from "../video/read.js";
import { videoTensor } from "./animatediff.js";
import { readPipelineFolder } from "./components.js";
import { chunkBatch, classifierFreeGuidance, concatBatch } from "./guidance.js";
import { denormalize, tensorToImages } from "./images.js";

/** One UNet call on video latents [B, C, F, h, w] with one text embedding per video. */
export type VideoUNetCall = (
  latents: HostTensor<"float32">,
  timestep: number,
  context: HostTensor<"float32">,
) => Promise<HostTensor<"float32">>;

/** diffusers 0.11.1 DDIMScheduler.set_timesteps: ("leading") descending. */
export function ddimLeadingTimesteps(steps: number, numTrainTimesteps = 1000, stepsOffset = 0): number[] {
  if (!Number.isInteger(steps) || steps < 1 || steps > numTrainTimesteps) {
    throw new InvalidArgumentError("numInferenceSteps", `an integer in [1, ${numTrainTimesteps}]`, steps);
  }
  const ratio = Math.floor(numTrainTimesteps / steps);
  return Array.from({ length: steps }, (_, i) => (steps - 1 - i) * ratio + stepsOffset);
}

export interface TuneAVideoInversionOptions extends LongTaskOptions {
  readonly unet: VideoUNetCall;
  /** Clean latents [B, C, F, h, w] (already times the VAE scaling_factor). */
  readonly latents: HostTensor<"float32">;
  /** The empty prompt's embedding [B or 1, L, D]. */
  readonly context: HostTensor<"float32">;
  /** The scheduler's alphas_cumprod (float32). */
  readonly alphasCumprod: Float32Array;
  /** alphas_cumprod[0], or 1 with set_alpha_to_one. */
  readonly finalAlphaCumprod: number;
  readonly numInvSteps: number;
  /** (optional, default 1000) */
  readonly numTrainTimesteps?: number;
  /** (optional, default 0) scheduler steps_offset. */
  readonly stepsOffset?: number;
}

/** The release's ddim_inversion: every latent, the input first and z_T last (N+1 tensors). */
export async function tuneAVideoDDIMInversion(
  options: TuneAVideoInversionOptions,
): Promise<HostTensor<"float32">[]> {
  const T = options.numTrainTimesteps ?? 1000;
  const timesteps = ddimLeadingTimesteps(options.numInvSteps, T, options.stepsOffset ?? 0);
  const ratio = Math.floor(T / options.numInvSteps);
  const f = Math.fround;
  const out = [options.latents];
  let x = options.latents;
  for (let i = 0; i < timesteps.length; i++) {
    throwIfAborted(options.signal, "Tune-A-Video DDIM inversion");
    const t = timesteps[timesteps.length - 1 - i] ?? 0;
    const eps = await options.unet(x, t, options.context);
    const tPrev = Math.min(t - ratio, T - 1);
    const a = tPrev >= 0 ? (options.alphasCumprod[tPrev] ?? 1) : options.finalAlphaCumprod;
    const aNext = options.alphasCumprod[t] ?? 1;
    const sa = f(Math.sqrt(a));
    const sb = f(Math.sqrt(f(1 - a)));
    const saNext = f(Math.sqrt(aNext));
    const sbNext = f(Math.sqrt(f(1 - aNext)));
    const next = new Float32Array(x.data.length);
    for (let k = 0; k < next.length; k++) {
      const e = eps.data[k] ?? 0;
      const x0 = f(f((x.data[k] ?? 0) - f(sb * e)) / sa);
      next[k] = f(f(saNext * x0) + f(sbNext * e));
    }
    x = tensor("float32", x.shape, next);
    out.push(x);
    options.onProgress?.({
      status: "progress",
      task: "ddim inversion",
      done: i + 1,
      total: timesteps.length,
    });
  }
  return out;
}

/** What `tuneAVideo` (src/train/tune-a-video.ts) records in `<out>/tune_a_video.json`. */
interface TuningRecord {
  readonly video?: string;
  readonly n_sample_frames?: number;
  readonly sample_start_idx?: number;
  readonly sample_frame_rate?: number;
  readonly width?: number;
  readonly height?: number;
}

export interface TuneAVideoGenerateOptions extends LongTaskOptions {
  /** A tuned folder (`steadyframe tune --out`, or the release's output_dir with unet/ in its layout). */
  readonly tuned: string;
  /** (optional) the base diffusers folder for components the tuned folder lacks (tokenizer, text_encoder, vae, scheduler). */
  readonly model?: string;
  /** The edited prompt. */
  readonly prompt: string;
  /** (optional, default "") the unconditional prompt of classifier-free guidance. */
  readonly negativePrompt?: string;
  /** (optional, default the clip recorded in tune_a_video.json) the source clip to invert. */
  readonly video?: string;
  /** (optional, default tune_a_video.json's, else 24 / 0 / 2) frames, first frame, stride, as in tuning. */
  readonly frames?: number;
  readonly sampleStartIdx?: number;
  readonly sampleFrameRate?: number;
  /** (optional, default tune_a_video.json's, else 512) */
  readonly width?: number;
  readonly height?: number;
  /** (optional, default 50) DDIM sampling steps. */
  readonly numInferenceSteps?: number;
  /** (optional, default 12.5, the release's validation_data.guidance_scale) */
  readonly guidanceScale?: number;
  /** (optional, default true) start from the DDIM inversion of the clip; false = seeded noise. */
  readonly useInvLatent?: boolean;
  /** (optional, default numInferenceSteps) DDIM inversion steps (num_inv_steps). */
  readonly numInvSteps?: number;
  /** (optional, default 0) seed of the starting noise when useInvLatent is false. */
  readonly seed?: number;
  /** (optional, default 0) DDIM eta. */
  readonly eta?: number;
}

export interface TuneAVideoGenerateResult {
  /** The generated frames (RGB). */
  readonly frames: readonly Image[];
  /** Final latents [1, C, F, h, w]. */
  readonly latents: HostTensor<"float32">;
  /** The inverted z_T the sampling started from (undefined with useInvLatent false). */
  readonly invertedLatents?: HostTensor<"float32">;
}

/** [1, C, F, h, w] <-> [F, C, h, w]. */
function swap01(
  t: HostTensor<"float32">,
  a: number,
  b: number,
  rest: readonly number[],
): HostTensor<"float32"> {
  const inner = rest.reduce((p, q) => p * q, 1);
  const out = new Float32Array(t.data.length);
  for (let i = 0; i < a; i++)
    for (let j = 0; j < b; j++)
      out.set(t.data.subarray((i * b + j) * inner, (i * b + j + 1) * inner), (j * a + i) * inner);
  return tensor("float32", [b, a, ...rest], out);
}

function positive(name: string, v: number, integer = true): number {
  if (!(Number.isFinite(v) && v > 0 && (!integer || Number.isInteger(v))))
    throw new InvalidArgumentError(name, integer ? "a positive integer" : "a positive number", v);
  return v;
}

/**
 * Tune-A-Video inference: DDIM inversion of the source clip with the tuned model and the empty
 * prompt, then DDIM sampling of all frames jointly with the edited prompt and classifier-free
 * guidance (the release's validation: guidance 12.5, 50 steps, use_inv_latent, num_inv_steps 50).
 * The clip's latents are the VAE posterior means (the release inverts a posterior sample).
 */
export async function generateTuneAVideo(
  options: TuneAVideoGenerateOptions,
): Promise<TuneAVideoGenerateResult> {
  const tunedFolder = await readPipelineFolder(options.tuned, { requireWeights: false }).catch(
    () => undefined,
  );
  const baseFolder =
    options.model === undefined
      ? undefined
      : await readPipelineFolder(options.model, { requireWeights: false });
  const dirOf = (name: "vae" | "text_encoder" | "tokenizer" | "scheduler"): string => {
    const c = tunedFolder?.components.get(name) ?? baseFolder?.components.get(name);
    if (!c) {
      throw new InvalidArgumentError("model", `a pipeline folder with a ${name} component`, options.model, {
        hint: `${options.tuned} has no ${name}/: pass the base model it was tuned from`,
      });
    }
    return c.dir;
  };
  const recordPath = join(options.tuned, "tune_a_video.json");
  const record = ((await readJsonFile(recordPath, "tuning record").catch(() => ({}))) ?? {}) as TuningRecord;
  const video = options.video ?? record.video;
  if (video === undefined) {
    throw new InvalidArgumentError("video", "the source clip to invert", undefined, {
      hint: `${recordPath} names none: give the clip the model was tuned on`,
    });
  }
  const frames = positive("frames", options.frames ?? record.n_sample_frames ?? 24);
  const stride = positive("sampleFrameRate", options.sampleFrameRate ?? record.sample_frame_rate ?? 2);
  const start = options.sampleStartIdx ?? record.sample_start_idx ?? 0;
  const width = positive("width", options.width ?? record.width ?? 512);
  const height = positive("height", options.height ?? record.height ?? 512);
  const steps = positive("numInferenceSteps", options.numInferenceSteps ?? 50);
  const invSteps = positive("numInvSteps", options.numInvSteps ?? steps);
  const guidance = options.guidanceScale ?? 12.5;
  const signal = options.signal;
  const runOptions = signal ? { signal } : {};

  const schedulerPath = join(dirOf("scheduler"), "scheduler_config.json");
  const schedulerJson = (await readJsonFile(schedulerPath, "scheduler config")) as Record<string, unknown>;
  // diffusers 0.11.1 (the release) has no timestep_spacing (always "leading") and no zero-SNR rescale.
  const ddimConfig = { ...schedulerJson, timestep_spacing: "leading", rescale_betas_zero_snr: false };
  const scheduler = fromConfig("DDIMScheduler", ddimConfig, { file: schedulerPath });

  const clip = await readAllFrames(video, {
    start,
    stride,
    maxFrames: frames,
    resize: { width, height },
    ...runOptions,
  });
  if (clip.length < frames) {
    throw new InvalidArgumentError(
      "video",
      `at least ${frames} frames from frame ${start} every ${stride}`,
      clip.length,
      {
        hint: "lower --frames or give the clip the model was tuned on",
      },
    );
  }
  const tokenizer = await CLIPTokenizer.fromPretrained(dirOf("tokenizer"));
  const textEncoder = await CLIPTextModel.load(dirOf("text_encoder"));
  let cond: HostTensor<"float32">;
  let uncond: HostTensor<"float32">;
  let empty: HostTensor<"float32">;
  try {
    const embed = async (text: string): Promise<HostTensor<"float32">> =>
      toFloat32((await textEncoder.encode(tokenizer.encodeBatch([text]))).promptEmbeds);
    cond = await embed(options.prompt);
    uncond = await embed(options.negativePrompt ?? "");
    empty = options.negativePrompt === undefined || options.negativePrompt === "" ? uncond : await embed("");
  } finally {
    await textEncoder.release();
  }
  const vae = await AutoencoderKL.load(dirOf("vae"), { compile: "first-use" });
  const unet = await loadUNet3DConditionModel(options.tuned, { frames });
  try {
    const dist = await vae.encode(videoTensor(clip), runOptions);
    const mean = toFloat32(dist.mean);
    const [f = 0, c = 0, h = 0, w = 0] = mean.shape;
    const clean = swap01(
      tensor(
        "float32",
        mean.shape,
        Float32Array.from(mean.data, (v) => Math.fround(v * vae.scalingFactor)),
      ),
      f,
      c,
      [h, w],
    );
    const latentShape = [1, c, f, h, w];
    const call: VideoUNetCall = (x, t, context) =>
      unet.forward({ sample: x, timestep: t, encoderHiddenStates: context }, runOptions);
    let latents: HostTensor<"float32">;
    let inverted: HostTensor<"float32"> | undefined;
    if (options.useInvLatent ?? true) {
      const all = await tuneAVideoDDIMInversion({
        unet: call,
        latents: tensor("float32", latentShape, clean.data),
        context: empty,
        alphasCumprod: scheduler.alphasCumprod,
        finalAlphaCumprod: schedulerJson["set_alpha_to_one"] === true ? 1 : (scheduler.alphasCumprod[0] ?? 1),
        numInvSteps: invSteps,
        numTrainTimesteps: scheduler.alphasCumprod.length,
        stepsOffset: typeof schedulerJson["steps_offset"] === "number" ? schedulerJson["steps_offset"] : 0,
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        ...runOptions,
      });
      inverted = all[all.length - 1] ?? clean;
      latents = inverted;
    } else {
      latents = new TorchGenerator(options.seed ?? 0).randn(latentShape);
    }
    scheduler.setTimesteps(steps);
    const context = concatBatch([uncond, cond]);
    const total = scheduler.timesteps.length;
    for (const [i, t] of scheduler.timesteps.entries()) {
      throwIfAborted(signal, "Tune-A-Video sampling");
      const input = scheduler.scaleModelInput(latents, t);
      const pred = await unet.forward(
        { sample: concatBatch([input, input]), timestep: t, encoderHiddenStates: context },
        runOptions,
      );
      const [u, k] = chunkBatch(pred, 2);
      const eps = guidance > 1 && u && k ? classifierFreeGuidance(u, k, guidance) : (k ?? pred);
      latents = scheduler.step(eps, t, latents, { eta: options.eta ?? 0 } as StepOptions).prevSample;
      options.onProgress?.({ status: "progress", task: "sampling", done: i + 1, total });
    }
    const perFrame = swap01(latents, c, f, [h, w]);
    const decoded = await vae.decodeLatents(perFrame, { batchSize: 1, ...runOptions });
    return {
      frames: tensorToImages(denormalize(decoded)),
      latents,
      ...(inverted ? { invertedLatents: inverted } : {}),
    };
  } finally {
    await unet.release();
    await vae.release();
  }
}
