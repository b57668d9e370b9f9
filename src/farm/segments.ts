/**
 * How a render is cut into segment jobs. The engine's batch plan (`batchPlan` in
 * src/engine/generate-video.ts) is kept as it is — a segment is a run of whole batches, so every frame
 * is denoised in the same batch, with the same anchors, as in a single-process render, and the frames
 * are the same bit for bit:
 *
 * - the **first job** is the plan's first batch: frame 0, or the key frames that every later batch
 *   reads as attention anchors;
 * - then **segments** of at least `segment` frames (whole batches, in plan order). Without chaining
 *   they run in parallel once the first job is done; a chained render (`isChained`: a method reads the
 *   previous output or carries state from frame to frame) runs them one after the other.
 */
import { InvalidArgumentError } from "../errors.js";

export interface FarmPlan {
  /** Frames of the first job (the plan's first batch). */
  readonly first: readonly number[];
  /** The other frames, one entry per segment job, in plan order. */
  readonly segments: readonly (readonly number[])[];
  /** True when the segments must run one after the other. */
  readonly chained: boolean;
}

/** (optional default) frames per segment job. */
export const DEFAULT_SEGMENT = 8;

/** Cuts the batch plan into the first job and segments of >= `segment` frames (whole batches). */
export function farmPlan(
  plan: readonly (readonly number[])[],
  chained: boolean,
  segment: number = DEFAULT_SEGMENT,
): FarmPlan {
  if (!Number.isInteger(segment) || segment < 1)
    throw new InvalidArgumentError("--segment", "an integer >= 1 (frames per job)", segment);
  const [first = [], ...rest] = plan;
  const segments: number[][] = [];
  let current: number[] = [];
  for (const batch of rest) {
    current.push(...batch);
    if (current.length >= segment) {
      segments.push(current);
      current = [];
    }
  }
  if (current.length > 0) segments.push(current);
  return { first: [...first], segments, chained };
}

/** "3-4" or "0,4,8" (key frames): a segment's frames for job ids and messages. */
export function segmentLabel(frames: readonly number[]): string {
  const contiguous = frames.every((f, k) => k === 0 || f === (frames[k - 1] ?? 0) + 1);
  if (frames.length === 0) return "none";
  return contiguous && frames.length > 1 ? `${frames[0]}-${frames[frames.length - 1]}` : frames.join(",");
}
