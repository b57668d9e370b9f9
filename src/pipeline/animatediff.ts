/**
 * AnimateDiff text-to-video and video-to-video: the algorithms of diffusers 0.26.3 AnimateDiffPipeline
 * (src/diffusers/pipelines/animatediff/pipeline_animatediff.py) and AnimateDiffVideoToVideoPipeline
 * (pipeline_animatediff_video2video.py), as numbered steps over the small component interfaces below.
 *
 * Latents are [B, C, F, h, w] (channels before frames; one video, B = 1, or 2 with classifier-free
 * guidance). Two additions over those pipelines:
 * - per-frame ControlNets (the recipe of diffusers' later AnimateDiffControlNetPipeline): the ControlNet
 *   sees the frames folded into the batch ([B*F, C, h, w], frames of a video adjacent) with the prompt
 *   embeddings repeated per frame, and its residuals go to the motion UNet per frame;
 * - context windows (./context-windows.ts) for videos longer than the motion module's window: each step
 *   runs the (ControlNets and) UNet per window and fuses each frame's predictions. With frames <= the
 *   context length the one window is the whole video and the plain path runs unchanged.
 * For resumable renders both pipelines (and Text2Video-Zero's) report every finished step (`onStep`) and
 * can replay recorded steps through the scheduler without UNet calls (`replay`, ResumableDenoising).
 */
import { InvalidArgumentError, throwIfAborted } from "../errors.js";
import { type Image } from "../image.js";
import { controlnetKeep } from "../models/controlnet/multi-controlnet.js";
import { posteriorStd, samplePosterior, scaleTensor } from "../models/vae/posterior.js";
import type { LongTaskOptions } from "../progress.js";
import { TorchGenerator } from "../random/torch-generator.js";
import type { NoiseGenerator, Scheduler } from "../schedulers/scheduler.js";
import { type HostTensor, numel, shapeToString, tensor } from "../tensor.js";
import {
  type ContextOptions,
  contextFuse,
  contextWindows,
  gatherFrames,
  isWholeVideo,
  predictInWindows,
} from "./context-windows.js";
import { chunkBatch, classifierFreeGuidance, concatBatch, scale } from "./guidance.js";
import { denormalize, imageToTensor } from "./images.js";
import type { ControlNet, ControlNetOutputs, LatentDecoder, PromptTokenizer, TextEncoder } from "./types.js";

export interface MotionUNetInputs {
  /** [B, C, F, h, w]. */
  readonly sample: HostTensor<"float32">;
  /** One timestep per video [B]. */
  readonly timestep: HostTensor<"float32">;
  /** [B, L, D]: one per video (the model repeats it per frame). */
  readonly encoderHiddenStates: HostTensor<"float32">;
  /** Per-frame ControlNet residuals [B*F, C_i, h_i, w_i] (frames of a video adjacent). */
  readonly downBlockAdditionalResiduals?: readonly HostTensor<"float32">[];
  readonly midBlockAdditionalResidual?: HostTensor<"float32">;
}

/** A UNetMotionModel (src/models/motion: UNetMotionModelRunner satisfies it). */
export interface MotionUNet {
  /** (optional) the most frames one call takes (motion_max_seq_length): the default context length. */
  readonly maxFrames?: number;
  /** noise_pred [B, C, F, h, w]. */
  forward(inputs: MotionUNetInputs): Promise<HostTensor<"float32">>;
}

/** Frames per VAE session run (the AutoencoderKL runner's batchSize). */
export interface FrameBatchOptions {
  readonly batchSize?: number;
  readonly signal?: AbortSignal;
}

export interface VideoLatentDecoder extends LatentDecoder {
  decode(latents: HostTensor<"float32">, options?: FrameBatchOptions): Promise<HostTensor<"float32">>;
}

export interface LatentEncoder {
  readonly scalingFactor: number;
  /** image [N, 3, H, W] in [-1, 1] -> the posterior (mean, clamped logvar), [N, C, h, w] each. */
  encode(
    image: HostTensor<"float32">,
    options?: FrameBatchOptions,
  ): Promise<{ readonly mean: HostTensor; readonly logvar: HostTensor }>;
}

