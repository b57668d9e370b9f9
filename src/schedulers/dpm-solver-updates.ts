/**
 * The update formulas of multistep DPM-Solver (Lu et al. 2022, "DPM-Solver" and "DPM-Solver++"),
 * as diffusers 0.26.3 writes them (scheduling_dpmsolver_multistep.py: `dpm_solver_first_order_update`,
 * `multistep_dpm_solver_second_order_update`, `multistep_dpm_solver_third_order_update`).
 *
 * With alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma alpha_t, lambda = log(alpha_t / sigma_t) and
 * h = lambda_t - lambda_s0, the data-prediction (++) first-order update is
 *   x_t = (sigma_t / sigma_s) x_s - alpha_t (e^{-h} - 1) x0,
 * and the higher orders add finite-difference corrections D1 (and D2) of the stored outputs.
 * Coefficients are computed on float32 scalars and applied as one float32 multiply-add per term.
 */
import type { DPMSolverAlgorithmType } from "./config.js";
import { type F32Tensor, build } from "./tensor-ops.js";
import { torchExpF32 } from "./torch-math.js";

const f32 = Math.fround;
const exp = torchExpF32;

/** alpha_t = 1 / sqrt(sigma^2 + 1) and sigma_t = sigma * alpha_t, in float32. */
export function sigmaToAlphaSigma(sigma: number): { alpha: number; sigma: number } {
  const alpha = f32(1 / f32(Math.sqrt(f32(f32(sigma * sigma) + 1))));
  return { alpha, sigma: f32(sigma * alpha) };
}

/** lambda = log(alpha) - log(sigma) (infinite at sigma = 0). */
function lambdaOf(p: { alpha: number; sigma: number }): number {
  return f32(f32(Math.log(p.alpha)) - f32(Math.log(p.sigma)));
}

/** sum_k coef_k * tensor_k, accumulated left to right in float32. */
function combine(shape: readonly number[], terms: readonly (readonly [number, Float32Array])[]): F32Tensor {
  return build(shape, (i) => {
    let acc = 0;
    terms.forEach(([c, d], k) => {
      const term = f32(c * (d[i] ?? 0));
      acc = k === 0 ? term : f32(acc + term);
    });
    return acc;
  });
}

export interface UpdateInput {
  readonly algorithm: DPMSolverAlgorithmType;
  readonly solverType: "midpoint" | "heun";
  /** sigmas of the target and of the current and previous points: [sigma_t, sigma_s0, sigma_s1, sigma_s2]. */
  readonly sigmas: readonly number[];
  /** Converted model outputs, oldest first; the last one belongs to sigma_s0. */
  readonly outputs: readonly F32Tensor[];
  readonly sample: F32Tensor;
  /** Unit noise for the SDE variants. */
  readonly noise?: F32Tensor | undefined;
}

export function firstOrderUpdate(u: UpdateInput): F32Tensor {
  const t = sigmaToAlphaSigma(u.sigmas[0] ?? NaN);
  const s = sigmaToAlphaSigma(u.sigmas[1] ?? NaN);
  const h = f32(lambdaOf(t) - lambdaOf(s));
  const x = u.sample.data;
  const m = u.outputs[u.outputs.length - 1]?.data ?? new Float32Array(0);
  const z = u.noise?.data ?? new Float32Array(0);
  switch (u.algorithm) {
    case "dpmsolver++":
      return combine(u.sample.shape, [
        [f32(t.sigma / s.sigma), x],
        [-f32(t.alpha * f32(exp(-h) - 1)), m],
      ]);
    case "dpmsolver":
      return combine(u.sample.shape, [
        [f32(t.alpha / s.alpha), x],
        [-f32(t.sigma * f32(exp(h) - 1)), m],
      ]);
    case "sde-dpmsolver++": {
      const e2 = exp(f32(-2 * h));
      return combine(u.sample.shape, [
        [f32(f32(t.sigma / s.sigma) * exp(-h)), x],
        [f32(t.alpha * f32(1 - e2)), m],
        [f32(t.sigma * f32(Math.sqrt(f32(1 - e2)))), z],
      ]);
    }
    case "sde-dpmsolver":
      return combine(u.sample.shape, [
        [f32(t.alpha / s.alpha), x],
        [-f32(2 * f32(t.sigma * f32(exp(h) - 1))), m],
        [f32(t.sigma * f32(Math.sqrt(f32(exp(f32(2 * h)) - 1)))), z],
      ]);
  }
}

