/**
 * Forward-backward flow consistency masks (which pixels of frame i have a trustworthy match in
 * frame i+1). For pixel x of frame i with forward flow w = F_fw(x), the backward flow is sampled at
 * its match: ŵ = F_bw(x + w) via `cv2.remap(F_bw, map_x, map_y, INTER_LINEAR, BORDER_REPLICATE)`
 * (float32, map = grid + F_fw). The pixel counts (mask 255) when, in float64 from the float32 flows:
 *
 * - `"squared"` (default; Lai et al. 2018, the opencv fixture's primary mask):
 *   `|w + ŵ|² < α (|w|² + |ŵ|²) + β`
 * - `"unsquared-lhs"` (the fixture's `consistency_unsquared_lhs_and_inbounds` variant):
 *   `|w + ŵ| < α (|w|² + |ŵ|²) + β`
 * - `"unsquared"` (GMFlow / Rerender `forward_backward_consistency_check`, which uses the
 *   backward flow at x, not at x + w, for the magnitude): `|w + ŵ| < α (|w| + |F_bw(x)|) + β`;
 *   NLA's "residual < 1 px" is this mode with α = 0, β = 1.
 *
 * and, when `inBounds` (default true), its match lies inside frame i+1:
 * `0 <= x + w_x <= W - 1` and `0 <= y + w_y <= H - 1` (float32 map values). With
 * `motionBoundaries` (Lai et al.), pixels where `|∇w_x|² + |∇w_y|² > 0.01 |w|² + 0.002` (forward
 * differences, zero on the last row/column) are excluded too. Defaults α = 0.01, β = 0.5.
 */
import type { Image } from "../image.js";
import { image } from "../image.js";
import { checkFlow, type FlowField } from "./flow.js";
import { loadCv, type Cv } from "./opencv.js";
import { checkNumber, checkOneOf, checkSameSize } from "./validate.js";
import { flowToMaps, warpFloatsSync, type BorderMode, type RemapInterpolation } from "./warp.js";

export type ConsistencyNorm = "squared" | "unsquared-lhs" | "unsquared";

export interface ConsistencyOptions {
  /** (optional, default 0.01) relative tolerance α. */
  readonly alpha?: number;
  /** (optional, default 0.5) absolute tolerance β (px² for "squared", px otherwise). */
  readonly beta?: number;
  /** (optional, default "squared") which test; see the module comment. */
  readonly norm?: ConsistencyNorm;
  /** (optional, default true) also require the match x + w to lie inside the frame. */
  readonly inBounds?: boolean;
  /** (optional, default false) also exclude Lai et al.'s motion boundaries of the forward flow. */
  readonly motionBoundaries?: boolean;
  /**
   * (optional, default linear / replicate) how ŵ = F_bw(x + w) is sampled: the `cv2.remap`
   * interpolation and border (border value 0) of the backward flow.
   */
  readonly sampling?: {
    readonly interpolation?: RemapInterpolation;
    readonly borderMode?: BorderMode;
  };
}

/**
 * Consistency mask of a pair: one-channel image, 255 where the pixel counts, 0 where it is occluded,
 * inconsistent or (with `inBounds`) leaves the frame.
 */
export async function consistencyMask(
  forward: FlowField,
  backward: FlowField,
  options: ConsistencyOptions = {},
): Promise<Image> {
  return consistencyMaskSync(await loadCv(), forward, backward, options);
}

/** {@link consistencyMask} with an already loaded OpenCV module. */
export function consistencyMaskSync(
  cv: Cv,
  forward: FlowField,
  backward: FlowField,
  options: ConsistencyOptions = {},
): Image {
  checkFlow("forward", forward);
  checkFlow("backward", backward);
  checkSameSize("forward", forward, "backward", backward);
  const alpha = options.alpha ?? 0.01;
  const beta = options.beta ?? 0.5;
  const norm = options.norm ?? "squared";
  checkNumber("alpha", alpha, 0, Number.MAX_VALUE);
  checkNumber("beta", beta, 0, Number.MAX_VALUE);
  checkOneOf("norm", norm, ["squared", "unsquared-lhs", "unsquared"]);
  const { width: w, height: h } = forward;
  const sampled = warpFloatsSync(cv, backward.data, { width: w, height: h, channels: 2 }, forward, {
    interpolation: options.sampling?.interpolation ?? "linear",
    borderMode: options.sampling?.borderMode ?? "replicate",
  });
  const { mapX, mapY } = flowToMaps(forward);
  const boundary = options.motionBoundaries === true ? motionBoundaryMask(forward) : undefined;
  const f = forward.data;
  const b = backward.data;
  const out = new Uint8Array(w * h);
  for (let k = 0; k < w * h; k++) {
    const u = f[2 * k] ?? 0;
    const v = f[2 * k + 1] ?? 0;
    const a = sampled[2 * k] ?? 0;
    const c = sampled[2 * k + 1] ?? 0;
    const sx = u + a;
    const sy = v + c;
    const residual2 = sx * sx + sy * sy;
    let ok: boolean;
    if (norm === "squared") ok = residual2 < alpha * (u * u + v * v + a * a + c * c) + beta;
    else if (norm === "unsquared-lhs")
      ok = Math.sqrt(residual2) < alpha * (u * u + v * v + a * a + c * c) + beta;
    else
      ok =
        Math.sqrt(residual2) <
        alpha * (Math.hypot(u, v) + Math.hypot(b[2 * k] ?? 0, b[2 * k + 1] ?? 0)) + beta;
    if (ok && (options.inBounds ?? true)) {
      const mx = mapX[k] ?? -1;
      const my = mapY[k] ?? -1;
      ok = mx >= 0 && mx <= w - 1 && my >= 0 && my <= h - 1;
    }
    if (ok && boundary !== undefined && boundary[k] === 1) ok = false;
    out[k] = ok ? 255 : 0;
  }
  return image(w, h, 1, out);
}

/**
 * Lai et al.'s motion-boundary test on one flow: 1 where `|∇u|² + |∇v|² > 0.01 (u² + v²) + 0.002`,
 * with forward differences `u(x) - u(x+1)` (zero on the last column/row).
 */
export function motionBoundaryMask(flow: FlowField): Uint8Array {
  checkFlow("flow", flow);
  const { width: w, height: h, data: d } = flow;
  const out = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const k = y * w + x;
      const u = d[2 * k] ?? 0;
      const v = d[2 * k + 1] ?? 0;
      const r = x + 1 < w ? k + 1 : k;
      const down = y + 1 < h ? k + w : k;
      const udu = u - (d[2 * r] ?? 0);
      const vdu = v - (d[2 * r + 1] ?? 0);
      const udv = u - (d[2 * down] ?? 0);
      const vdv = v - (d[2 * down + 1] ?? 0);
      if (udu * udu + udv * udv + vdu * vdu + vdv * vdv > 0.01 * (u * u + v * v) + 0.002) out[k] = 1;
    }
  }
  return out;
}