export interface AnimateDiffComponents {
  readonly unet: MotionUNet;
  readonly vae: VideoLatentDecoder;
  /** A fresh scheduler for this run (schedulers hold per-run state). */
  readonly scheduler: Scheduler;
  /** 2 ** (len(vae block_out_channels) - 1): 8 for SD. */
  readonly vaeScaleFactor: number;
  /** UNet in_channels (4 for SD). */
  readonly latentChannels: number;
  /** (optional) needed only for prompts given as text. */
  readonly tokenizer?: PromptTokenizer;
  readonly textEncoder?: TextEncoder;
}

export interface VideoToVideoComponents extends AnimateDiffComponents {
  readonly vae: VideoLatentDecoder & LatentEncoder;
}

/** One ControlNet with one control image per frame. */
export interface VideoControlUnit {
  readonly controlnet: ControlNet;
  /** [F, 3, H, W] in [0, 1]: the control image of every frame. */
  readonly frames: HostTensor<"float32">;
  /** (optional, default 1) controlnet_conditioning_scale. */
  readonly scale?: number;
  /** (optional, default 0) fraction of the steps after which the net starts acting. */
  readonly guidanceStart?: number;
  /** (optional, default 1) fraction of the steps after which it stops. */
  readonly guidanceEnd?: number;
}

/** One finished denoising step, as a resumable render records it. */
export interface DenoisingStepRecord {
  /** Index among all of the run's steps (0-based). */
  readonly step: number;
  /** The run's step count. */
  readonly total: number;
  /** The guided noise prediction the scheduler stepped with. */
  readonly noisePred: HostTensor<"float32">;
  /** The latents after the step. */
  readonly latents: HostTensor<"float32">;
  /** True when the step was replayed from `replay` (no UNet call). */
  readonly replayed: boolean;
}

/** Options of the whole-video pipelines (AnimateDiff, Text2Video-Zero) that let a render resume. */
export interface ResumableDenoising {
  /** (optional) called after every step, replayed ones included; awaited before the next step. */
  readonly onStep?: (record: DenoisingStepRecord) => Promise<void> | void;
  /**
   * (optional) the guided noise predictions of steps already done, in order: those steps skip the UNet
   * and go through the scheduler with the recorded prediction (same scheduler state, same generator
   * draws), so the run continues bit-identically after the last of them.
   */
  readonly replay?: readonly HostTensor<"float32">[];
}

/** The recorded prediction of step `i` (checked against the latents' shape), or undefined. */
export function replayedPrediction(
  o: ResumableDenoising,
  i: number,
  latents: HostTensor<"float32">,
): HostTensor<"float32"> | undefined {
  const saved = o.replay?.[i];
  if (saved !== undefined) checkShape(`replay[${i}]`, saved, latents.shape, "the prediction of that step");
  return saved;
}

export interface AnimateDiffCommonOptions extends LongTaskOptions, ResumableDenoising {
  /** The prompt as text (needs the tokenizer and text encoder), or ... */
  readonly prompt?: string;
  /** ... its embeddings [1, L, D] (win over `prompt`). */
  readonly promptEmbeds?: HostTensor<"float32">;
  /** (optional, default "") the negative prompt (used when guidanceScale > 1). */
  readonly negativePrompt?: string;
  /** (optional) its embeddings [1, L, D] (win over `negativePrompt`). */
  readonly negativePromptEmbeds?: HostTensor<"float32">;
  /** (optional, default 50) */
  readonly numInferenceSteps?: number;
  /** (optional, default 7.5) classifier-free guidance scale; <= 1 disables guidance. */
  readonly guidanceScale?: number;
  /** (optional) seed for torch-compatible noise (torch.Generator().manual_seed(seed)). */
  readonly seed?: number | bigint;
  /** (optional) the generator every random draw comes from (wins over seed). */
  readonly generator?: NoiseGenerator;
  /** (optional, default 0) DDIM eta. */
  readonly eta?: number;
  /** (optional) diffusers clip_skip. */
  readonly clipSkip?: number;
  /** (optional) per-frame ControlNets (the motion UNet must take residuals); their residuals are summed. */
  readonly controls?: readonly VideoControlUnit[];
  /**
   * (optional) context windows; contextLength defaults to the UNet's maxFrames. Without this option a
   * video longer than the UNet's maxFrames runs in `uniform` windows of maxFrames frames.
   */
  readonly context?: Omit<ContextOptions, "contextLength"> & { readonly contextLength?: number };
  /** (optional, default all frames) frames per VAE run: 1 bounds memory for long videos. */
  readonly vaeBatchSize?: number;
  /**
   * (optional) receives named intermediate tensors: rng.drawNN (every generator draw), initial_latents,
   * stepNN.timestep / model_input / noise_pred_uncond / noise_pred_text / latents_out,
   * vae_decode.input / output, video, frames (and vae_encode.*, add_noise.* for video-to-video).
   */
  readonly trace?: (name: string, value: HostTensor) => void;
}

