/**
 * CLIP scores of a generated clip, as the video-editing literature reports them:
 * - CLIP-T (frame-prompt alignment): the mean over frames of cos(image_embeds_i, text_embeds);
 * - CLIP-F (frame consistency): the mean over consecutive pairs of cos(image_embeds_i, image_embeds_i+1);
 * - torchmetrics CLIPScore: max(100 * mean cosine, 0), the clamp applied AFTER averaging.
 * image_embeds are CLIPVisionModelWithProjection's projected embeddings (CLIPModel.get_image_features),
 * text_embeds CLIPTextModelWithProjection's (get_text_features); each is L2-normalised first and
 * logit_scale is not used (shared/golden/clip_vision README, "CLIP scores"). The cosine sums run in
 * float64. `ClipScorer` loads the two towers from a CLIP folder and scores frames and a prompt.
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { ConfigError, InvalidArgumentError } from "../errors.js";
import { readJsonFile } from "../config/parse.js";
import type { Image } from "../image.js";
import { CLIPTextModel } from "../models/clip/clip-text-model.js";
import { ClipVisionRunner } from "../models/clip-vision/clip-vision-model.js";
import { parseClipImageProcessorConfig } from "../models/clip-vision/preprocess.js";
import type { ModelLoadOptions } from "../models/compiled-graph.js";
import { findWeightsFile, openWeightsFile } from "../models/component-source.js";
import { type HostTensor, shapeToString, tensor } from "../tensor.js";
import { CLIPTokenizer } from "../tokenizer/clip-tokenizer.js";

function rows(t: HostTensor, what: string): Float64Array[] {
  if (t.shape.length !== 2 || (t.shape[0] ?? 0) < 1 || (t.shape[1] ?? 0) < 1)
    throw new InvalidArgumentError(what, "embeddings [N, D] with N, D >= 1", shapeToString(t.shape));
  const [n = 0, d = 0] = t.shape;
  return Array.from({ length: n }, (_, i) =>
    Float64Array.from(t.data.subarray(i * d, (i + 1) * d) as ArrayLike<number>),
  );
}

function unit(v: Float64Array): Float64Array {
  let sum = 0;
  for (const x of v) sum += x * x;
  const norm = Math.sqrt(sum);
  return v.map((x) => (norm > 0 ? x / norm : 0));
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] ?? 0) * (b[i] ?? 0);
  return s;
}

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Each row divided by its L2 norm (float32 out; a zero row stays zero). */
export function normalizeEmbeds(embeds: HostTensor): HostTensor<"float32"> {
  const out = rows(embeds, "embeds").flatMap((r) => Array.from(unit(r)));
  return tensor("float32", embeds.shape, Float32Array.from(out));
}

/** cos(a_i, b_i) of two single embeddings (any shape with D elements each). */
export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length || a.length === 0)
    throw new InvalidArgumentError(
      "embeddings",
      "two vectors of one non-zero length",
      `${a.length} and ${b.length}`,
    );
  return dot(unit(Float64Array.from(a)), unit(Float64Array.from(b)));
}

/** cos(frame_i, text) for every frame: frames [N, D], text [1, D] (or [D]). */
export function frameTextCosines(frameEmbeds: HostTensor, textEmbeds: HostTensor): number[] {
  const frames = rows(frameEmbeds, "frameEmbeds").map(unit);
  const text = unit(Float64Array.from(textEmbeds.data as ArrayLike<number>));
  if (text.length !== frames[0]?.length)
    throw new InvalidArgumentError(
      "textEmbeds",
      `${frames[0]?.length ?? 0} values (the image embedding width)`,
      shapeToString(textEmbeds.shape),
      {
        hint: "image and text embeddings must come from one CLIP model (same projection_dim)",
      },
    );
  return frames.map((f) => dot(f, text));
}

/** cos(frame_i, frame_i+1) for i < N - 1: frames [N, D], N >= 2. */
export function consecutiveCosines(frameEmbeds: HostTensor): number[] {
  const frames = rows(frameEmbeds, "frameEmbeds").map(unit);
  if (frames.length < 2)
    throw new InvalidArgumentError("frameEmbeds", "at least 2 frames for CLIP-F", frames.length);
  return frames.slice(1).map((f, i) => dot(frames[i] as Float64Array, f));
}

/** CLIP-T: mean_i cos(frame_i, text) (a raw cosine in [-1, 1], not x100). */
export function clipT(frameEmbeds: HostTensor, textEmbeds: HostTensor): number {
  return mean(frameTextCosines(frameEmbeds, textEmbeds));
}

/** CLIP-F: mean_i cos(frame_i, frame_i+1). */
export function clipF(frameEmbeds: HostTensor): number {
  return mean(consecutiveCosines(frameEmbeds));
}

/** torchmetrics CLIPScore over per-sample cosines: max(100 * mean, 0) (clamped after averaging). */
export function torchmetricsClipScore(cosines: readonly number[]): number {
  if (cosines.length === 0) throw new InvalidArgumentError("cosines", "at least one", 0);
  return Math.max(100 * mean(cosines), 0);
}

/** What `ClipScorer.score` reports for a clip. */
export interface ClipScores {
  /** Mean frame-prompt cosine (undefined without a prompt). */
  readonly clipT?: number;
  /** Mean consecutive-frame cosine (undefined for a single frame). */
  readonly clipF?: number;
  /** Per-frame cos(frame, prompt). */
  readonly frameText?: readonly number[];
  /** Per-pair cos(frame_i, frame_i+1). */
  readonly consecutive?: readonly number[];
}

