/**
 * The update formulas of UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework
 * for Fast Sampling of Diffusion Models"), B(h) variants, as diffusers 0.26.3 writes them
 * (scheduling_unipc_multistep.py: `multistep_uni_p_bh_update`, `multistep_uni_c_bh_update`).
 *
 * With alpha = 1 / sqrt(sigma^2 + 1), sigma_t = sigma alpha, lambda = log(alpha / sigma_t),
 * h = lambda_t - lambda_s0 and hh = -h for data prediction (h for noise prediction):
 *   data prediction:  x_t = (sigma_t / sigma_s0) x - alpha_t (e^hh - 1) m0 - alpha_t B(h) sum_k rho_k D_k
 *   noise prediction: x_t = (alpha_t / alpha_s0) x - sigma_t (e^hh - 1) m0 - sigma_t B(h) sum_k rho_k D_k
 * where D_k = (m_k - m0) / r_k are divided differences of the stored outputs at r_k = (lambda_sk -
 * lambda_s0) / h, B(h) = hh (bh1) or e^hh - 1 (bh2), and rho solves R rho = b with R_ik = r_k^(i-1),
 * b_i = i! phi_(i+1)(hh) / B(h). The predictor of order 2 uses rho = 0.5 without solving; the
 * corrector adds the new output's difference D_t = m_t - m0 as the last column (its r is 1), and at
 * order 1 uses rho = 0.5.
 * Scalars are float32 like diffusers' 0-dim tensors; each tensor term is one float32 multiply.
 */
import { type F32Tensor, build } from "./tensor-ops.js";

const f32 = Math.fround;

/** One point of the run: its noise level and, for a stored output, that output. */
export interface UniPCPoint {
  readonly alpha: number;
  readonly sigma: number;
}

/** lambda = log(alpha) - log(sigma), float32. */
export function lambdaOf(p: UniPCPoint): number {
  return f32(f32(Math.log(p.alpha)) - f32(Math.log(p.sigma)));
}

/**
 * Solves the square system `a x = b` in float32 by Gaussian elimination with partial pivoting (the
 * LU factorisation LAPACK's sgesv, behind torch.linalg.solve, uses: first largest pivot, multipliers
 * scaled by the pivot's reciprocal). Throws on a singular matrix.
 */