export interface TextToVideoOptions extends AnimateDiffCommonOptions {
  readonly numFrames: number;
  readonly width: number;
  readonly height: number;
  /** (optional) initial latents [1, C, F, h, w] before scaling by init_noise_sigma (wins over seed). */
  readonly latents?: HostTensor<"float32">;
}

export interface VideoToVideoOptions extends AnimateDiffCommonOptions {
  /** [F, 3, H, W] in [-1, 1] (see videoTensor); required unless `latents` are given. */
  readonly video?: HostTensor<"float32">;
  /**
   * (optional) [1, C, F, h, w] latents to denoise as they are from the strength's first timestep,
   * in place of the video's (diffusers' `latents`: no VAE encode, no noise, `video` not read).
   */
  readonly latents?: HostTensor<"float32">;
  /** (optional, default 0.8) how much of the schedule to run: 1 ignores the input video. */
  readonly strength?: number;
}

export interface AnimateDiffResult {
  /** [1, F, 3, H, W] in [0, 1] (AnimateDiffPipeline's output_type="pt"). */
  readonly frames: HostTensor<"float32">;
  /** [1, 3, F, H, W]: the decoder output, not clamped (AnimateDiffVideoToVideoPipeline 0.26.3's "pt"). */
  readonly video: HostTensor<"float32">;
  /** [1, C, F, h, w]: the final latents. */
  readonly latents: HostTensor<"float32">;
}

type Trace = (name: string, value: HostTensor) => void;

/** RGB frames -> [F, 3, H, W] in [-1, 1], the video-to-video input (diffusers' VaeImageProcessor). */
export function videoTensor(frames: readonly Image[]): HostTensor<"float32"> {
  if (frames.length === 0) throw new InvalidArgumentError("frames", "at least one frame", 0);
  return concatBatch(frames.map((f) => imageToTensor(f, "-1,1")));
}

/** [a, b, c, ...rest] -> [a, c, b, ...rest] (torch permute(0, 2, 1, ...)). */
function swapAxes12(t: HostTensor<"float32">): HostTensor<"float32"> {
  const [a = 0, b = 0, c = 0, ...rest] = t.shape;
  const inner = numel(rest);
  const out = new Float32Array(t.data.length);
  for (let i = 0; i < a; i++)
    for (let j = 0; j < b; j++)
      for (let k = 0; k < c; k++) {
        const src = ((i * b + j) * c + k) * inner;
        out.set(t.data.subarray(src, src + inner), ((i * c + k) * b + j) * inner);
      }
  return tensor("float32", [a, c, b, ...rest], out);
}

/** [B, C, F, h, w] -> [B*F, C, h, w] (frames of a video adjacent). */
function toFrameBatch(t: HostTensor<"float32">): HostTensor<"float32"> {
  const s = swapAxes12(t);
  const [b = 0, f = 0, ...rest] = s.shape;
  return tensor("float32", [b * f, ...rest], s.data);
}

/** [B*F, C, h, w] -> [B, C, F, h, w]. */
function fromFrameBatch(t: HostTensor<"float32">, batch: number): HostTensor<"float32"> {
  const [bf = 0, ...rest] = t.shape;
  return swapAxes12(tensor("float32", [batch, bf / batch, ...rest], t.data));
}

/** [B, L, D] -> [B*F, L, D] (torch repeat_interleave(F, dim=0)). */
function repeatPerFrame(t: HostTensor<"float32">, frames: number): HostTensor<"float32"> {
  const [b = 0, ...rest] = t.shape;
  const inner = numel(rest);
  const out = new Float32Array(b * frames * inner);
  for (let i = 0; i < b; i++)
    for (let f = 0; f < frames; f++)
      out.set(t.data.subarray(i * inner, (i + 1) * inner), (i * frames + f) * inner);
  return tensor("float32", [b * frames, ...rest], out);
}

