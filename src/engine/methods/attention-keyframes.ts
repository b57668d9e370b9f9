/**
 * Attention `keyframes` — keys/values from a bounded set of key frames (the idea of ControlVideo's
 * hierarchical sampler and TokenFlow's pivots): `count` key frames spread evenly over the video are
 * denoised first, together, each attending to all of them; every later batch is prepended with the
 * key frames and every frame attends to their concatenated keys/values. The key frames attend only
 * to each other, so they reproduce exactly in every batch. Memory is bounded by count + batch frames
 * whatever the video's length. The key frames' keys/values are recorded in their batch and fed to
 * every later batch (the anchor cache), so they are not denoised again.
 */
import { InvalidArgumentError } from "../../errors.js";
import type { CrossFrameSetting } from "../../models/unet/build.js";
import type { RenderInfo, VideoMethod } from "../method.js";

/** `count` frame indices spread evenly over `frames` (first and last included). */
export function keyframeIndices(frames: number, count: number): number[] {
  const n = Math.min(frames, count);
  if (n <= 1) return [0];
  return [...new Set(Array.from({ length: n }, (_, j) => Math.round((j * (frames - 1)) / (n - 1))))];
}

export function keyframeAttention(videos: number, count = 4): VideoMethod {
  if (!Number.isInteger(count) || count < 1)
    throw new InvalidArgumentError("--keyframes", "an integer >= 1", count);
  let keys: number[] = [];
  const keysFor = (info: RenderInfo): number[] => (keys = keyframeIndices(info.frames, count));
  return {
    id: "attention:keyframes",
    role: "attention",
    settings: { count },
    check(info) {
      if (info.frames < count)
        throw new InvalidArgumentError("--keyframes", `at most the frame count (${info.frames})`, count);
      keysFor(info);
    },
    crossFrame: (): CrossFrameSetting => ({
      batchSize: videos,
      mode: "anchors",
      anchors: count,
      anchorCache: true,
    }),
    anchorCache: (info) => keysFor(info),
    firstBatch: (info) => keysFor(info),
    anchors: (fresh) => (fresh.every((f) => keys.includes(f)) ? [] : keys),
  };
}
