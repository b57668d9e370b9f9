/**
 * Cross-frame attention (Text2Video-Zero, diffusers `CrossFrameAttnProcessor`): in self-attention,
 * every frame attends to the keys/values of the first frame of its video ("first"), or of the first
 * and the previous frame ("first-and-previous", keys/values concatenated along the sequence).
 * The batch is laid out video-major: index = video * frames + frame (classifier-free guidance just
 * doubles the number of videos).
 */
import { GraphError } from "../errors.js";
import type { GraphBuilder, Value } from "../graph/builder.js";
import * as op from "../graph/ops/index.js";
import { type Dim, type GraphShape, isStaticShape, shapeStr } from "../graph/shape.js";
import type { KeyValue, KeyValueTransform } from "./module.js";

/**
 * - "first": K/V of frame 0 of the video (Text2Video-Zero);
 * - "first-and-previous": [frame 0 ; frame f-1] concatenated (sparse-causal, Tune-A-Video);
 * - "anchors": the first `anchors` frames of the video concatenated, for every frame (key frames:
 *   the anchors attend to each other, so a set of key frames denoised together reproduces exactly
 *   when it is prepended to any later batch).
 */
export type CrossFrameMode = "first" | "first-and-previous" | "anchors";

export interface CrossFrameOptions {
  /** Frames per video (the batch must be a multiple of it). */
  readonly frames: number;
  /** Default "first". */
  readonly mode?: CrossFrameMode;
  /** Number of anchor frames for mode "anchors" (default 1, which equals "first"). */
  readonly anchors?: number;
}

/** Reshape to a runtime target whose result shape we know (keeps symbolic dims for later checks). */
function reshapeKnown(g: GraphBuilder, x: Value, target: Value, shape: GraphShape): Value {
  return g.node1("Reshape", [x, target], {}, { dtype: x.dtype, shape });
}

/** [B*F, ...rest] -> [B, F, ...rest]. */
function splitFrames(g: GraphBuilder, x: Value, frames: number): Value {
  const rest = x.shape.slice(1);
  if (isStaticShape(rest)) return op.Reshape(g, x, [-1, frames, ...rest]);
  return reshapeKnown(g, x, op.Concat(g, [g.int64s([-1, frames]), op.Shape(g, x, { start: 1 })], 0), [
    null,
    frames,
    ...rest,
  ]);
}

/** [B, F, ...rest] -> [B*F, ...rest] (`batch` is the merged dim when known). */
function mergeFrames(g: GraphBuilder, x: Value, batch: Dim): Value {
  const rest = x.shape.slice(2);
  if (isStaticShape(rest)) return reshapeKnown(g, x, g.int64s([-1, ...rest]), [batch, ...rest]);
  return reshapeKnown(g, x, op.Concat(g, [g.int64s([-1]), op.Shape(g, x, { start: 2 })], 0), [
    batch,
    ...rest,
  ]);
}

/** Replaces each frame's keys or values ([B*F, L, C]) by those of the frames the mode selects. */
export function crossFrameSelect(g: GraphBuilder, x: Value, options: CrossFrameOptions): Value {
  const { frames } = options;
  if (!Number.isInteger(frames) || frames < 1)
    throw new GraphError("crossFrame", `frames must be a positive integer, got ${frames}`);
  const batch = x.shape[0];
  if (typeof batch === "number" && batch % frames !== 0) {
    throw new GraphError(
      "crossFrame",
      `batch ${batch} of ${shapeStr(x.shape)} is not a multiple of ${frames} frames`,
    );
  }
  const perVideo = splitFrames(g, x, frames); // [B, F, L, C]
  if (options.mode === "anchors")
    return mergeFrames(g, anchorTokens(g, perVideo, options.anchors ?? 1, x.dtype), x.shape[0] ?? null);
  const first = op.Gather(g, perVideo, Array<number>(frames).fill(0), 1); // [B, F, L, C], all frame 0
  if ((options.mode ?? "first") === "first") return mergeFrames(g, first, x.shape[0] ?? null);
  const previous = op.Gather(
    g,
    perVideo,
    Array.from({ length: frames }, (_, f) => Math.max(f - 1, 0)),
    1,
  );
  return mergeFrames(g, op.Concat(g, [first, previous], 2), x.shape[0] ?? null); // [B*F, 2L, C]
}

/**
 * Cross-frame attention given the number of videos instead of frames (diffusers
 * `CrossFrameAttnProcessor(batch_size)`): frames per video = batch / videos, found at run time, so
 * one graph serves any number of frames.
 */
