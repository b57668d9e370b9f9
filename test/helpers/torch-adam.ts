/**
 * torch 1.13's single-tensor Adam / AdamW update of one element in float64 (pytorch v1.13.1
 * torch/optim/adam.py `_single_tensor_adam`, adamw.py `_single_tensor_adamw`): the reference the
 * optimizer tests compare our float32 port with.
 */
export interface TorchAdamSpec {
  readonly b1: number;
  readonly b2: number;
  readonly wd: number;
  /** AdamW (decay before the moments) rather than Adam (L2 term added to the gradient). */
  readonly decoupled: boolean;
  readonly amsgrad: boolean;
  readonly maximize: boolean;
  /** (optional, default 1e-8) */
  readonly eps?: number;
}

/** An element's value and its state: exp_avg, exp_avg_sq, max_exp_avg_sq. */
export interface AdamElement {
  readonly p: number;
  readonly m: number;
  readonly v: number;
  readonly vmax: number;
}

export const ADAM_START = (p: number): AdamElement => ({ p, m: 0, v: 0, vmax: 0 });

/** Step `t` (1-based: the parameter's own count) with gradient `grad` at rate `lr`. */
export function torchAdamStep(
  e: AdamElement,
  grad: number,
  lr: number,
  t: number,
  o: TorchAdamSpec,
): AdamElement {
  let g = o.maximize ? -grad : grad;
  let p = e.p;
  if (o.decoupled) p *= 1 - lr * o.wd;
  else if (o.wd !== 0) g += o.wd * p;
  const m = o.b1 * e.m + (1 - o.b1) * g;
  const v = o.b2 * e.v + (1 - o.b2) * g * g;
  const vmax = Math.max(e.vmax, v);
  const denom = Math.sqrt(o.amsgrad ? vmax : v) / Math.sqrt(1 - o.b2 ** t) + (o.eps ?? 1e-8);
  return { p: p - (lr / (1 - o.b1 ** t)) * (m / denom), m, v, vmax };
}
