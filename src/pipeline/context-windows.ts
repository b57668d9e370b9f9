/**
 * Context windows for AnimateDiff videos longer than the motion module's window, as
 * ComfyUI-AnimateDiff-Evolved offers them (animatediff/context.py, after animatediff-cli): every
 * denoising step, the frames are split into windows of `contextLength` frames, the noise prediction
 * runs once per window, and each frame's prediction is the weighted average over the windows that
 * contain it.
 *
 * Schedules (frames F, context length N, overlap O, hop N - O):
 * - `static`: windows start at 0, hop, 2·hop, ...; the last one is moved back to end at frame F-1.
 *   The same windows every step (ComfyUI "standard static").
 * - `uniform`: windows start at p, p + hop, ... with an offset p that changes every step (F times the
 *   bit-reversed step number, so seams never sit at the same frame twice in a row); frame indices wrap
 *   around modulo F, so the video is treated as a loop (ComfyUI "looped uniform"). `closedLoop` also
 *   adds the windows that start within the last O frames, joining the end to the start. `stride` s adds
 *   dilated levels: windows of every 2nd, 4th, ... 2^(s-1)-th frame (hop N·d - O), as long as N·d <= F.
 * - `sliding`: the `uniform` windows without wrapping (ComfyUI "standard uniform"): a window that
 *   would wrap is moved back to end at the last frame, a window starting at the wrapped-to frame is
 *   added unless another window already holds that frame, and repeated windows are dropped.
 * With F <= N every schedule gives the one window [0, ..., F-1] (the plain, windowless path).
 *
 * Fusion weights per position in a window: `flat` (all 1) or `pyramid` (1, 2, ..., N/2, N/2, ..., 1;
 * for odd N 1, ..., (N+1)/2, ..., 1: larger away from the window edges, as FreeNoise's weighted
 * average). The dilated-level cap (N·d <= F, not ComfyUI's N·d < 2F) keeps every frame of a window
 * distinct, so a window never counts a frame twice.
 */
import { InvalidArgumentError } from "../errors.js";
import { type HostTensor, numel, shapeToString, tensor } from "../tensor.js";
import { roundHalfEven } from "../util/round.js";

export type ContextSchedule = "uniform" | "sliding" | "static";
export type ContextFuse = "flat" | "pyramid";

export const CONTEXT_SCHEDULES: readonly ContextSchedule[] = ["uniform", "sliding", "static"];
export const CONTEXT_FUSES: readonly ContextFuse[] = ["flat", "pyramid"];

export interface ContextOptions {
  /** Frames per window: the motion module's window (AnimateDiff: 16). */
  readonly contextLength: number;
  /** (optional, default 4, at most contextLength - 1) frames shared by neighbouring windows. */
  readonly overlap?: number;
  /** (optional, default 1) dilation levels of `uniform` / `sliding` (1: contiguous windows only). */
  readonly stride?: number;
  /** (optional, default "uniform") how windows are placed; see the module comment. */
  readonly schedule?: ContextSchedule;
  /** (optional, default false) `uniform` only: add the windows joining the last frames to the first. */
  readonly closedLoop?: boolean;
  /** (optional, default "flat" for uniform, "pyramid" otherwise, as ComfyUI's nodes) fusion weights. */
  readonly fuse?: ContextFuse;
}

interface Resolved {
  readonly n: number;
  readonly overlap: number;
  readonly stride: number;
  readonly schedule: ContextSchedule;
  readonly closedLoop: boolean;
}

function positiveInteger(name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min)
    throw new InvalidArgumentError(name, `an integer >= ${min}`, value);
  return value;
}

function resolve(options: ContextOptions): Resolved {
  const n = positiveInteger("context.contextLength", options.contextLength, 1);
  const overlap = options.overlap ?? Math.min(4, n - 1);
  if (!Number.isInteger(overlap) || overlap < 0 || overlap >= n) {
    throw new InvalidArgumentError(
      "context.overlap",
      `an integer in [0, ${n - 1}] (below contextLength)`,
      overlap,
    );
  }
  const stride = positiveInteger("context.stride", options.stride ?? 1, 1);
  const schedule = options.schedule ?? "uniform";
  if (!CONTEXT_SCHEDULES.includes(schedule)) {
    throw new InvalidArgumentError("context.schedule", `one of ${CONTEXT_SCHEDULES.join(", ")}`, schedule);
  }
  return { n, overlap, stride, schedule, closedLoop: options.closedLoop === true };
}

