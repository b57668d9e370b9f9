/**
 * Flow warping error: how much a video changes between consecutive frames beyond what the motion
 * of the scene explains.
 *
 * For a pair (i, i+1) with flow F = flow(i -> i+1) and consistency mask M (255 = pixel counts),
 * W = warp(frame_{i+1}, F) (`cv2.remap`, bilinear, constant-0 border) and 8-bit values v / 255:
 *
 *     E_i = Σ_{p ∈ M} Σ_c d(frame_i(p, c) / 255, W(p, c) / 255) / (3 · |M|)
 *
 * with d = |a - b| ("l1", the opencv fixture's `warp_error.definition`, in float64) or (a - b)²
 * ("l2", Lai et al. 2018's formula). The clip's error is the mean of E_i over pairs. Following
 * Lai et al., flow and mask come from the **input** video (`reference`), and the **output** frames
 * are warped; with no reference the frames' own flow is used. The default mask is the fixture's:
 * squared forward-backward test (α 0.01, β 0.5) AND in-bounds; Lai et al. also exclude motion
 * boundaries (`consistency: { motionBoundaries: true }`). Always report which variant was used.
 */
import { InvalidArgumentError, throwIfAborted } from "../errors.js";
import type { Image } from "../image.js";
import type { LongTaskOptions } from "../progress.js";
import { pairFlows, type FarnebackOptions, type PairFlows } from "../control/flow.js";
import { consistencyMaskSync, type ConsistencyOptions } from "../control/occlusion.js";
import { loadCv } from "../control/opencv.js";
import { checkImage, checkSameSize } from "../control/validate.js";
import { warpImageSync, type FloatImage, type WarpOptions } from "../control/warp.js";

export type WarpDistance = "l1" | "l2";

/** Error of one pair; `mask` null means every pixel counts. */
export interface PairWarpError {
  /** Mean distance over counted pixels and channels (values scaled to [0, 1]); NaN if none counts. */
  readonly error: number;
  /** Number of pixels that count. */
  readonly pixels: number;
  /** pixels / (width · height). */
  readonly fraction: number;
}

/**
 * Warping error between a frame and the next frame warped onto it (8-bit, or an unrounded
 * float warp on the 0..255 scale such as `warpBilinearExact`):
 * `Σ_{p: mask(p) != 0} Σ_c d(frame(p,c)/255, warped(p,c)/255) / (channels · count)`.
 */
export function pairWarpError(
  frame: Image,
  warped: Image | FloatImage,
  mask: Image | null,
  distance: WarpDistance = "l1",
): PairWarpError {
  checkImage("frame", frame);
  if (warped.data.length !== warped.width * warped.height * warped.channels) {
    throw new InvalidArgumentError(
      "warped.data",
      `${warped.width * warped.height * warped.channels} values`,
      `${warped.data.length} values`,
    );
  }
  checkSameSize("frame", frame, "warped", warped);
  if (frame.channels !== warped.channels)
    throw new InvalidArgumentError("warped channels", `${frame.channels}`, warped.channels);
  if (mask !== null) {
    checkImage("mask", mask, [1]);
    checkSameSize("frame", frame, "mask", mask);
  }
  if (distance !== "l1" && distance !== "l2")
    throw new InvalidArgumentError("distance", '"l1" or "l2"', distance);
  const c = frame.channels;
  const n = frame.width * frame.height;
  let sum = 0;
  let pixels = 0;
  for (let p = 0; p < n; p++) {
    if (mask !== null && mask.data[p] === 0) continue;
    pixels++;
    for (let k = p * c; k < p * c + c; k++) {
      const d = (frame.data[k] ?? 0) / 255 - (warped.data[k] ?? 0) / 255;
      sum += distance === "l1" ? Math.abs(d) : d * d;
    }
  }
  return { error: pixels === 0 ? Number.NaN : sum / (pixels * c), pixels, fraction: pixels / n };
}

export interface ClipWarpErrorOptions extends LongTaskOptions {
  /** (optional) frames to compute flow and masks on (the input video); default `frames` itself. */
  readonly reference?: readonly Image[];
  /** (optional) precomputed flows of the reference (skips Farneback). */
  readonly flows?: PairFlows;
  /** (optional) Farneback parameters when flows are computed. */
  readonly farneback?: FarnebackOptions;
  /** (optional) consistency test; `false` = every pixel counts. Default the fixture's test. */
  readonly consistency?: ConsistencyOptions | false;
  /** (optional) remap options; default bilinear, constant 0 border (the fixture's). */
  readonly warp?: WarpOptions;
  /** (optional, default "l1") per-value distance. */
  readonly distance?: WarpDistance;
}

export interface ClipWarpError {
  /** Mean of the per-pair errors (pairs where nothing counts are skipped). */
  readonly mean: number;
  readonly pairs: PairWarpError[];
}

/** Warping error of a clip: {@link pairWarpError} for every consecutive pair, and their mean. */
export async function clipWarpError(
  frames: readonly Image[],
  options: ClipWarpErrorOptions = {},
): Promise<ClipWarpError> {
  const reference = options.reference ?? frames;
  if (reference.length !== frames.length) {
    throw new InvalidArgumentError(
      "reference",
      `${frames.length} frames (as many as the clip)`,
      `${reference.length} frames`,
    );
  }
  if (frames.length < 2) throw new InvalidArgumentError("frames", "at least 2 frames", frames.length);
  const first = frames[0];
  if (first !== undefined)
    for (const [i, f] of frames.entries()) checkSameSize("frames[0]", first, `frames[${i}]`, f);
  const flows =
    options.flows ??
    (await pairFlows(reference, {
      ...options.farneback,
      backward: options.consistency !== false,
      ...withSignal(options.signal),
    }));
  const cv = await loadCv();
  const pairs: PairWarpError[] = [];
  for (let i = 0; i + 1 < frames.length; i++) {
    throwIfAborted(options.signal, "warp error");
    const fw = flows.forward[i];
    const bw = flows.backward[i];
    const a = frames[i];
    const b = frames[i + 1];
    if (fw === undefined || a === undefined || b === undefined) {
      throw new InvalidArgumentError(
        "flows.forward",
        `${frames.length - 1} flows`,
        `${flows.forward.length}`,
      );
    }
    const warped = warpImageSync(cv, b, fw, options.warp ?? {});
    let mask: Image | null = null;
    if (options.consistency !== false) {
      if (bw === undefined)
        throw new InvalidArgumentError(
          "flows.backward",
          `${frames.length - 1} flows`,
          `${flows.backward.length}`,
        );
      mask = consistencyMaskSync(cv, fw, bw, options.consistency ?? {});
    }
    pairs.push(pairWarpError(a, warped, mask, options.distance ?? "l1"));
  }
  const valid = pairs.filter((p) => !Number.isNaN(p.error));
  const mean = valid.length === 0 ? Number.NaN : valid.reduce((s, p) => s + p.error, 0) / valid.length;
  return { mean, pairs };
}

function withSignal(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal === undefined ? {} : { signal };
}
