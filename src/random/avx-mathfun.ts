/**
 * Float32 emulation of the Cephes-style `log256_ps` and `sincos256_ps` that PyTorch's AVX2 `randn`
 * path uses (pytorch/pytorch: aten/src/ATen/native/cpu/avx_mathfun.h, called from
 * `normal_fill_16_AVX2` in aten/src/ATen/native/cpu/DistributionKernels.cpp). Torch's AVX2 kernels are
 * built by GCC with `-mavx2 -mfma` and default floating-point contraction, so a multiply whose only
 * use is an add/sub becomes one fused multiply-add; the `fmaf` calls below mark exactly those places.
 * With them the results match torch's float32 output bit for bit (see test/rng.test.ts).
 */

const fround = Math.fround;
const f32 = new Float32Array(1);
const i32 = new Int32Array(f32.buffer);

function floatBits(x: number): number {
  f32[0] = x;
  return i32[0] ?? 0;
}

function bitsToFloat(bits: number): number {
  i32[0] = bits;
  return f32[0] ?? 0;
}

/** The float32 after `r` in the direction of `toward` (r finite, r != toward). */
function nextFloatToward(r: number, toward: number): number {
  if (r === 0) return toward > 0 ? 2 ** -149 : -(2 ** -149);
  const bits = floatBits(r);
  const up = toward > r === r > 0;
  return bitsToFloat(up ? bits + 1 : bits - 1);
}

/**
 * Single-rounding float32 fused multiply-add of float32 inputs. a*b is exact in a double; the sum is
 * made exact with TwoSum so a double result lying exactly between two floats is resolved correctly.
 */
export function fmaf(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const t = s - p;
  const err = p - (s - t) + (c - t);
  const r = fround(s);
  if (err === 0 || r === s || !Number.isFinite(s)) return r;
  const other = nextFloatToward(r, s);
  const mid = (r + other) / 2;
  if (s !== mid) return r;
  return err > 0 === other > r ? other : r;
}

const MIN_NORM_POS = 2 ** -126; // smallest normal float32 (1.17549435e-38)
const INV_MANT_MASK = ~0x7f800000;
const HALF_BITS = 0x3f000000; // 0.5f
const SQRTHF = fround(Math.SQRT1_2); // cephes_SQRTHF 0.707106781186547524
const LOG_P = [
  7.0376836292e-2, -1.151461031e-1, 1.167699874e-1, -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1,
  2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1,
].map(fround);
const LOG_Q1 = fround(-2.1219444e-4);
const LOG_Q2 = fround(0.693359375);

/** `log256_ps` for one lane: natural log of a positive float32, as float32. NaN for x <= 0. */
export function log256(input: number): number {
  if (!(input > 0)) return NaN;
  let x = Math.max(input, MIN_NORM_POS);
  const exponent = (floatBits(x) >>> 23) - 0x7f;
  x = bitsToFloat((floatBits(x) & INV_MANT_MASK) | HALF_BITS);
  let e = fround(exponent + 1);
  const belowSqrtHalf = x < SQRTHF;
  const tmp = belowSqrtHalf ? x : 0;
  x = fround(x - 1);
  if (belowSqrtHalf) e = fround(e - 1);
  x = fround(x + tmp);
  const z = fround(x * x);
  let y = LOG_P[0] ?? 0;
  for (let i = 1; i < LOG_P.length; i++) y = fmaf(y, x, LOG_P[i] ?? 0);
  y = fround(y * x);
  y = fmaf(y, z, fround(e * LOG_Q1));
  y = fmaf(-z, 0.5, y);
  x = fround(x + y);
  return fmaf(e, LOG_Q2, x);
}

const FOPI = fround(4 / Math.PI); // cephes_FOPI 1.27323954473516 as float32
const MINUS_DP1 = fround(-0.78515625);
const MINUS_DP2 = fround(-2.4187564849853515625e-4);
const MINUS_DP3 = fround(-3.774894977445941e-8); // -3.77489497744594108e-8
const COSCOF = [2.443315711809948e-5, -1.388731625493765e-3, 4.166664568298827e-2].map(fround);
const SINCOF = [-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1].map(fround);

/** `sincos256_ps` for one lane: [sin(x), cos(x)] in float32 (accurate for |x| up to ~8192). */
export function sincos256(input: number): [number, number] {
  let negateSin = input < 0 || Object.is(input, -0);
  let x = Math.abs(input);
  // j = (int)(x * 4/pi), rounded up to even; the octant picks the polynomial and the signs.
  let j = Math.trunc(fround(x * FOPI)) | 0;
  j = (j + 1) & ~1;
  const y = fround(j);
  if ((j & 4) !== 0) negateSin = !negateSin;
  const sinPolyForSin = (j & 2) === 0;
  const negateCos = (~(j - 2) & 4) !== 0;
  // Extended-precision range reduction: x - y * pi/4 in three parts.
  x = fmaf(y, MINUS_DP1, x);
  x = fmaf(y, MINUS_DP2, x);
  x = fmaf(y, MINUS_DP3, x);
  const z = fround(x * x);
  let c = COSCOF[0] ?? 0;
  c = fmaf(c, z, COSCOF[1] ?? 0);
  c = fmaf(c, z, COSCOF[2] ?? 0);
  c = fround(c * z);
  c = fmaf(c, z, -fround(z * 0.5));
  c = fround(c + 1);
  let s = SINCOF[0] ?? 0;
  s = fmaf(s, z, SINCOF[1] ?? 0);
  s = fmaf(s, z, SINCOF[2] ?? 0);
  s = fround(s * z);
  s = fmaf(s, x, x);
  const sinValue = sinPolyForSin ? s : c;
  const cosValue = sinPolyForSin ? c : s;
  return [negateSin ? -sinValue : sinValue, negateCos ? -cosValue : cosValue];
}