/** The fusion weights `options` asks for (its default depends on the schedule). */
export function contextFuse(options: ContextOptions): ContextFuse {
  const fuse = options.fuse ?? ((options.schedule ?? "uniform") === "uniform" ? "flat" : "pyramid");
  if (!CONTEXT_FUSES.includes(fuse)) {
    throw new InvalidArgumentError("context.fuse", `one of ${CONTEXT_FUSES.join(", ")}`, fuse);
  }
  return fuse;
}

/**
 * The step's offset in [0, 1): the 64-bit step number with its bits reversed, over 2^64
 * (0, 1/2, 1/4, 3/4, 1/8, ...), so consecutive steps split the frames at far-apart places.
 */
export function orderedHalving(step: number): number {
  positiveInteger("step", step, 0);
  let v = BigInt(step);
  let reversed = 0n;
  for (let i = 0; i < 64; i++) {
    reversed = (reversed << 1n) | (v & 1n);
    v >>= 1n;
  }
  return Number(reversed) / 2 ** 64;
}

const range = (start: number, length: number, spacing = 1): number[] =>
  Array.from({ length }, (_, k) => start + k * spacing);

function staticWindows(frames: number, r: Resolved): number[][] {
  const windows: number[][] = [];
  for (let start = 0; ; start += r.n - r.overlap) {
    if (start + r.n >= frames) {
      windows.push(range(frames - r.n, r.n));
      return windows;
    }
    windows.push(range(start, r.n));
  }
}

/** How many dilation levels fit: d = 1, 2, 4, ... while N·d <= F, at most `stride`. */
function dilationLevels(frames: number, r: Resolved): number {
  let levels = 1;
  while (levels < r.stride && r.n * 2 ** levels <= frames) levels++;
  return levels;
}

function loopedWindows(frames: number, r: Resolved, step: number, closedLoop: boolean): number[][] {
  const shift = orderedHalving(step);
  const pad = roundHalfEven(frames * shift);
  const windows: number[][] = [];
  for (let level = 0; level < dilationLevels(frames, r); level++) {
    const d = 2 ** level;
    const end = frames + pad - (closedLoop ? 0 : r.overlap);
    for (let j = Math.floor(shift * d) + pad; j < end; j += r.n * d - r.overlap) {
      windows.push(range(j, r.n, d).map((e) => e % frames));
    }
  }
  return windows;
}