export interface CrossFrameByVideosOptions {
  /** Videos in the batch (diffusers `batch_size`; 2 with classifier-free guidance). */
  readonly videos: number;
  /** Default "first". */
  readonly mode?: CrossFrameMode;
  /** Number of anchor frames for mode "anchors" (default 1, which equals "first"). */
  readonly anchors?: number;
}

/** [V, F, L, C] -> the first `anchors` frames' tokens concatenated, for every frame: [V, F, A*L, C]. */
function anchorTokens(g: GraphBuilder, perVideo: Value, anchors: number, dtype: Value["dtype"]): Value {
  if (!Number.isInteger(anchors) || anchors < 1)
    throw new GraphError("crossFrame", `anchors must be a positive integer, got ${anchors}`);
  const [v, f, l, c] = perVideo.shape;
  if (typeof f === "number" && f < anchors)
    throw new GraphError("crossFrame", `${f} frames per video cannot hold ${anchors} anchor frames`);
  const head = op.Slice(g, perVideo, { starts: [0], ends: [anchors], axes: [1] }); // [V, A, L, C]
  const tokens = typeof l === "number" ? anchors * l : null;
  const joined = reshapeKnown(
    g,
    head,
    op.Concat(g, [g.int64s([0, 1, -1]), op.Shape(g, perVideo, { start: 3 })], 0),
    [v ?? null, 1, tokens, c ?? null],
  ); // [V, 1, A*L, C]
  const target = op.Concat(
    g,
    [op.Shape(g, perVideo, { start: 0, end: 2 }), op.Shape(g, joined, { start: 2 })],
    0,
  );
  return g.node1("Expand", [joined, target], {}, { dtype, shape: [v ?? null, f ?? null, tokens, c ?? null] });
}

/** [V, F, L, C] -> the keys/values each frame reads under `mode`: [V, F, L', C]. */
function selectPerVideo(
  g: GraphBuilder,
  perVideo: Value,
  mode: CrossFrameMode,
  anchors: number,
  dtype: Value["dtype"],
): Value {
  if (mode === "anchors") return anchorTokens(g, perVideo, anchors, dtype);
  const firstOnly = op.Slice(g, perVideo, { starts: [0], ends: [1], axes: [1] }); // [V, 1, L, C]
  const first = g.node1("Expand", [firstOnly, op.Shape(g, perVideo)], {}, { dtype, shape: perVideo.shape }); // [V, F, L, C]
  if (mode === "first") return first;
  const shifted = op.Slice(g, perVideo, { starts: [0], ends: [-1], axes: [1] }); // frames 0..F-2
  const previous = op.Concat(g, [firstOnly, shifted], 1); // frame f -> max(f - 1, 0)
  return op.Concat(g, [first, previous], 2); // [V, F, 2L, C]
}

/** [B, ...rest] -> [videos, B / videos, ...rest] (frames per video found at run time). */
function splitVideos(g: GraphBuilder, x: Value, videos: number): Value {
  if (!Number.isInteger(videos) || videos < 1)
    throw new GraphError("crossFrame", `videos must be a positive integer, got ${videos}`);
  const batch = x.shape[0] ?? null;
  if (typeof batch === "number" && batch % videos !== 0) {
    throw new GraphError(
      "crossFrame",
      `batch ${batch} of ${shapeStr(x.shape)} is not a multiple of ${videos} videos`,
    );
  }
  const frames: Dim = typeof batch === "number" ? batch / videos : null;
  const target = op.Concat(g, [g.int64s([videos, -1]), op.Shape(g, x, { start: 1 })], 0);
  return reshapeKnown(g, x, target, [videos, frames, ...x.shape.slice(1)]); // [V, F, L, C]
}

/** crossFrameSelect with the frame count derived at run time from the batch and `videos`. */
export function crossFrameSelectByVideos(
  g: GraphBuilder,
  x: Value,
  options: CrossFrameByVideosOptions,
): Value {
  const perVideo = splitVideos(g, x, options.videos);
  const selected = selectPerVideo(g, perVideo, options.mode ?? "first", options.anchors ?? 1, x.dtype);
  return mergeFrames(g, selected, x.shape[0] ?? null);
}

