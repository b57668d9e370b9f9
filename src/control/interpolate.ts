/**
 * Edge-map interpolation between consecutive frames by blending, exactly as
 * `cv2.addWeighted(edge_i, 1 - t, edge_{i+1}, t, 0)` computes it on uint8 images:
 *
 *     out = saturate_uint8(round_half_even(fma32(a, f32(1 - t), fma32(b, f32(t), f32(gamma)))))
 *
 * OpenCV casts the three double weights to float32 (`add_weighted_loop` in
 * modules/core/src/arithm.simd.hpp) and its SIMD path (x86 SSE/AVX, which made the golden fixtures)
 * evaluates `v_fma(a, alpha, v_fma(b, beta, gamma))`; the result is rounded half to even (`v_round`)
 * and saturated to 0..255. For 8-bit inputs `a*alpha + c` is exact in float64, so each FMA is one
 * `Math.fround` of a float64 expression. OpenCV.js (scalar wasm, no FMA) rounds `a*alpha` and
 * `b*beta` separately and can differ by 1 where the exact value is within float32 rounding of a .5
 * tie; edge maps (0/255) agree either way.
 *
 * Blending makes "double edges" (both edges at half strength) where things move; see
 * `flow-warp-edges.ts` for the motion-compensated alternative.
 */
import { InvalidArgumentError } from "../errors.js";
import { image, type Image } from "../image.js";
import { roundHalfEven } from "../util/round.js";
import { checkImage, checkInteger, checkSameSize } from "./validate.js";

/** Rounds half to even, like `cvRound` / `lrint` in the default rounding mode. */
export { roundHalfEven } from "../util/round.js";

/**
 * Per-pixel weighted sum of two same-size 8-bit images.
 *
 * OpenCV: `cv2.addWeighted(a, alpha, b, beta, gamma)` (uint8 in, uint8 out, bit-exact).
 */
export function addWeighted(a: Image, alpha: number, b: Image, beta: number, gamma = 0): Image {
  checkImage("a", a);
  checkImage("b", b);
  checkSameSize("a", a, "b", b);
  if (a.channels !== b.channels)
    throw new InvalidArgumentError("b channels", `${a.channels} (as a)`, b.channels);
  for (const [name, v] of [
    ["alpha", alpha],
    ["beta", beta],
    ["gamma", gamma],
  ] as const) {
    if (!Number.isFinite(v)) throw new InvalidArgumentError(name, "a finite number", v);
  }
  const fa = Math.fround(alpha);
  const fb = Math.fround(beta);
  const fg = Math.fround(gamma);
  const out = new Uint8Array(a.data.length);
  for (let i = 0; i < out.length; i++) {
    const inner = Math.fround((b.data[i] ?? 0) * fb + fg);
    const v = roundHalfEven(Math.fround((a.data[i] ?? 0) * fa + inner));
    out[i] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
  return image(a.width, a.height, a.channels, out);
}

/** The blend of `a` and `b` at time `t` in [0, 1]: `cv2.addWeighted(a, 1.0 - t, b, t, gamma)` (gamma default 0). */
export function blendEdgeMaps(a: Image, b: Image, t: number, gamma = 0): Image {
  if (!Number.isFinite(t) || t < 0 || t > 1) throw new InvalidArgumentError("t", "a number in [0, 1]", t);
  return addWeighted(a, 1.0 - t, b, t, gamma);
}

/**
 * Times of `n` maps spanning a pair including both ends: `t_k = k / (n - 1)`, k = 0..n-1 (the
 * opencv fixture's `interp[].t` with n = 7). With `n = 1` the only time is 0.
 */
export function spanTimes(n: number): number[] {
  checkInteger("n", n, 1);
  return n === 1 ? [0] : Array.from({ length: n }, (_, k) => k / (n - 1));
}

/** Times of `count` maps strictly between a pair: `t_k = k / (count + 1)`, k = 1..count. */
export function inBetweenTimes(count: number): number[] {
  checkInteger("count", count, 0);
  return Array.from({ length: count }, (_, k) => (k + 1) / (count + 1));
}

/**
 * Blended edge maps between two consecutive frames' edge maps, one per time in `times`
 * (use {@link inBetweenTimes} for N in-between maps, {@link spanTimes} for the fixture layout).
 */
export function interpolateEdgeMaps(a: Image, b: Image, times: readonly number[]): Image[] {
  return times.map((t) => blendEdgeMaps(a, b, t));
}
