/**
 * Per-frame measurements of the study, streamed: the source is visited once, frame by frame
 * ({@link SourceInstant}: its Canny edges, its depth, and the Farneback flows and consistency mask of
 * the pair that ends at it), and each render's frame at that instant is fed to its {@link ClipMeter},
 * which keeps only the previous frame and the per-frame numbers. The formulas are those of
 * src/metrics/ (warp-error.ts, flicker.ts, edge-fidelity.ts, depth-fidelity.ts), applied pair by pair
 * instead of to whole arrays, so memory does not grow with the clip beyond one number per frame:
 *
 * - warp error of pair (t-1, t): `pairWarpError(out_{t-1}, remap(out_t, flow(src_{t-1} -> src_t)),
 *   mask)`, the mask being the source's squared forward-backward test (α 0.01, β 0.5) AND in bounds,
 *   as `clipWarpError(outputs, { reference: sources })` computes it;
 * - flicker of pair (t-1, t): `|L̄_t - L̄_{t-1}|` (BT.601 mean luma on [0, 1]); the flicker index is
 *   their mean (`flickerIndex`);
 * - edge F1 at t: `edgeF1(Canny(gray(out_t)), Canny(gray(src_t)))` with the same thresholds, 2 px
 *   tolerance;
 * - depth at t: `depthAgreement(depth(out_t), depth(src_t))`.
 */
import { InvalidArgumentError } from "../errors.js";
import type { Image } from "../image.js";
import { cannySync, type CannyOptions } from "../control/canny.js";
import type { FloatMap } from "../control/dense-model.js";
import type { DepthEstimator } from "../control/depth.js";
import { farnebackFlowSync, type FlowField } from "../control/flow.js";
import { toGraySync } from "../control/gray.js";
import { consistencyMaskSync } from "../control/occlusion.js";
import type { Cv } from "../control/opencv.js";
import { warpImageSync } from "../control/warp.js";
import { depthAgreement } from "../metrics/depth-fidelity.js";
import { edgeF1 } from "../metrics/edge-fidelity.js";
import { meanLuminance } from "../metrics/flicker.js";
import { pairWarpError, type WarpDistance } from "../metrics/warp-error.js";

/** What the study needs of a depth model: `DepthEstimator` or anything with its `estimate`. */
export type DepthModel = Pick<DepthEstimator, "estimate">;

/** Everything about source frame t that every render's frame t is compared with. */
export interface SourceInstant {
  readonly index: number;
  readonly frame: Image;
  readonly gray: Image;
  readonly edges: Image;
  readonly depth: FloatMap | undefined;
  /** Flow from source frame t-1 to t and the consistency mask of that pair (absent at t = 0). */
  readonly pair: { readonly forward: FlowField; readonly mask: Image } | undefined;
}

export interface MeasureSettings {
  readonly canny: CannyOptions;
  readonly distance: WarpDistance;
  readonly depth: DepthModel | undefined;
}

/** Builds the instant for source frame `index`, given the previous instant (for the flows). */
export async function sourceInstant(
  cv: Cv,
  index: number,
  frame: Image,
  previous: SourceInstant | undefined,
  settings: MeasureSettings,
): Promise<SourceInstant> {
  const gray = toGraySync(cv, frame);
  let pair: SourceInstant["pair"];
  if (previous !== undefined) {
    // clipWarpError's pairing: flows of the input, forward (t-1 -> t) and backward (t -> t-1).
    const forward = farnebackFlowSync(cv, previous.gray, gray);
    const backward = farnebackFlowSync(cv, gray, previous.gray);
    pair = { forward, mask: consistencyMaskSync(cv, forward, backward) };
  }
  return {
    index,
    frame,
    gray,
    edges: cannySync(cv, gray, settings.canny),
    depth: settings.depth === undefined ? undefined : await settings.depth.estimate(frame),
    pair,
  };
}