/** Graph input: which frames of each video (indices into the batch's frames) have their keys/values recorded. */
export const ANCHOR_RECORD_INPUT = "anchor_record";
/** Graph input of an attention's cached anchor keys (flat, [V, A, L, C] element order). */
export const anchorKeyInput = (path: string): string => `anchor_key.${path}`;
export const anchorValueInput = (path: string): string => `anchor_value.${path}`;
/** Graph output of an attention's recorded keys, [V, R, L, C] (R = length of anchor_record). */
export const recordedKeyOutput = (path: string): string => `recorded_key.${path}`;
export const recordedValueOutput = (path: string): string => `recorded_value.${path}`;
/** The anchor input an output's recorded tensors feed later (recorded_key.X -> anchor_key.X). */
export function anchorInputOf(recordedName: string): string | undefined {
  const m = /^recorded_(key|value)\.(.+)$/.exec(recordedName);
  return m ? `anchor_${m[1]}.${m[2]}` : undefined;
}

/**
 * Cross-frame selection with cached anchors: the frames of each video are [A cached anchors ;
 * the batch's F frames], the mode selects among all of them, and only the batch's frames are
 * returned ([B, L', C]). `cache` is flat ([V, A, L, C] elements, A >= 0 found at run time); the
 * frames `record` ([R] int64, indices into the batch's frames) come back as [V, R, L, C] so a later
 * batch can feed them as its cache instead of denoising those frames again.
 */
export function crossFrameSelectCached(
  g: GraphBuilder,
  x: Value,
  options: CrossFrameByVideosOptions & { readonly cache: Value; readonly record: Value },
): { readonly selected: Value; readonly recorded: Value } {
  const { videos } = options;
  const perVideo = splitVideos(g, x, videos); // [V, F, L, C]
  const [, , l, c] = perVideo.shape;
  const cache = reshapeKnown(
    g,
    options.cache,
    op.Concat(g, [g.int64s([videos, -1]), op.Shape(g, x, { start: 1 })], 0),
    [videos, null, l ?? null, c ?? null],
  ); // [V, A, L, C]
  const all = op.Concat(g, [cache, perVideo], 1); // [V, A + F, L, C]
  const selected = selectPerVideo(g, all, options.mode ?? "first", options.anchors ?? 1, x.dtype);
  const [, , ls, cs] = selected.shape;
  const own = g.node1(
    "Slice",
    [
      selected,
      op.Shape(g, cache, { start: 1, end: 2 }),
      op.Shape(g, all, { start: 1, end: 2 }),
      g.int64s([1]),
    ],
    {},
    { dtype: x.dtype, shape: [videos, perVideo.shape[1] ?? null, ls ?? null, cs ?? null] },
  ); // [V, F, L', C]
  const recorded = op.Gather(g, perVideo, options.record, 1); // [V, R, L, C]
  return { selected: mergeFrames(g, own, x.shape[0] ?? null), recorded };
}

/** A KeyValueTransform applying cross-frame attention to self-attention modules only. */
export function crossFrameAttention(
  options: CrossFrameOptions | (CrossFrameByVideosOptions & { readonly anchorCache?: boolean }),
): KeyValueTransform {
  const select = (g: GraphBuilder, x: Value): Value =>
    "videos" in options ? crossFrameSelectByVideos(g, x, options) : crossFrameSelect(g, x, options);
  return (kv: KeyValue, context): KeyValue => {
    if (!context.isSelfAttention) return kv;
    const g = context.graph;
    if (!("videos" in options) || options.anchorCache !== true) {
      return g.withScope(`${context.path}.cross_frame`, () => ({
        key: select(g, kv.key),
        value: select(g, kv.value),
      }));
    }
    // Anchor cache: keys/values of finished frames come in; the recorded frames' go out.
    const record = g.value(ANCHOR_RECORD_INPUT) ?? g.input(ANCHOR_RECORD_INPUT, "int64", ["recorded"]);
    const elements = `anchor_elements.${context.path}`;
    const key = g.input(anchorKeyInput(context.path), kv.key.dtype, [elements]);
    const value = g.input(anchorValueInput(context.path), kv.value.dtype, [elements]);
    return g.withScope(`${context.path}.cross_frame`, () => {
      const k = crossFrameSelectCached(g, kv.key, { ...options, cache: key, record });
      const v = crossFrameSelectCached(g, kv.value, { ...options, cache: value, record });
      g.output(k.recorded, recordedKeyOutput(context.path));
      g.output(v.recorded, recordedValueOutput(context.path));
      return { key: k.selected, value: v.selected };
    });
  };
}