const scalar = (v: number): HostTensor<"float32"> => tensor("float32", [], new Float32Array([v]));
const filled = (n: number, v: number): HostTensor<"float32"> =>
  tensor("float32", [n], new Float32Array(n).fill(v));
const stepTag = (i: number): string => `step${String(i).padStart(2, "0")}`;

/** Names every draw rng.draw00, rng.draw01, ... in the trace. */
function tracedGenerator(inner: NoiseGenerator, trace: Trace): NoiseGenerator {
  let count = 0;
  return {
    randn(shape) {
      const t = inner.randn(shape);
      trace(`rng.draw${String(count++).padStart(2, "0")}`, t);
      return t;
    },
  };
}

function checkSteps(o: AnimateDiffCommonOptions): number {
  const steps = o.numInferenceSteps ?? 50;
  if (!Number.isInteger(steps) || steps < 1)
    throw new InvalidArgumentError("numInferenceSteps", "a positive integer", steps);
  return steps;
}

function checkSize(c: AnimateDiffComponents, name: string, value: number): void {
  // diffusers' check_inputs asks for multiples of 8 whatever the VAE (and the VAE needs its own factor).
  const step = Math.max(8, c.vaeScaleFactor);
  if (!Number.isInteger(value) || value <= 0 || value % step !== 0) {
    throw new InvalidArgumentError(name, `a positive multiple of ${step}`, value);
  }
}

function checkShape(name: string, t: HostTensor, expected: readonly number[], hint?: string): void {
  if (t.shape.join() !== expected.join()) {
    throw new InvalidArgumentError(
      name,
      `shape ${shapeToString(expected)}`,
      shapeToString(t.shape),
      hint ? { hint } : {},
    );
  }
}

function checkControls(o: AnimateDiffCommonOptions, frames: number, height: number, width: number): void {
  for (const [i, unit] of (o.controls ?? []).entries()) {
    checkShape(
      `controls[${i}].frames`,
      unit.frames,
      [frames, 3, height, width],
      "one control image per frame, at the output size",
    );
    const start = unit.guidanceStart ?? 0;
    const end = unit.guidanceEnd ?? 1;
    if (!(start >= 0 && start < end && end <= 1)) {
      throw new InvalidArgumentError(`controls[${i}].guidanceStart/End`, "0 <= start < end <= 1", [
        start,
        end,
      ]);
    }
  }
}

/** [neg, pos] embeddings with guidance, [pos] without: given ones, or the text encoder's. */
async function promptEmbeddings(
  c: AnimateDiffComponents,
  o: AnimateDiffCommonOptions,
  cfg: boolean,
): Promise<HostTensor<"float32">> {
  const encode = async (text: string | undefined, name: string): Promise<HostTensor<"float32">> => {
    if (text === undefined || c.tokenizer === undefined || c.textEncoder === undefined) {
      throw new InvalidArgumentError(
        name,
        "embeddings, or text with a tokenizer and text encoder among the components",
        text === undefined ? "neither" : "text without a tokenizer and text encoder",
      );
    }
    return c.textEncoder.encode(
      c.tokenizer.tokenize([text]),
      o.clipSkip === undefined ? undefined : { clipSkip: o.clipSkip },
    );
  };
  const positive = o.promptEmbeds ?? (await encode(o.prompt, "promptEmbeds / prompt"));
  if (positive.shape.length !== 3 || positive.shape[0] !== 1) {
    throw new InvalidArgumentError(
      "promptEmbeds",
      "a [1, sequence, dim] tensor",
      shapeToString(positive.shape),
    );
  }
  if (!cfg) return positive;
  const negative =
    o.negativePromptEmbeds ?? (await encode(o.negativePrompt ?? "", "negativePromptEmbeds / negativePrompt"));
  checkShape("negativePromptEmbeds", negative, positive.shape);
  return concatBatch([negative, positive]);
}

function sumResiduals(a: ControlNetOutputs | undefined, b: ControlNetOutputs): ControlNetOutputs {
  if (a === undefined) return b;
  const add = (x: HostTensor<"float32">, y: HostTensor<"float32">): HostTensor<"float32"> =>
    tensor(
      "float32",
      x.shape,
      x.data.map((v, i) => Math.fround(v + (y.data[i] ?? 0))),
    );
  return {
    downBlockResSamples: a.downBlockResSamples.map((x, i) => add(x, b.downBlockResSamples[i] ?? x)),
    midBlockResSample: add(a.midBlockResSample, b.midBlockResSample),
  };
}

