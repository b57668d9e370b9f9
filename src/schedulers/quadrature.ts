/**
 * Adaptive Gauss-Kronrod quadrature (the 21-point QK21 rule of QUADPACK, Piessens et al. 1983),
 * the rule behind `scipy.integrate.quad` on finite intervals. Used for the LMS coefficients; exact
 * for polynomials up to degree 31 in one pass, so the LMS integrands (degree <= 3) never subdivide.
 */

// Kronrod abscissae on [0, 1] (xgk) and weights (wgk); every odd index is also a Gauss node (wg).
const XGK = [
  0.9956571630258081, 0.9739065285171717, 0.9301574913557082, 0.8650633666889845, 0.7808177265864169,
  0.6794095682990244, 0.5627571346686047, 0.4333953941292472, 0.2943928627014602, 0.14887433898163122, 0,
];
const WGK = [
  0.011694638867371874, 0.032558162307964725, 0.054755896574351995, 0.07503967481091996, 0.0931254545836976,
  0.10938715880229764, 0.12349197626206584, 0.13470921731147334, 0.14277593857706009, 0.14773910490133849,
  0.1494455540029169,
];
const WG = [
  0.06667134430868814, 0.1494513491505806, 0.21908636251598204, 0.26926671930999635, 0.29552422471475287,
];
const EPS = Number.EPSILON;

interface Piece {
  readonly a: number;
  readonly b: number;
  readonly result: number;
  readonly error: number;
}

/** One QK21 evaluation on [a, b]: the Kronrod estimate and QUADPACK's error estimate. */
export function qk21(f: (x: number) => number, a: number, b: number): Piece {
  const centre = 0.5 * (a + b);
  const half = 0.5 * (b - a);
  const fc = f(centre);
  let resg = 0;
  let resk = (WGK[10] ?? 0) * fc;
  let resabs = Math.abs(resk);
  const fv1: number[] = [];
  const fv2: number[] = [];
  for (let j = 0; j < 10; j++) {
    const x = half * (XGK[j] ?? 0);
    const f1 = f(centre - x);
    const f2 = f(centre + x);
    fv1[j] = f1;
    fv2[j] = f2;
    const w = WGK[j] ?? 0;
    resk += w * (f1 + f2);
    resabs += w * (Math.abs(f1) + Math.abs(f2));
    if (j % 2 === 1) resg += (WG[(j - 1) / 2] ?? 0) * (f1 + f2);
  }
  const mean = resk * 0.5;
  let resasc = (WGK[10] ?? 0) * Math.abs(fc - mean);
  for (let j = 0; j < 10; j++)
    resasc += (WGK[j] ?? 0) * (Math.abs((fv1[j] ?? 0) - mean) + Math.abs((fv2[j] ?? 0) - mean));
  const absHalf = Math.abs(half);
  resabs *= absHalf;
  resasc *= absHalf;
  let error = Math.abs((resk - resg) * half);
  if (resasc !== 0 && error !== 0) error = resasc * Math.min(1, ((200 * error) / resasc) ** 1.5);
  if (resabs > Number.MIN_VALUE / (50 * EPS)) error = Math.max(EPS * 50 * resabs, error);
  return { a, b, result: resk * half, error };
}

export interface QuadOptions {
  /** (optional, default 1.49e-8, scipy's) absolute error goal. */
  readonly epsabs?: number;
  /** (optional, default 1.49e-8, scipy's) relative error goal. */
  readonly epsrel?: number;
  /** (optional, default 50, scipy's) most subintervals. */
  readonly limit?: number;
}

/**
 * Integrates f over [a, b] (a > b allowed), bisecting the subinterval with the largest error until
 * the total error estimate is <= max(epsabs, epsrel |I|). Returns the estimate and its error bound.
 */
export function quad(
  f: (x: number) => number,
  a: number,
  b: number,
  options: QuadOptions = {},
): { value: number; error: number } {
  const epsabs = options.epsabs ?? 1.49e-8;
  const epsrel = options.epsrel ?? 1.49e-8;
  const limit = options.limit ?? 50;
  if (a === b) return { value: 0, error: 0 };
  const pieces: Piece[] = [qk21(f, a, b)];
  const total = (): { value: number; error: number } =>
    pieces.reduce((acc, p) => ({ value: acc.value + p.result, error: acc.error + p.error }), {
      value: 0,
      error: 0,
    });
  let sum = total();
  while (sum.error > Math.max(epsabs, epsrel * Math.abs(sum.value)) && pieces.length < limit) {
    let worst = 0;
    pieces.forEach((p, i) => {
      if (p.error > (pieces[worst]?.error ?? 0)) worst = i;
    });
    const p = pieces[worst];
    if (p === undefined) break;
    const mid = 0.5 * (p.a + p.b);
    pieces.splice(worst, 1, qk21(f, p.a, mid), qk21(f, mid, p.b));
    sum = total();
  }
  return sum;
}
