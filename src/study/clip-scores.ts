/**
 * CLIP-F and CLIP-T of the study's clips, streamed (issue 9 item 4): each clip's measured frames are
 * collected a few at a time and encoded in one call of a CLIP image encoder (e.g. `ClipScorer`,
 * src/metrics/clip-score.ts); only the embeddings' cosines and the last embedding are kept, so memory
 * holds `batchSize` frames per clip whatever the clip's length. The formulas are those of
 * src/metrics/clip-score.ts (`clipF`, `clipT`), applied batch by batch:
 *
 * - CLIP-F at t: `cos(e_(t-1), e_t)`, e the frame's CLIP image embedding (L2-normalised; the
 *   cosines run in float64); the clip's value is the mean over pairs (a frozen clip scores 1);
 * - CLIP-T at t: `cos(e_t, text_embeds(prompt of the frame))`, a raw cosine in [-1, 1] (not x100);
 *   the clip's value is the mean over frames. Each distinct prompt is encoded once.
 */
import { InvalidArgumentError, throwIfAborted } from "../errors.js";
import type { Image } from "../image.js";
import { cosineSimilarity, type ClipImageEncoder, type ClipPromptEncoder } from "../metrics/clip-score.js";
import { shapeToString } from "../tensor.js";

/** writeStudyReport's `clip` option: what adds CLIP-F (and, with a prompt, CLIP-T) to the report. */
export interface StudyClipOptions {
  /** A CLIP image encoder, with `encodePrompt` for CLIP-T (a loaded `ClipScorer` has both). */
  readonly encoder: ClipImageEncoder & Partial<ClipPromptEncoder>;
  /** The model's name as table.md and metrics.json state it (e.g. its folder). */
  readonly model: string;
  /**
   * (optional) CLIP-T's prompt: one for every frame, or a function giving the prompt of render frame
   * j (source frame t is render frame t · framesPerSourceFrame; the input video's frame t is frame t).
   * Without it only CLIP-F is measured.
   */
  readonly prompt?: string | ((renderFrame: number) => string);
  /** (optional) how the report names the prompt(s); default the prompt itself ("per-frame prompts" for a function). */
  readonly promptNote?: string;
  /** (optional, default 4) frames per encoder call (and held per clip until encoded). */
  readonly batchSize?: number;
}

/** Per-frame CLIP series of one clip; index t = source frame t. */
export interface ClipScoreSeries {
  /** cos(e_(t-1), e_t); null at t = 0. */
  readonly clipF: (number | null)[];
  /** cos(e_t, prompt of the frame); absent without a prompt. */
  readonly clipT?: number[];
}

/** Checks the option (before any work); a message names the field and the fix. */
export function checkClipOptions(clip: StudyClipOptions): void {
  if (typeof clip.encoder !== "object" || typeof clip.encoder.encodeImages !== "function")
    throw new InvalidArgumentError("clip.encoder", "a CLIP image encoder (encodeImages)", clip.encoder);
  if (typeof clip.model !== "string" || clip.model.length === 0)
    throw new InvalidArgumentError("clip.model", "the CLIP model's name (e.g. its folder)", clip.model);
  const p = clip.prompt;
  if (p !== undefined && typeof p !== "string" && typeof p !== "function")
    throw new InvalidArgumentError("clip.prompt", "a prompt or a function of the frame index", p);
  if (p !== undefined && typeof clip.encoder.encodePrompt !== "function")
    throw new InvalidArgumentError(
      "clip.encoder",
      "a prompt encoder (encodePrompt) for clip.prompt",
      "none",
      {
        hint: "pass a ClipScorer (both towers), or leave clip.prompt out for CLIP-F only",
      },
    );
  const b = clip.batchSize;
  if (b !== undefined && (!Number.isInteger(b) || b < 1))
    throw new InvalidArgumentError("clip.batchSize", "a positive integer", b);
}

/** The prompt encoder with each distinct prompt encoded once (embeddings are small). */
export class PromptEmbeddings {
  private readonly cache = new Map<string, Promise<Float32Array>>();

  constructor(private readonly encoder: Partial<ClipPromptEncoder>) {}