interface LoopInputs {
  readonly latents: HostTensor<"float32">;
  readonly timesteps: readonly number[];
  readonly embeds: HostTensor<"float32">;
  readonly guidance: number;
  readonly generator: NoiseGenerator;
  readonly trace: Trace;
}

/** The context windows setting of a run, or undefined for the plain path. */
function contextOf(
  c: AnimateDiffComponents,
  o: AnimateDiffCommonOptions,
  frames: number,
): ContextOptions | undefined {
  const max = c.unet.maxFrames;
  const length = o.context?.contextLength ?? max;
  if (length === undefined) return undefined;
  if (max !== undefined && length > max) {
    throw new InvalidArgumentError("context.contextLength", `at most ${max} (the UNet's maxFrames)`, length);
  }
  const options: ContextOptions = { ...o.context, contextLength: length };
  contextWindows(frames, options); // validates the options before anything runs
  return o.context !== undefined || frames > length ? options : undefined;
}

/** Step 6 of both pipelines: the denoising loop (with per-frame ControlNets and context windows). */
async function denoise(
  c: AnimateDiffComponents,
  o: AnimateDiffCommonOptions,
  s: LoopInputs,
): Promise<HostTensor<"float32">> {
  const task = "denoising";
  const { timesteps, embeds, trace } = s;
  const cfg = s.guidance > 1;
  const controls = o.controls ?? [];
  const frames = s.latents.shape[2] ?? 0;
  const context = contextOf(c, o, frames);
  const fuse = context ? contextFuse(context) : "flat";
  let latents = s.latents;

  const predict = async (
    window: readonly number[],
    input: HostTensor<"float32">,
    t: number,
    i: number,
  ): Promise<HostTensor<"float32">> => {
    const batch = input.shape[0] ?? 1;
    const n = input.shape[2] ?? 0;
    let residuals: ControlNetOutputs | undefined;
    if (controls.length > 0) {
      const sample = toFrameBatch(input);
      const timestep = filled(batch * n, t);
      const ehs = repeatPerFrame(embeds, n);
      for (const unit of controls) {
        const keep = controlnetKeep(i, timesteps.length, unit.guidanceStart ?? 0, unit.guidanceEnd ?? 1);
        const cond = gatherFrames(unit.frames, window, 0);
        const out = await unit.controlnet.forward({
          sample,
          timestep,
          encoderHiddenStates: ehs,
          controlnetCond: batch === 2 ? concatBatch([cond, cond]) : cond,
          conditioningScale: (unit.scale ?? 1) * keep,
        });
        residuals = sumResiduals(residuals, out);
      }
    }
    return c.unet.forward({
      sample: input,
      timestep: filled(batch, t),
      encoderHiddenStates: embeds,
      ...(residuals
        ? {
            downBlockAdditionalResiduals: residuals.downBlockResSamples,
            midBlockAdditionalResidual: residuals.midBlockResSample,
          }
        : {}),
    });
  };

  o.onProgress?.({ status: "start", task, total: timesteps.length });
  for (const [i, t] of timesteps.entries()) {
    throwIfAborted(o.signal, task);
    const tag = stepTag(i);
    trace(`${tag}.timestep`, scalar(t));
    let guided = replayedPrediction(o, i, latents);
    if (guided === undefined) {
      // scale_model_input is elementwise: scaling one copy equals scaling cat([latents] * 2).
      const scaled = c.scheduler.scaleModelInput(latents, t);
      trace(`${tag}.model_input`, scaled);
      const input = cfg ? concatBatch([scaled, scaled]) : scaled;
      const windows = context ? contextWindows(frames, context, i) : [];
      const noise =
        context === undefined || isWholeVideo(windows, frames)
          ? await predict(
              Array.from({ length: frames }, (_, f) => f),
              input,
              t,
              i,
            )
          : await predictInWindows(input, windows, fuse, (window, x) => {
              throwIfAborted(o.signal, task);
              return predict(window, x, t, i);
            });
      guided = noise;
      if (cfg) {
        const [uncond, cond] = chunkBatch(noise, 2) as [HostTensor<"float32">, HostTensor<"float32">];
        trace(`${tag}.noise_pred_uncond`, uncond);
        trace(`${tag}.noise_pred_text`, cond);
        guided = classifierFreeGuidance(uncond, cond, s.guidance);
      }
    }
    trace(`${tag}.noise_pred`, guided);
    latents = c.scheduler.step(guided, t, latents, {
      generator: s.generator,
      ...(o.eta === undefined ? {} : { eta: o.eta }),
    }).prevSample;
    trace(`${tag}.latents_out`, latents);
    await o.onStep?.({
      step: i,
      total: timesteps.length,
      noisePred: guided,
      latents,
      replayed: o.replay?.[i] !== undefined,
    });
    o.onProgress?.({ status: "progress", task, done: i + 1, total: timesteps.length });
  }
  o.onProgress?.({ status: "done", task });
  return latents;
}