/** The two towers a scorer needs, as small interfaces (runners or test doubles). */
export interface ClipImageEncoder {
  encodeImages(
    images: readonly Image[],
    options?: { signal?: AbortSignal },
  ): Promise<{ readonly imageEmbeds: HostTensor<"float32"> }>;
}
export interface ClipPromptEncoder {
  /** The prompt's projected text_embeds, [1, D]. */
  encodePrompt(prompt: string): Promise<HostTensor<"float32">>;
}

/** Scores frames (in order) against a prompt with CLIP; frames are encoded `batchSize` at a time. */
export async function clipScores(
  image: ClipImageEncoder,
  frames: readonly Image[],
  options: {
    readonly prompt?: string;
    readonly text?: ClipPromptEncoder;
    readonly batchSize?: number;
    readonly signal?: AbortSignal;
  } = {},
): Promise<ClipScores> {
  if (frames.length === 0) throw new InvalidArgumentError("frames", "at least one frame", 0);
  const batch = options.batchSize ?? 8;
  const parts: HostTensor<"float32">[] = [];
  for (let i = 0; i < frames.length; i += batch) {
    const { imageEmbeds } = await image.encodeImages(
      frames.slice(i, i + batch),
      options.signal ? { signal: options.signal } : {},
    );
    parts.push(imageEmbeds);
  }
  const d = parts[0]?.shape[1] ?? 0;
  const all = new Float32Array(frames.length * d);
  let offset = 0;
  for (const p of parts) {
    all.set(p.data, offset);
    offset += p.data.length;
  }
  const embeds = tensor("float32", [frames.length, d], all);
  const out: { -readonly [K in keyof ClipScores]: ClipScores[K] } = {};
  if (options.prompt !== undefined) {
    if (options.text === undefined)
      throw new InvalidArgumentError("text", "a text encoder with the prompt", undefined);
    const cos = frameTextCosines(embeds, await options.text.encodePrompt(options.prompt));
    out.frameText = cos;
    out.clipT = mean(cos);
  }
  if (frames.length >= 2) {
    const cos = consecutiveCosines(embeds);
    out.consecutive = cos;
    out.clipF = mean(cos);
  }
  return out;
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Both towers of a transformers `CLIPModel` folder (config.json with text_config + vision_config,
 * model.safetensors, the tokenizer files; e.g. openai/clip-vit-large-patch14), for CLIP-T / CLIP-F.
 * Prompts are tokenized padded to max_length and truncated, as CLIPProcessor does.
 */
export class ClipScorer implements ClipImageEncoder, ClipPromptEncoder {
  private constructor(
    readonly vision: ClipVisionRunner,
    readonly text: CLIPTextModel,
    readonly tokenizer: CLIPTokenizer,
  ) {}

  static async load(dir: string, options: ModelLoadOptions = {}): Promise<ClipScorer> {
    const configName = join(dir, "config.json");
    const config = await readJsonFile(configName, "CLIP model config");
    const textConfig = isRecord(config) ? config["text_config"] : undefined;
    const projection = isRecord(config) ? config["projection_dim"] : undefined;
    if (!isRecord(config) || !isRecord(textConfig) || !isRecord(config["vision_config"])) {
      throw new ConfigError(
        configName,
        "text_config / vision_config",
        "a CLIPModel config (both towers)",
        undefined,
        {
          hint: "pass a full CLIP model folder such as openai/clip-vit-large-patch14 (config.json, model.safetensors, tokenizer files)",
        },
      );
    }
    const projectionDim = typeof projection === "number" ? projection : 512;
    const { store, weightsId } = await openWeightsFile(await findWeightsFile(dir, "transformers"));
    const tokenizer = await CLIPTokenizer.fromPretrained(dir);
    const preprocessorPath = join(dir, "preprocessor_config.json");
    const preprocessor = (await stat(preprocessorPath).catch(() => undefined))?.isFile()
      ? {
          preprocessor: parseClipImageProcessorConfig(
            preprocessorPath,
            await readJsonFile(preprocessorPath, "preprocessor config"),
          ),
        }
      : {};
    const vision = await ClipVisionRunner.load(
      { config, configName, store, ...(weightsId === null ? {} : { weightsId }) },
      { ...options, ...preprocessor },
    );
    try {
      const text = await CLIPTextModel.load(
        {
          config: textConfig,
          configName: `${configName} (text_config)`,
          store,
          ...(weightsId === null ? {} : { weightsId: `${weightsId}:text` }),
        },
        {
          ...options,
          textProjection: projectionDim,
          keyMap: (k) => (k.startsWith("text_model.") || k === "text_projection.weight" ? k : undefined),
        },
      );
      return new ClipScorer(vision, text, tokenizer);
    } catch (error) {
      await vision.release();
      throw error;
    }
  }

  encodeImages(
    images: readonly Image[],
    options: { signal?: AbortSignal } = {},
  ): Promise<{ readonly imageEmbeds: HostTensor<"float32"> }> {
    return this.vision.encodeImages(images, options);
  }

  async encodePrompt(prompt: string): Promise<HostTensor<"float32">> {
    const ids = this.tokenizer.encodeBatch([prompt], {
      padding: "max_length",
      truncation: true,
      maxLength: this.text.sequenceLength,
    });
    const out = await this.text.encode(ids);
    if (out.textEmbeds === undefined)
      throw new InvalidArgumentError("text encoder", "text_embeds", undefined);
    return out.textEmbeds;
  }

  /** CLIP-T (with a prompt) and CLIP-F of `frames`. */
  score(
    frames: readonly Image[],
    prompt?: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<ClipScores> {
    return clipScores(this, frames, { ...(prompt === undefined ? {} : { prompt }), text: this, ...options });
  }

  async release(): Promise<void> {
    await Promise.all([this.vision.release(), this.text.release()]);
  }
}