export function solveF32(a: readonly (readonly number[])[], b: readonly number[]): number[] {
  const n = b.length;
  const m = a.map((row) => row.map(f32));
  const rhs = b.map(f32);
  for (let k = 0; k < n; k++) {
    let pivot = k;
    for (let i = k + 1; i < n; i++) if (Math.abs(m[i]?.[k] ?? 0) > Math.abs(m[pivot]?.[k] ?? 0)) pivot = i;
    const rowK = m[pivot] ?? [];
    const diag = rowK[k] ?? 0;
    if (diag === 0) throw new Error("UniPC: singular coefficient matrix (two equal noise levels?)");
    [m[k], m[pivot]] = [rowK, m[k] ?? []];
    [rhs[k], rhs[pivot]] = [rhs[pivot] ?? 0, rhs[k] ?? 0];
    const inv = f32(1 / diag);
    for (let i = k + 1; i < n; i++) {
      const row = m[i] ?? [];
      const l = f32((row[k] ?? 0) * inv);
      for (let j = k + 1; j < n; j++) row[j] = f32((row[j] ?? 0) - f32(l * (rowK[j] ?? 0)));
      rhs[i] = f32((rhs[i] ?? 0) - f32(l * (rhs[k] ?? 0)));
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let i = n - 1; i >= 0; i--) {
    const row = m[i] ?? [];
    let acc = rhs[i] ?? 0;
    for (let j = i + 1; j < n; j++) acc = f32(acc - f32((row[j] ?? 0) * (x[j] ?? 0)));
    x[i] = f32(acc / (row[i] ?? 1));
  }
  return x;
}

export interface UniPCUpdateInput {
  readonly predictX0: boolean;
  readonly solverType: "bh1" | "bh2";
  /** The point stepped to (t) and the one stepped from (s0). */
  readonly target: UniPCPoint;
  readonly from: UniPCPoint;
  /** The sample at s0. */
  readonly sample: F32Tensor;
  /** The converted output at s0. */
  readonly m0: F32Tensor;
  /** Earlier points s1, s2, ... with their converted outputs, most recent first (order - 1 of them). */
  readonly history: readonly { readonly point: UniPCPoint; readonly output: F32Tensor }[];
}

interface Coefficients {
  /** Multiplies x. */
  readonly cx: number;
  /** Multiplies m0. */
  readonly cm: number;
  /** alpha_t B(h) (data prediction) or sigma_t B(h) (noise prediction): multiplies the corrections. */
  readonly cd: number;
  /** r_k of the history, then 1. */
  readonly rks: readonly number[];
  /** b_1 .. b_order. */
  readonly b: readonly number[];
}

function coefficients(u: UniPCUpdateInput, order: number): Coefficients {
  const lambdaT = lambdaOf(u.target);
  const lambdaS0 = lambdaOf(u.from);
  const h = f32(lambdaT - lambdaS0);
  const rks = u.history.map((p) => f32(f32(lambdaOf(p.point) - lambdaS0) / h));
  rks.push(1);
  const hh = u.predictX0 ? -h : h;
  const hPhi1 = f32(Math.expm1(hh));
  const bh = u.solverType === "bh1" ? hh : f32(Math.expm1(hh));
  let hPhiK = f32(f32(hPhi1 / hh) - 1);
  let factorial = 1;
  const b: number[] = [];
  for (let i = 1; i <= order; i++) {
    b.push(f32(f32(hPhiK * factorial) / bh));
    factorial *= i + 1;
    hPhiK = f32(f32(hPhiK / hh) - f32(1 / factorial));
  }
  const t = u.target;
  const s = u.from;
  return u.predictX0
    ? { cx: f32(t.sigma / s.sigma), cm: f32(t.alpha * hPhi1), cd: f32(t.alpha * bh), rks, b }
    : { cx: f32(t.alpha / s.alpha), cm: f32(t.sigma * hPhi1), cd: f32(t.sigma * bh), rks, b };
}

/** float32 `torch.pow(r, i)`: torch multiplies out the exponents 2 and 3. */
function powF32(r: number, i: number): number {
  if (i === 0) return 1;
  if (i === 1) return r;
  if (i === 2) return f32(r * r);
  if (i === 3) return f32(f32(r * r) * r);
  return f32(r ** i);
}

/** R_ik = r_k^i for i, k < size. */
function powerMatrix(rks: readonly number[], size: number): number[][] {
  return Array.from({ length: size }, (_, i) => rks.slice(0, size).map((r) => powF32(r, i)));
}

/** D_k = (m_k - m0) / r_k for the history. */
function differences(u: UniPCUpdateInput, rks: readonly number[]): Float32Array[] {
  const m0 = u.m0.data;
  return u.history.map(({ output }, k) => {
    const r = rks[k] ?? NaN;
    return output.data.map((v, i) => f32(f32(v - (m0[i] ?? 0)) / r));
  });
}

/** sum_k rho_k D_k, accumulated in order in float32. */
function weighted(rhos: readonly number[], ds: readonly Float32Array[], i: number): number {
  let acc = 0;
  ds.forEach((d, k) => {
    const term = f32((rhos[k] ?? 0) * (d[i] ?? 0));
    acc = k === 0 ? term : f32(acc + term);
  });
  return acc;
}

/** The predictor UniP of the given order from s0 to t (`history` holds order - 1 earlier points). */
export function uniPredictor(u: UniPCUpdateInput, order: number): F32Tensor {
  const c = coefficients(u, order);
  const ds = differences(u, c.rks);
  const rhos =
    ds.length === 0 ? [] : order === 2 ? [0.5] : solveF32(powerMatrix(c.rks, order - 1), c.b.slice(0, -1));
  const x = u.sample.data;
  const m0 = u.m0.data;
  return build(u.sample.shape, (i) => {
    const base = f32(f32(c.cx * (x[i] ?? 0)) - f32(c.cm * (m0[i] ?? 0)));
    return ds.length === 0 ? base : f32(base - f32(c.cd * weighted(rhos, ds, i)));
  });
}

/**
 * The corrector UniC of the given order: `sample` is the sample at s0 (before the last predictor),
 * `modelT` the converted model output at the predicted point t; `history` holds order - 1 earlier points.
 */
export function uniCorrector(u: UniPCUpdateInput, modelT: F32Tensor, order: number): F32Tensor {
  const c = coefficients(u, order);
  const ds = differences(u, c.rks);
  const rhos = order === 1 ? [0.5] : solveF32(powerMatrix(c.rks, order), c.b);
  const rhoT = rhos[rhos.length - 1] ?? NaN;
  const x = u.sample.data;
  const m0 = u.m0.data;
  const mt = modelT.data;
  return build(u.sample.shape, (i) => {
    const base = f32(f32(c.cx * (x[i] ?? 0)) - f32(c.cm * (m0[i] ?? 0)));
    const dt = f32(rhoT * f32((mt[i] ?? 0) - (m0[i] ?? 0)));
    const res = ds.length === 0 ? dt : f32(weighted(rhos, ds, i) + dt);
    return f32(base - f32(c.cd * res));
  });
}