/** Step 7 of both pipelines: decode every frame, back to [1, 3, F, H, W], and post-process. */
async function decode(
  c: AnimateDiffComponents,
  o: AnimateDiffCommonOptions,
  latents: HostTensor<"float32">,
  trace: Trace,
): Promise<AnimateDiffResult> {
  throwIfAborted(o.signal, "decoding");
  const batch = latents.shape[0] ?? 1;
  const decoderInput = toFrameBatch(scale(latents, 1 / c.vae.scalingFactor));
  trace("vae_decode.input", decoderInput);
  const raw = await c.vae.decode(decoderInput, {
    ...(o.vaeBatchSize === undefined ? {} : { batchSize: o.vaeBatchSize }),
    ...(o.signal === undefined ? {} : { signal: o.signal }),
  });
  trace("vae_decode.output", raw);
  const video = fromFrameBatch(raw, batch);
  trace("video", video);
  const [bf = 0, ...rest] = raw.shape;
  const frames = tensor("float32", [batch, bf / batch, ...rest], denormalize(raw).data);
  trace("frames", frames);
  return { frames, video, latents };
}

/** AnimateDiffPipeline: a video of `numFrames` frames from a prompt. */
export async function textToVideo(
  c: AnimateDiffComponents,
  o: TextToVideoOptions,
): Promise<AnimateDiffResult> {
  const trace: Trace = o.trace ?? (() => undefined);
  // 1. Check inputs
  checkSize(c, "width", o.width);
  checkSize(c, "height", o.height);
  const steps = checkSteps(o);
  if (!Number.isInteger(o.numFrames) || o.numFrames < 1)
    throw new InvalidArgumentError("numFrames", "a positive integer", o.numFrames);
  const h = o.height / c.vaeScaleFactor;
  const w = o.width / c.vaeScaleFactor;
  const shape = [1, c.latentChannels, o.numFrames, h, w];
  if (o.latents) checkShape("latents", o.latents, shape);
  checkControls(o, o.numFrames, o.height, o.width);
  const guidance = o.guidanceScale ?? 7.5;
  const generator = tracedGenerator(o.generator ?? new TorchGenerator(o.seed ?? 0), trace);

  // 2. Encode the prompt: [uncond, cond] for guidance (repeated per frame inside the UNet)
  const embeds = await promptEmbeddings(c, o, guidance > 1);

  // 3. Timesteps
  c.scheduler.setTimesteps(steps);
  const timesteps = c.scheduler.timesteps;

  // 4. Initial latents: ONE draw of [1, C, F, h, w] (channels before frames)
  const latents = scale(o.latents ?? generator.randn(shape), c.scheduler.initNoiseSigma);
  trace("initial_latents", latents);

  // 5. Denoising loop, 6. decode
  const final = await denoise(c, o, { latents, timesteps, embeds, guidance, generator, trace });
  return decode(c, o, final, trace);
}