function slidingWindows(frames: number, r: Resolved, step: number): number[][] {
  const kept: number[][] = [];
  const wrappedTo: { start: number; spacing: number }[] = [];
  for (const w of loopedWindows(frames, r, step, false)) {
    const roll = w.findIndex((v, i) => i > 0 && v < (w[i - 1] ?? 0));
    if (roll < 0) {
      kept.push(w);
      continue;
    }
    const spacing = ((w[1] ?? 0) - (w[0] ?? 0) + frames) % frames;
    kept.push(range(frames - 1 - (r.n - 1) * spacing, r.n, spacing));
    wrappedTo.push({ start: w[roll] ?? 0, spacing });
  }
  for (const { start, spacing } of wrappedTo) {
    if (!kept.some((w) => w.includes(start))) kept.push(range(start, r.n, spacing));
  }
  const seen = new Set<string>();
  return kept.filter((w) => {
    const key = w.join();
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * The windows (frame indices, in the order the model sees them) of denoising step `step` (0-based)
 * for a video of `numFrames` frames. One window [0..F-1] when F <= contextLength.
 */
export function contextWindows(numFrames: number, options: ContextOptions, step = 0): number[][] {
  const frames = positiveInteger("numFrames", numFrames, 1);
  const r = resolve(options);
  positiveInteger("step", step, 0);
  if (frames <= r.n) return [range(0, frames)];
  switch (r.schedule) {
    case "static":
      return staticWindows(frames, r);
    case "uniform":
      return loopedWindows(frames, r, step, r.closedLoop);
    case "sliding":
      return slidingWindows(frames, r, step);
  }
}

/** Per-position weights of a window of `length` frames. */
export function fuseWeights(length: number, fuse: ContextFuse): Float64Array {
  positiveInteger("length", length, 1);
  if (fuse === "flat") return new Float64Array(length).fill(1);
  // Distance (1-based) from the nearer window edge: 1, 2, ..., ceil(L/2), ..., 2, 1.
  return Float64Array.from({ length }, (_, i) => Math.min(i + 1, length - i));
}

/** True when `windows` is the single window [0, 1, ..., frames-1] (nothing to split or fuse). */
export function isWholeVideo(windows: readonly (readonly number[])[], frames: number): boolean {
  const [only] = windows;
  return (
    windows.length === 1 && only !== undefined && only.length === frames && only.every((f, i) => f === i)
  );
}

/** Picks `frames` (indices into `axis`) of `t`, in that order: [.., F, ..] -> [.., frames.length, ..]. */
export function gatherFrames(
  t: HostTensor<"float32">,
  frames: readonly number[],
  axis: number,
): HostTensor<"float32"> {
  const size = t.shape[axis];
  if (size === undefined)
    throw new InvalidArgumentError("axis", `an axis of ${shapeToString(t.shape)}`, axis);
  const outer = numel(t.shape.slice(0, axis));
  const inner = numel(t.shape.slice(axis + 1));
  const out = new Float32Array(outer * frames.length * inner);
  for (const [k, f] of frames.entries()) {
    if (!Number.isInteger(f) || f < 0 || f >= size) {
      throw new InvalidArgumentError("window frame", `an index in [0, ${size - 1}]`, f);
    }
    for (let o = 0; o < outer; o++) {
      const src = (o * size + f) * inner;
      out.set(t.data.subarray(src, src + inner), (o * frames.length + k) * inner);
    }
  }
  const shape = [...t.shape];
  shape[axis] = frames.length;
  return tensor("float32", shape, out);
}

/**
 * One noise prediction for a window: `sample` is the video's [B, C, n, h, w] restricted to
 * `frames`; returns [B', C', n, h, w] (the same B', C', h, w for every window).
 */
export type WindowPredict = (
  frames: readonly number[],
  sample: HostTensor<"float32">,
  index: number,
) => Promise<HostTensor<"float32">>;

/**
 * Runs `predict` on every window of `sample` [B, C, F, h, w] (frames on axis 2) and fuses the results:
 * each frame's output is sum_k w_k(pos) pred_k / sum_k w_k(pos) over the windows k holding it, with
 * w the window's `fuse` weights at the frame's position (computed in float64, stored as float32).
 * A frame no window holds is an error.
 */
export async function predictInWindows(
  sample: HostTensor<"float32">,
  windows: readonly (readonly number[])[],
  fuse: ContextFuse,
  predict: WindowPredict,
): Promise<HostTensor<"float32">> {
  if (sample.shape.length !== 5) {
    throw new InvalidArgumentError(
      "sample",
      "a [batch, channels, frames, height, width] tensor",
      shapeToString(sample.shape),
    );
  }
  const frames = sample.shape[2] ?? 0;
  let acc: Float64Array | undefined;
  let outShape: readonly number[] = [];
  const weightSum = new Float64Array(frames);
  for (const [index, window] of windows.entries()) {
    const pred = await predict(window, gatherFrames(sample, window, 2), index);
    const [b = 0, c = 0, n = 0, ...hw] = pred.shape;
    const expected = [
      acc ? (outShape[0] ?? 0) : b,
      acc ? (outShape[1] ?? 0) : c,
      window.length,
      ...sample.shape.slice(3),
    ];
    if (pred.shape.join() !== expected.join()) {
      throw new InvalidArgumentError(
        `prediction of window ${index}`,
        `shape ${shapeToString(expected)}`,
        shapeToString(pred.shape),
      );
    }
    const inner = numel(hw);
    if (acc === undefined) {
      outShape = [b, c, frames, ...hw];
      acc = new Float64Array(numel(outShape));
    }
    const weights = fuseWeights(window.length, fuse);
    for (const [k, f] of window.entries()) {
      const wk = weights[k] ?? 0;
      weightSum[f] = (weightSum[f] ?? 0) + wk;
      for (let bc = 0; bc < b * c; bc++) {
        const src = (bc * n + k) * inner;
        const dst = (bc * frames + f) * inner;
        for (let i = 0; i < inner; i++) acc[dst + i] = (acc[dst + i] ?? 0) + wk * (pred.data[src + i] ?? NaN);
      }
    }
  }
  const missing = [...weightSum.keys()].filter((f) => !((weightSum[f] ?? 0) > 0));
  if (acc === undefined || missing.length > 0) {
    throw new InvalidArgumentError(
      "windows",
      `windows covering every frame of ${frames}`,
      `no window for frames ${missing.join(", ")}`,
    );
  }
  const inner = numel(outShape.slice(3));
  const out = new Float32Array(acc.length);
  for (let i = 0; i < out.length; i++)
    out[i] = (acc[i] ?? 0) / (weightSum[Math.floor(i / inner) % frames] ?? 1);
  return tensor("float32", outShape, out);
}
