/**
 * Depth fidelity: does the generated video keep the source's 3D layout? A monocular depth model
 * gives relative inverse depth up to an unknown scale and shift, so maps are compared after a
 * per-frame least-squares alignment (methods.md E). For a predicted map p (depth of the output)
 * and a target map q (depth of the source), q is first normalised to [0, 1] by its min/max
 * (q' = (q - min q) / (max q - min q)), then (s, b) = argmin Σ (s·p + b - q')² and
 *
 *     alignedMse = Σ (s·p + b - q')² / N           (0 = same layout; scale-free, in [0, 1]² units)
 *     pearson    = cov(p, q) / (σ_p σ_q)            (1 = perfectly linearly related)
 *
 * both in float64. A constant map has no layout: its pearson is NaN, and with a constant p the
 * alignment is the mean (s = 0).
 */
import { InvalidArgumentError } from "../errors.js";
import type { Image } from "../image.js";
import type { FloatMap } from "../control/dense-model.js";
import type { DepthEstimator } from "../control/depth.js";

export interface DepthAgreement {
  readonly alignedMse: number;
  readonly pearson: number;
  /** The fitted scale and shift applied to the prediction. */
  readonly scale: number;
  readonly shift: number;
}

/** Compares two depth maps of the same size (see the module comment for the formulas). */
export function depthAgreement(predicted: FloatMap, target: FloatMap): DepthAgreement {
  if (predicted.width !== target.width || predicted.height !== target.height) {
    throw new InvalidArgumentError(
      "target size",
      `${predicted.width}x${predicted.height}`,
      `${target.width}x${target.height}`,
    );
  }
  const n = predicted.width * predicted.height;
  if (predicted.data.length !== n || target.data.length !== n || n === 0) {
    throw new InvalidArgumentError(
      "depth maps",
      `${n} values each`,
      `${predicted.data.length} and ${target.data.length}`,
    );
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of target.data) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const range = hi > lo ? hi - lo : 1;
  let mp = 0;
  let mq = 0;
  for (let i = 0; i < n; i++) {
    mp += predicted.data[i] ?? 0;
    mq += ((target.data[i] ?? 0) - lo) / range;
  }
  mp /= n;
  mq /= n;
  let spp = 0;
  let sqq = 0;
  let spq = 0;
  for (let i = 0; i < n; i++) {
    const dp = (predicted.data[i] ?? 0) - mp;
    const dq = ((target.data[i] ?? 0) - lo) / range - mq;
    spp += dp * dp;
    sqq += dq * dq;
    spq += dp * dq;
  }
  const scale = spp === 0 ? 0 : spq / spp;
  const shift = mq - scale * mp;
  let sse = 0;
  for (let i = 0; i < n; i++) {
    const r = scale * (predicted.data[i] ?? 0) + shift - ((target.data[i] ?? 0) - lo) / range;
    sse += r * r;
  }
  const pearson = spp === 0 || sqq === 0 ? Number.NaN : spq / Math.sqrt(spp * sqq);
  return { alignedMse: sse / n, pearson, scale, shift };
}

/**
 * Depth fidelity of a clip: `depthAgreement(depth(output_t), depth(source_t))` per frame with the
 * given estimator, and the means over frames.
 */
export async function clipDepthFidelity(
  outputs: readonly Image[],
  sources: readonly Image[],
  estimator: DepthEstimator,
): Promise<{
  readonly meanAlignedMse: number;
  readonly meanPearson: number;
  readonly frames: DepthAgreement[];
}> {
  if (outputs.length !== sources.length || outputs.length === 0) {
    throw new InvalidArgumentError(
      "sources",
      `${outputs.length} frames (one per output frame, at least 1)`,
      `${sources.length}`,
    );
  }
  const frames: DepthAgreement[] = [];
  for (const [t, output] of outputs.entries()) {
    const source = sources[t];
    if (source === undefined) continue;
    frames.push(depthAgreement(await estimator.estimate(output), await estimator.estimate(source)));
  }
  const mean = (f: (d: DepthAgreement) => number): number =>
    frames.reduce((s, d) => s + f(d), 0) / frames.length;
  return { meanAlignedMse: mean((d) => d.alignedMse), meanPearson: mean((d) => d.pearson), frames };
}
