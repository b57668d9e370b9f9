/**
 * Re-creations of the numpy and torch (CPU, float32) routines diffusers builds its scheduler tables
 * with. The tables feed every step, so reproducing the reference's rounding keeps our latents within
 * ~1e-7 of diffusers instead of ~1e-5 (see the golden README's tolerance note).
 *
 * References:
 * - numpy 1.24 numpy/core/function_base.py (`linspace`), numpy/core/src/multiarray/ctors.c and
 *   arraytypes.c.src (`arange`: length = ceil((stop - start) / step), values start + i * delta with
 *   delta = (start + step) - start), numpy/core/src/multiarray/compiled_base.c (`interp`),
 *   `round` = round half to even.
 * - torch 1.13 aten/src/ATen/native/cpu/RangeFactoriesKernel.cpp (`linspace`: halves computed from
 *   each end, 8-wide AVX2 vectors in 16-element blocks, the block base contracted to an FMA by GCC;
 *   verified bit for bit against the golden fixtures' `betas`), aten/src/ATen/native/cpu/
 *   ReduceOpsKernel.cpp (`cumprod` accumulates float32 inputs in double on CPU).
 */

const f32 = Math.fround;

/** numpy's `round`/`rint` (ties to even: 499.5 -> 500, 998.5 -> 998). */
export { roundHalfEven } from "../util/round.js";

/** `np.linspace(start, stop, num)` in float64 (endpoint included). */
export function npLinspace(start: number, stop: number, num: number): number[] {
  const out: number[] = [];
  if (num <= 0) return out;
  const div = num - 1;
  const delta = stop - start;
  if (div > 0) {
    const step = delta / div;
    for (let i = 0; i < num; i++) out.push(step === 0 ? (i / div) * delta + start : i * step + start);
    out[num - 1] = stop;
  } else {
    out.push(start);
  }
  return out;
}

/** `np.arange(start, stop, step)` for float64 arguments. */
export function npArange(start: number, stop: number, step: number): number[] {
  const length = Math.ceil((stop - start) / step);
  const out: number[] = [];
  if (!(length > 0)) return out;
  out.push(start);
  if (length === 1) return out;
  const second = start + step;
  out.push(second);
  const delta = second - start;
  for (let i = 2; i < length; i++) out.push(start + i * delta);
  return out;
}

/** `torch.linspace(start, end, steps, dtype=torch.float32)` on an x86-64 CPU (AVX2 kernel). */
export function torchLinspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 0) return out;
  const s = f32(start);
  const e = f32(end);
  if (steps === 1) {
    out[0] = s;
    return out;
  }
  const step = f32(f32(e - s) / f32(steps - 1));
  const halfway = Math.floor(steps / 2);
  // Products of two float32 values are exact in double, so one f32() of the double sum is an FMA.
  const at = (i: number): number => (i < halfway ? f32(s + step * i) : f32(e - step * (steps - i - 1)));
  const width = 8;
  let i = 0;
  for (; i + 2 * width <= steps; i += 2 * width) {
    for (const blockStart of [i, i + width]) {
      const base = at(blockStart);
      out[blockStart] = base;
      for (let k = 1; k < width; k++) out[blockStart + k] = f32(base + step * k);
    }
  }
  for (; i < steps; i++) out[i] = at(i);
  return out;
}

/** `torch.cumprod(x, 0)` for a float32 vector on CPU: double accumulator, each prefix cast to float32. */
export function cumprodF32(values: Float32Array): Float32Array {
  const out = new Float32Array(values.length);
  let acc = 1;
  for (let i = 0; i < values.length; i++) {
    acc *= values[i] ?? 0;
    out[i] = acc;
  }
  return out;
}

/**
 * `np.interp(x, xp, fp)` (float64 result) for increasing `xp`: clamps outside the range, returns
 * `fp[j]` exactly on a knot, and interpolates as slope * (x - xp[j]) + fp[j] otherwise.
 */
export function npInterp(x: readonly number[], xp: ArrayLike<number>, fp: ArrayLike<number>): number[] {
  const n = xp.length;
  const xpAt = (i: number): number => xp[i] ?? NaN;
  const fpAt = (i: number): number => fp[i] ?? NaN;
  return x.map((v) => {
    if (n === 0) return NaN;
    if (v < xpAt(0)) return fpAt(0);
    if (v >= xpAt(n - 1)) return fpAt(n - 1);
    let lo = 0;
    let hi = n - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (xpAt(mid) <= v) lo = mid;
      else hi = mid;
    }
    if (xpAt(lo) === v) return fpAt(lo);
    const slope = (fpAt(lo + 1) - fpAt(lo)) / (xpAt(lo + 1) - xpAt(lo));
    let r = slope * (v - xpAt(lo)) + fpAt(lo);
    if (Number.isNaN(r)) {
      r = slope * (v - xpAt(lo + 1)) + fpAt(lo + 1);
      if (Number.isNaN(r) && fpAt(lo) === fpAt(lo + 1)) r = fpAt(lo);
    }
    return r;
  });
}

/**
 * `torch.quantile(values, q)` with linear interpolation between the two nearest ranks (NaN-free
 * input). Used by dynamic thresholding.
 */
export function quantileLinear(values: ArrayLike<number>, q: number): number {
  const sorted = Array.from(values).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const rank = q * (sorted.length - 1);
  const below = Math.floor(rank);
  const above = Math.ceil(rank);
  const lo = sorted[below] ?? NaN;
  const hi = sorted[above] ?? NaN;
  const w = rank - below;
  // torch.lerp: start + w * (end - start) for w < 0.5, else end - (end - start) * (1 - w).
  return f32(w < 0.5 ? lo + w * (hi - lo) : hi - (hi - lo) * (1 - w));
}
