/**
 * Flicker indices: how much brightness jumps between consecutive frames, with no flow involved.
 * Luminance is BT.601 luma on values scaled to [0, 1]: `L = (0.299 R + 0.587 G + 0.114 B) / 255`
 * (gray images: `value / 255`), in float64.
 */
import { InvalidArgumentError } from "../errors.js";
import type { Image } from "../image.js";
import { checkImage, checkSameSize } from "../control/validate.js";

function luminance(img: Image, p: number): number {
  const d = img.data;
  if (img.channels === 1) return (d[p] ?? 0) / 255;
  const k = p * img.channels;
  return (0.299 * (d[k] ?? 0) + 0.587 * (d[k + 1] ?? 0) + 0.114 * (d[k + 2] ?? 0)) / 255;
}

/** Mean luminance of a frame: `L̄ = Σ_p L(p) / N`. */
export function meanLuminance(img: Image): number {
  checkImage("image", img);
  const n = img.width * img.height;
  let sum = 0;
  for (let p = 0; p < n; p++) sum += luminance(img, p);
  return sum / n;
}

function checkClip(frames: readonly Image[]): void {
  if (frames.length < 2) throw new InvalidArgumentError("frames", "at least 2 frames", frames.length);
  const first = frames[0];
  for (const [i, f] of frames.entries()) {
    checkImage(`frames[${i}]`, f);
    if (first !== undefined) checkSameSize("frames[0]", first, `frames[${i}]`, f);
  }
}

/**
 * Global flicker index (methods.md E): mean absolute change of mean luminance between consecutive
 * frames, `F = Σ_{t=0}^{T-2} |L̄_{t+1} - L̄_t| / (T - 1)`. Insensitive to motion, sensitive to global
 * brightness pumping (per-frame normalisation, independent noise per frame).
 */
export function flickerIndex(frames: readonly Image[]): number {
  checkClip(frames);
  const means = frames.map(meanLuminance);
  let sum = 0;
  for (let t = 0; t + 1 < means.length; t++) sum += Math.abs((means[t + 1] ?? 0) - (means[t] ?? 0));
  return sum / (means.length - 1);
}

/**
 * Per-pixel flicker: mean absolute luminance change at the same pixel,
 * `P = Σ_t Σ_{p ∈ M_t} |L_{t+1}(p) - L_t(p)| / Σ_t |M_t|`, over pixels where `masks[t]` is non-zero
 * (e.g. static or flow-consistent pixels; default every pixel). Includes real motion unless masked.
 */
export function pixelFlicker(frames: readonly Image[], masks?: readonly Image[]): number {
  checkClip(frames);
  if (masks !== undefined && masks.length !== frames.length - 1) {
    throw new InvalidArgumentError(
      "masks",
      `${frames.length - 1} masks (one per pair)`,
      `${masks.length} masks`,
    );
  }
  let sum = 0;
  let count = 0;
  for (let t = 0; t + 1 < frames.length; t++) {
    const a = frames[t];
    const b = frames[t + 1];
    const m = masks?.[t];
    if (a === undefined || b === undefined) continue;
    if (m !== undefined) {
      checkImage(`masks[${t}]`, m, [1]);
      checkSameSize("frames[0]", a, `masks[${t}]`, m);
    }
    const n = a.width * a.height;
    for (let p = 0; p < n; p++) {
      if (m !== undefined && m.data[p] === 0) continue;
      sum += Math.abs(luminance(b, p) - luminance(a, p));
      count++;
    }
  }
  return count === 0 ? Number.NaN : sum / count;
}