  get(prompt: string): Promise<Float32Array> {
    let hit = this.cache.get(prompt);
    if (hit === undefined) {
      if (this.encoder.encodePrompt === undefined)
        return Promise.reject(
          new InvalidArgumentError("clip.encoder", "a prompt encoder (encodePrompt)", "none"),
        );
      hit = this.encoder.encodePrompt(prompt).then((t) => Float32Array.from(t.data));
      this.cache.set(prompt, hit);
    }
    return hit;
  }
}

/** Accumulates one clip's CLIP series, holding at most `batchSize` frames and its last embedding. */
export class ClipScoreMeter {
  readonly series: ClipScoreSeries;
  private pending: { readonly frame: Image; readonly renderFrame: number }[] = [];
  private last: Float32Array | undefined;
  private readonly batchSize: number;

  constructor(
    private readonly clip: StudyClipOptions,
    private readonly prompts: PromptEmbeddings,
    private readonly label: string,
    private readonly signal?: AbortSignal,
  ) {
    this.batchSize = clip.batchSize ?? 4;
    this.series = { clipF: [], ...(clip.prompt === undefined ? {} : { clipT: [] }) };
  }

  /** Queues the next measured frame (render frame `renderFrame`); encodes when a batch is full. */
  async add(frame: Image, renderFrame: number): Promise<void> {
    this.pending.push({ frame, renderFrame });
    if (this.pending.length >= this.batchSize) await this.flush();
  }

  /** Encodes the queued frames and appends their cosines. */
  async flush(): Promise<void> {
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    throwIfAborted(this.signal, "study report (CLIP)");
    const { imageEmbeds } = await this.clip.encoder.encodeImages(
      batch.map((b) => b.frame),
      this.signal === undefined ? {} : { signal: this.signal },
    );
    const [n = 0, d = 0] = imageEmbeds.shape;
    if (imageEmbeds.shape.length !== 2 || n !== batch.length || d < 1)
      throw new InvalidArgumentError(
        `clip.encoder embeddings of ${this.label}`,
        `[${batch.length}, D] (one row per frame)`,
        shapeToString(imageEmbeds.shape),
      );
    const { prompt } = this.clip;
    for (const [k, b] of batch.entries()) {
      const e = imageEmbeds.data.subarray(k * d, (k + 1) * d);
      this.series.clipF.push(this.last === undefined ? null : cosineSimilarity(this.last, e));
      if (prompt !== undefined) {
        const text = typeof prompt === "string" ? prompt : prompt(b.renderFrame);
        this.series.clipT?.push(cosineSimilarity(e, await this.prompts.get(text)));
      }
      this.last = Float32Array.from(e);
    }
  }

  summary(): { readonly clipF: number | null; readonly clipT: number | null } {
    return { clipF: mean(this.series.clipF), clipT: mean(this.series.clipT) };
  }
}

function mean(values: readonly (number | null)[] | undefined): number | null {
  let sum = 0;
  let n = 0;
  for (const v of values ?? []) {
    if (v === null) continue;
    sum += v;
    n++;
  }
  return n === 0 ? null : sum / n;
}

/** The definitions paragraph of CLIP-F / CLIP-T (metrics.json and table.md). */
export function clipDefinition(clip: StudyClipOptions): {
  readonly model: string;
  readonly prompt: string | null;
  readonly text: string;
} {
  const prompt =
    clip.prompt === undefined
      ? null
      : (clip.promptNote ?? (typeof clip.prompt === "string" ? clip.prompt : "per-frame prompts"));
  const embeds =
    `L2-normalised CLIP image embeddings (get_image_features) of the measured frames, model ${clip.model} ` +
    "(its own resize and crop of the study-size frame)";
  return {
    model: clip.model,
    prompt,
    text:
      `CLIP-F: mean over consecutive measured frames (t-1, t) of cos(e_(t-1), e_t), e the ${embeds}; a ` +
      "frozen clip scores 1, so read it with the other columns. " +
      (prompt === null
        ? "CLIP-T: not measured (no single prompt)."
        : `CLIP-T: mean over measured frames of cos(e_t, text embedding of the prompt (get_text_features)), ` +
          `prompt: “${prompt}”; raw cosines in [-1, 1], not x100. The input row's CLIP-T is how well the ` +
          "source already matches the prompt."),
  };
}
