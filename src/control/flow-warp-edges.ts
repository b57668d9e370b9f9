/**
 * Motion-compensated edge-map interpolation: an alternative to blending (`interpolate.ts`).
 *
 * Blending `(1 - t)·E_i + t·E_{i+1}` shows every moving edge twice, at its old and its new place, at
 * partial strength ("double edges"), which ControlNet turns into ghosted contours. Here each edge
 * map is instead moved part of the way along the optical flow before anything is combined. A point
 * at x at time t in (0, 1) is approximated (linear motion, flow taken at x) as coming from
 * `x - t·F_fw(x)` in frame i and from `x - (1 - t)·F_bw(x)` in frame i+1, so
 *
 *     A_t = warp(E_i, -t·F_fw),   B_t = warp(E_{i+1}, -(1 - t)·F_bw)
 *
 * (backward warps with `cv2.remap`, nearest-neighbour so edges stay 0/255 and one pixel wide,
 * constant 0 border). Then
 *
 * - `"blend"` (default): `addWeighted(A_t, 1 - t, B_t, t, 0)`: where the flow is right the two
 *   edges coincide, so there is one edge that fades, never two;
 * - `"nearest-frame"`: `A_t` for t <= 0.5, else `B_t`: always crisp binary edges, a jump at t = 0.5.
 *
 * At t = 0 and t = 1 the result equals E_i and E_{i+1}. Errors of the flow (occlusions, fast
 * motion) show up as misplaced edges instead of doubled ones.
 */
import { InvalidArgumentError } from "../errors.js";
import type { Image } from "../image.js";
import { checkFlow, type FlowField } from "./flow.js";
import { addWeighted } from "./interpolate.js";
import { loadCv, type Cv } from "./opencv.js";
import { checkImage, checkOneOf, checkSameSize } from "./validate.js";
import { warpImageSync } from "./warp.js";

export type FlowWarpMode = "blend" | "nearest-frame";

export interface FlowWarpEdgesOptions {
  /** (optional, default "blend") how the two warped maps are combined; see the module comment. */
  readonly mode?: FlowWarpMode;
}

function scaled(flow: FlowField, factor: number): FlowField {
  const data = new Float32Array(flow.data.length);
  for (let i = 0; i < data.length; i++) data[i] = (flow.data[i] ?? 0) * factor;
  return { width: flow.width, height: flow.height, data };
}

/**
 * Edge maps at `times` between `a` (frame i) and `b` (frame i+1), moved along the flows
 * (`forward` = flow(i -> i+1), `backward` = flow(i+1 -> i)).
 */
export async function flowWarpEdgeMaps(
  a: Image,
  b: Image,
  forward: FlowField,
  backward: FlowField,
  times: readonly number[],
  options: FlowWarpEdgesOptions = {},
): Promise<Image[]> {
  return flowWarpEdgeMapsSync(await loadCv(), a, b, forward, backward, times, options);
}

/** {@link flowWarpEdgeMaps} with an already loaded OpenCV module. */
export function flowWarpEdgeMapsSync(
  cv: Cv,
  a: Image,
  b: Image,
  forward: FlowField,
  backward: FlowField,
  times: readonly number[],
  options: FlowWarpEdgesOptions = {},
): Image[] {
  checkImage("a", a);
  checkImage("b", b);
  checkSameSize("a", a, "b", b);
  checkFlow("forward", forward, a);
  checkFlow("backward", backward, a);
  const mode = options.mode ?? "blend";
  checkOneOf("mode", mode, ["blend", "nearest-frame"]);
  const warp = { interpolation: "nearest", borderMode: "constant", borderValue: 0 } as const;
  return times.map((t) => {
    if (!Number.isFinite(t) || t < 0 || t > 1)
      throw new InvalidArgumentError("times[]", "numbers in [0, 1]", t);
    if (t === 0) return a;
    if (t === 1) return b;
    if (mode === "nearest-frame") {
      return t <= 0.5
        ? warpImageSync(cv, a, scaled(forward, -t), warp)
        : warpImageSync(cv, b, scaled(backward, -(1 - t)), warp);
    }
    const fromA = warpImageSync(cv, a, scaled(forward, -t), warp);
    const fromB = warpImageSync(cv, b, scaled(backward, -(1 - t)), warp);
    return addWeighted(fromA, 1 - t, fromB, t, 0);
  });
}