/** AnimateDiffVideoToVideoPipeline: re-generates `video` from part-way through the schedule. */
/** Frames and size of a video-to-video input video: [F, 3, H, W], H and W multiples of the step. */
function videoSize(
  c: AnimateDiffComponents,
  video: HostTensor<"float32"> | undefined,
): { frames: number; height: number; width: number } {
  if (video === undefined)
    throw new InvalidArgumentError("video", "a [frames, 3, height, width] tensor (or latents)", undefined, {
      hint: "build it with videoTensor(frames)",
    });
  const [frames = 0, channels = 0, height = 0, width = 0] = video.shape;
  if (video.shape.length !== 4 || channels !== 3 || frames < 1) {
    throw new InvalidArgumentError(
      "video",
      "a [frames, 3, height, width] tensor",
      shapeToString(video.shape),
      {
        hint: "build it with videoTensor(frames)",
      },
    );
  }
  checkSize(c, "video width", width);
  checkSize(c, "video height", height);
  return { frames, height, width };
}

/** Frames and image size of given video-to-video latents [1, C, F, h, w]. */
function givenLatentsSize(
  c: AnimateDiffComponents,
  latents: HostTensor<"float32">,
): { frames: number; height: number; width: number } {
  const [batch, channels, frames = 0, h = 0, w = 0] = latents.shape;
  if (latents.shape.length !== 5 || batch !== 1 || channels !== c.latentChannels || frames < 1)
    throw new InvalidArgumentError(
      "latents",
      `a [1, ${c.latentChannels}, frames, height / ${c.vaeScaleFactor}, width / ${c.vaeScaleFactor}] tensor`,
      shapeToString(latents.shape),
    );
  return { frames, height: h * c.vaeScaleFactor, width: w * c.vaeScaleFactor };
}

export async function videoToVideo(
  c: VideoToVideoComponents,
  o: VideoToVideoOptions,
): Promise<AnimateDiffResult> {
  const trace: Trace = o.trace ?? (() => undefined);
  // 1. Check inputs
  const { frames, height, width } = o.latents ? givenLatentsSize(c, o.latents) : videoSize(c, o.video);
  const steps = checkSteps(o);
  const strength = o.strength ?? 0.8;
  if (!(strength >= 0 && strength <= 1))
    throw new InvalidArgumentError("strength", "a number in [0, 1]", strength);
  checkControls(o, frames, height, width);
  const guidance = o.guidanceScale ?? 7.5;
  const generator = tracedGenerator(o.generator ?? new TorchGenerator(o.seed ?? 0), trace);

  // 2. Encode the prompt
  const embeds = await promptEmbeddings(c, o, guidance > 1);

  // 3. Timesteps: the last min(int(N * strength), N) of the schedule
  c.scheduler.setTimesteps(steps);
  const initTimestep = Math.min(Math.floor(steps * strength), steps);
  const tStart = Math.max(steps - initTimestep, 0);
  const timesteps = c.scheduler.timesteps.slice(tStart * c.scheduler.order);
  const first = timesteps[0];
  if (first === undefined) {
    throw new InvalidArgumentError("strength", `at least ${1 / steps} (one of ${steps} steps)`, strength);
  }

  // 4. Latents: FIRST the posterior sample of every frame, THEN the noise, frame-major [1, F, C, h, w]
  if (o.latents) {
    trace("initial_latents", o.latents);
    const final = await denoise(c, o, { latents: o.latents, timesteps, embeds, guidance, generator, trace });
    return decode(c, o, final, trace);
  }
  const video = o.video!;
  const batchOptions = {
    ...(o.vaeBatchSize === undefined ? {} : { batchSize: o.vaeBatchSize }),
    ...(o.signal === undefined ? {} : { signal: o.signal }),
  };
  const dist = await c.vae.encode(video, batchOptions);
  trace("vae_encode.mean", dist.mean);
  trace("vae_encode.std", posteriorStd(dist.logvar));
  const sample = samplePosterior(dist, { noise: generator.randn(dist.mean.shape) });
  const z = scaleTensor(sample, c.vae.scalingFactor);
  const original = tensor("float32", [1, ...z.shape], z.data);
  const noise = generator.randn(original.shape);
  trace("add_noise.original_samples", original);
  trace("add_noise.timestep", tensor("float32", [1], new Float32Array([first])));
  const noisy = c.scheduler.addNoise(original, noise, [first]);
  trace("add_noise.noisy", noisy);
  const latents = swapAxes12(noisy); // [1, C, F, h, w]
  trace("initial_latents", latents);

  // 5. Denoising loop, 6. decode
  const final = await denoise(c, o, { latents, timesteps, embeds, guidance, generator, trace });
  return decode(c, o, final, trace);
}
