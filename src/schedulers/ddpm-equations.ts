/**
 * The equations of the founding DDPM paper (Ho, Jain & Abbeel 2020, "Denoising Diffusion
 * Probabilistic Models", arXiv:2006.11239), for one step of the training chain t -> t-1, in float64
 * reference arithmetic. Notation: beta_t is the noise schedule, alpha_t = 1 - beta_t,
 * alpha_bar_t = prod_{s <= t} alpha_s, and alpha_bar_{-1} = 1 (so t = 0 is the last step).
 * The schedulers use the same formulas with strided timesteps and diffusers' float32 rounding; these
 * functions are the readable statement of the maths and the check for them.
 */
import { InvalidArgumentError } from "../errors.js";
import { type F32Tensor, build, checkSameShape } from "./tensor-ops.js";

/** The schedule tables the equations read (any of the schedulers' `betas` / `alphasCumprod`). */
export interface DiffusionTables {
  readonly betas: ArrayLike<number>;
  readonly alphasCumprod: ArrayLike<number>;
}

function tableAt(values: ArrayLike<number>, t: number, name: string): number {
  if (!Number.isInteger(t) || t < 0 || t >= values.length) {
    throw new InvalidArgumentError("t", `an integer timestep in [0, ${values.length - 1}] (${name})`, t);
  }
  return values[t] ?? NaN;
}

/**
 * Forward process q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I), sampled with the
 * given noise (eq. 4 of the paper, reparameterised):
 *
 *   x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps
 */
export function qSample(
  x0: F32Tensor,
  t: number,
  eps: F32Tensor,
  tables: Pick<DiffusionTables, "alphasCumprod">,
): F32Tensor {
  checkSameShape(x0, eps, "x0", "eps");
  const ab = tableAt(tables.alphasCumprod, t, "alphasCumprod");
  const a = Math.sqrt(ab);
  const b = Math.sqrt(1 - ab);
  return build(x0.shape, (i) => a * (x0.data[i] ?? 0) + b * (eps.data[i] ?? 0));
}

/** The scalar coefficients of the posterior q(x_{t-1} | x_t, x_0) (eq. 7). */
export interface PosteriorCoefficients {
  /** beta_t sqrt(alpha_bar_{t-1}) / (1 - alpha_bar_t), the weight of x_0 in the mean. */
  readonly coef1: number;
  /** (1 - alpha_bar_{t-1}) sqrt(alpha_t) / (1 - alpha_bar_t), the weight of x_t in the mean. */
  readonly coef2: number;
  /** beta~_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t. */
  readonly variance: number;
}

export function posteriorCoefficients(t: number, tables: DiffusionTables): PosteriorCoefficients {
  const beta = tableAt(tables.betas, t, "betas");
  const ab = tableAt(tables.alphasCumprod, t, "alphasCumprod");
  const abPrev = t > 0 ? tableAt(tables.alphasCumprod, t - 1, "alphasCumprod") : 1;
  return {
    coef1: (beta * Math.sqrt(abPrev)) / (1 - ab),
    coef2: ((1 - abPrev) * Math.sqrt(1 - beta)) / (1 - ab),
    variance: ((1 - abPrev) / (1 - ab)) * beta,
  };
}

/**
 * Posterior q(x_{t-1} | x_t, x_0) = N(mu~_t, beta~_t I) (eq. 6-7):
 *
 *   mu~_t(x_t, x_0) = beta_t sqrt(alpha_bar_{t-1}) / (1 - alpha_bar_t) x_0
 *                   + (1 - alpha_bar_{t-1}) sqrt(alpha_t) / (1 - alpha_bar_t) x_t
 *   beta~_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t
 *
 * Returns the mean tensor, the variance and its log (clipped at the first nonzero variance for
 * t = 0, where beta~_0 = 0, as the reference implementation does).
 */
export function qPosteriorMeanVariance(
  x0: F32Tensor,
  xt: F32Tensor,
  t: number,
  tables: DiffusionTables,
): { mean: F32Tensor; variance: number; logVarianceClipped: number } {
  checkSameShape(x0, xt, "x0", "xt");
  const { coef1, coef2, variance } = posteriorCoefficients(t, tables);
  const mean = build(x0.shape, (i) => coef1 * (x0.data[i] ?? 0) + coef2 * (xt.data[i] ?? 0));
  const clipped = t === 0 && tables.betas.length > 1 ? posteriorCoefficients(1, tables).variance : variance;
  return { mean, variance, logVarianceClipped: Math.log(clipped) };
}

/**
 * x_0 recovered from x_t and the noise that made it (inverse of qSample, eq. 15's estimate):
 *
 *   x_0 = sqrt(1 / alpha_bar_t) x_t - sqrt(1 / alpha_bar_t - 1) eps
 */
export function predictX0FromEps(
  xt: F32Tensor,
  t: number,
  eps: F32Tensor,
  tables: Pick<DiffusionTables, "alphasCumprod">,
): F32Tensor {
  checkSameShape(xt, eps, "xt", "eps");
  const ab = tableAt(tables.alphasCumprod, t, "alphasCumprod");
  const a = Math.sqrt(1 / ab);
  const b = Math.sqrt(1 / ab - 1);
  return build(xt.shape, (i) => a * (xt.data[i] ?? 0) - b * (eps.data[i] ?? 0));
}