/** Per-frame series of one clip; index t = source frame t, null where a value does not exist. */
export interface FrameSeries {
  /** L̄_t, BT.601 mean luma on [0, 1]. */
  readonly luminance: number[];
  /** |L̄_t - L̄_{t-1}|; null at t = 0. */
  readonly flicker: (number | null)[];
  /** Warp error of the pair (t-1, t); null at t = 0 and where no pixel passes the consistency test. */
  readonly warpError: (number | null)[];
  /** Fraction of pixels that pass the consistency test for the pair (t-1, t); null at t = 0. */
  readonly warpPixels: (number | null)[];
  readonly edgeF1: number[];
  /** Pearson r of the depth maps (null for a constant map); absent without a depth model. */
  readonly depthPearson?: (number | null)[];
  /** Aligned MSE of the depth maps; absent without a depth model. */
  readonly depthAlignedMse?: number[];
}

/** Means of the series (null when there is nothing to average). */
export interface ClipSummary {
  readonly measuredFrames: number;
  readonly warpError: number | null;
  readonly flickerIndex: number | null;
  readonly edgeF1: number | null;
  readonly depthPearson: number | null;
  readonly depthAlignedMse: number | null;
}

const finite = (x: number): number | null => (Number.isFinite(x) ? x : null);

function mean(values: readonly (number | null)[] | undefined): number | null {
  if (values === undefined) return null;
  let sum = 0;
  let n = 0;
  for (const v of values) {
    if (v === null) continue;
    sum += v;
    n++;
  }
  return n === 0 ? null : sum / n;
}

/** Accumulates the per-frame numbers of one clip, holding only its previous frame. */
export class ClipMeter {
  readonly series: FrameSeries;
  private previous: Image | undefined;

  constructor(private readonly settings: MeasureSettings) {
    this.series = {
      luminance: [],
      flicker: [],
      warpError: [],
      warpPixels: [],
      edgeF1: [],
      ...(settings.depth === undefined ? {} : { depthPearson: [], depthAlignedMse: [] }),
    };
  }

  get measuredFrames(): number {
    return this.series.luminance.length;
  }

  /**
   * Measures `frame` (RGB, the source's size) at source instant `at`, which must be the next one
   * (t = the number of frames measured so far). `known` passes values already computed for this
   * very frame (the input clip measured against itself).
   */
  async add(
    cv: Cv,
    frame: Image,
    at: SourceInstant,
    known: { readonly edges?: Image; readonly depth?: FloatMap } = {},
  ): Promise<void> {
    const s = this.series;
    if (at.index !== s.luminance.length) {
      throw new InvalidArgumentError(
        "source instant",
        `source frame ${s.luminance.length} (the next one)`,
        at.index,
      );
    }
    const luminance = meanLuminance(frame);
    const last = s.luminance[s.luminance.length - 1];
    s.flicker.push(last === undefined ? null : Math.abs(luminance - last));
    s.luminance.push(luminance);
    if (this.previous !== undefined && at.pair !== undefined) {
      const warped = warpImageSync(cv, frame, at.pair.forward);
      const e = pairWarpError(this.previous, warped, at.pair.mask, this.settings.distance);
      s.warpError.push(finite(e.error));
      s.warpPixels.push(e.fraction);
    } else {
      s.warpError.push(null);
      s.warpPixels.push(null);
    }
    const edges = known.edges ?? cannySync(cv, toGraySync(cv, frame), this.settings.canny);
    s.edgeF1.push(edgeF1(edges, at.edges).f1);
    if (this.settings.depth !== undefined && at.depth !== undefined) {
      const d = depthAgreement(known.depth ?? (await this.settings.depth.estimate(frame)), at.depth);
      s.depthPearson?.push(finite(d.pearson));
      s.depthAlignedMse?.push(d.alignedMse);
    }
    this.previous = frame;
  }

  summary(): ClipSummary {
    const s = this.series;
    return {
      measuredFrames: s.luminance.length,
      warpError: mean(s.warpError),
      flickerIndex: mean(s.flicker),
      edgeF1: mean(s.edgeF1),
      depthPearson: mean(s.depthPearson),
      depthAlignedMse: mean(s.depthAlignedMse),
    };
  }
}