export function secondOrderUpdate(u: UpdateInput): F32Tensor {
  const st = sigmaToAlphaSigma(u.sigmas[0] ?? NaN);
  const ss0 = sigmaToAlphaSigma(u.sigmas[1] ?? NaN);
  const [lt, l0, l1] = [lambdaOf(st), lambdaOf(ss0), lambdaOf(sigmaToAlphaSigma(u.sigmas[2] ?? NaN))];
  const m0 = u.outputs[u.outputs.length - 1]?.data ?? new Float32Array(0);
  const m1 = u.outputs[u.outputs.length - 2]?.data ?? new Float32Array(0);
  const h = f32(lt - l0);
  const r0 = f32(f32(l0 - l1) / h);
  const inv = f32(1 / r0);
  const d1 = build(u.sample.shape, (i) => f32(inv * f32((m0[i] ?? 0) - (m1[i] ?? 0)))).data;
  const x = u.sample.data;
  const z = u.noise?.data ?? new Float32Array(0);
  const heun = u.solverType === "heun";
  switch (u.algorithm) {
    case "dpmsolver++": {
      const c2 = f32(st.alpha * f32(exp(-h) - 1));
      const c3 = heun ? f32(st.alpha * f32(f32(f32(exp(-h) - 1) / h) + 1)) : -f32(0.5 * c2);
      return combine(u.sample.shape, [
        [f32(st.sigma / ss0.sigma), x],
        [-c2, m0],
        [c3, d1],
      ]);
    }
    case "dpmsolver": {
      const c2 = f32(st.sigma * f32(exp(h) - 1));
      const c3 = heun ? f32(st.sigma * f32(f32(f32(exp(h) - 1) / h) - 1)) : f32(0.5 * c2);
      return combine(u.sample.shape, [
        [f32(st.alpha / ss0.alpha), x],
        [-c2, m0],
        [-c3, d1],
      ]);
    }
    case "sde-dpmsolver++": {
      const e2 = exp(f32(-2 * h));
      const c2 = f32(st.alpha * f32(1 - e2));
      const c3 = heun ? f32(st.alpha * f32(f32(f32(1 - e2) / f32(-2 * h)) + 1)) : f32(0.5 * c2);
      return combine(u.sample.shape, [
        [f32(f32(st.sigma / ss0.sigma) * exp(-h)), x],
        [c2, m0],
        [c3, d1],
        [f32(st.sigma * f32(Math.sqrt(f32(1 - e2)))), z],
      ]);
    }
    case "sde-dpmsolver": {
      const c2 = f32(2 * f32(st.sigma * f32(exp(h) - 1)));
      const c3 = heun
        ? f32(2 * f32(st.sigma * f32(f32(f32(exp(h) - 1) / h) - 1)))
        : f32(st.sigma * f32(exp(h) - 1));
      return combine(u.sample.shape, [
        [f32(st.alpha / ss0.alpha), x],
        [-c2, m0],
        [-c3, d1],
        [f32(st.sigma * f32(Math.sqrt(f32(exp(f32(2 * h)) - 1)))), z],
      ]);
    }
  }
}

/** Third-order update (deterministic variants only; diffusers has no SDE third order). */
export function thirdOrderUpdate(u: UpdateInput): F32Tensor {
  const st = sigmaToAlphaSigma(u.sigmas[0] ?? NaN);
  const ss0 = sigmaToAlphaSigma(u.sigmas[1] ?? NaN);
  const lt = lambdaOf(st);
  const l0 = lambdaOf(ss0);
  const l1 = lambdaOf(sigmaToAlphaSigma(u.sigmas[2] ?? NaN));
  const l2 = lambdaOf(sigmaToAlphaSigma(u.sigmas[3] ?? NaN));
  const n = u.outputs.length;
  const m0 = u.outputs[n - 1]?.data ?? new Float32Array(0);
  const m1 = u.outputs[n - 2]?.data ?? new Float32Array(0);
  const m2 = u.outputs[n - 3]?.data ?? new Float32Array(0);
  const h = f32(lt - l0);
  const r0 = f32(f32(l0 - l1) / h);
  const r1 = f32(f32(l1 - l2) / h);
  const shape = u.sample.shape;
  const d10 = build(shape, (i) => f32(f32(1 / r0) * f32((m0[i] ?? 0) - (m1[i] ?? 0)))).data;
  const d11 = build(shape, (i) => f32(f32(1 / r1) * f32((m1[i] ?? 0) - (m2[i] ?? 0)))).data;
  const w1 = f32(r0 / f32(r0 + r1));
  const w2 = f32(1 / f32(r0 + r1));
  const d1 = build(shape, (i) => f32((d10[i] ?? 0) + f32(w1 * f32((d10[i] ?? 0) - (d11[i] ?? 0))))).data;
  const d2 = build(shape, (i) => f32(w2 * f32((d10[i] ?? 0) - (d11[i] ?? 0)))).data;
  const x = u.sample.data;
  const h2 = f32(h * h);
  if (u.algorithm === "dpmsolver++") {
    const em = f32(exp(-h) - 1);
    return combine(shape, [
      [f32(st.sigma / ss0.sigma), x],
      [-f32(st.alpha * em), m0],
      [f32(st.alpha * f32(f32(em / h) + 1)), d1],
      [-f32(st.alpha * f32(f32(f32(em + h) / h2) - 0.5)), d2],
    ]);
  }
  const ep = f32(exp(h) - 1);
  return combine(shape, [
    [f32(st.alpha / ss0.alpha), x],
    [-f32(st.sigma * ep), m0],
    [-f32(st.sigma * f32(f32(ep / h) - 1)), d1],
    [-f32(st.sigma * f32(f32(f32(ep - h) / h2) - 0.5)), d2],
  ]);
}
