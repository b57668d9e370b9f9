/**
 * float32 `torch.exp` as torch 1.13 computes it on an x86-64 CPU: the vectorized kernel calls SLEEF's
 * `Sleef_expf8_u10` (1-ulp accuracy), which is not always the correctly rounded result that
 * `Math.fround(Math.exp(x))` gives. DPM-Solver's coefficients contain e^{-h} - 1, where a 1-ulp
 * difference in e^{-h} becomes several ulps; with this the `schedulers/dpmsolver_multistep` golden
 * loop is reproduced bit for bit.
 *
 * Algorithm (SLEEF 3.x `xexpf`, sleefsimdsp.c): q = rint(x / ln 2); s = x - q ln 2 (two-part ln 2,
 * fused multiply-adds); u = degree-5 polynomial in s; e^x = (1 + s + s^2 u) * 2^q.
 */

const f32 = Math.fround;

/** fma(a, b, c) for float32 operands: the double product of two float32 values is exact. */
function fmaF32(a: number, b: number, c: number): number {
  return f32(a * b + c);
}

const R_LN2 = f32(1.4426950408889634);
const L2U = f32(0.693145751953125);
const L2L = f32(0.000001428606765330187);
const POLY = [0.0013930435525253415, 0.008333360776305199, 0.041666485369205475, 0.1666666716337204, 0.5].map(
  f32,
);

/** Rounds half to even, like the vcvtps2dq / rint the SIMD code uses. */
function rintEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function torchExpF32(xIn: number): number {
  const x = f32(xIn);
  if (Number.isNaN(x)) return NaN;
  if (x < -104) return 0;
  if (x > 104) return Infinity;
  const q = rintEven(f32(x * R_LN2));
  let s = fmaF32(q, -L2U, x);
  s = fmaF32(q, -L2L, s);
  let u = f32(0.00019852761761285365);
  for (const c of POLY) u = fmaF32(u, s, c);
  u = f32(1 + fmaF32(f32(s * s), u, s));
  return f32(u * 2 ** q);
}
