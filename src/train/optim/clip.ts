/**
 * torch.nn.utils.clip_grad_norm_ (2-norm): total = ||(||g_1||, ||g_2||, ...)|| over every gradient;
 * coef = max_norm / (total + 1e-6) clamped to <= 1 multiplies every gradient (in place, also when
 * 1). Returns the norm before clipping. Norms are accumulated in float64 and rounded to float32.
 * Missing gradients (null / undefined) are skipped, as torch skips `p.grad is None`; with none at
 * all the norm is 0 and nothing changes. Reference: pytorch v1.13.1 torch/nn/utils/clip_grad.py.
 */

/** The global 2-norm of the gradients (null / undefined gradients are skipped). */
export function globalGradNorm(grads: Iterable<Float32Array | null | undefined>): number {
  let total = 0;
  for (const g of grads) {
    if (!g) continue;
    let s = 0;
    for (let i = 0; i < g.length; i++) s += (g[i] ?? 0) * (g[i] ?? 0);
    const n = Math.fround(Math.sqrt(s));
    total += n * n;
  }
  return Math.fround(Math.sqrt(total));
}

/** Clips the gradients in place to a global norm of `maxNorm`; returns the norm before clipping. */
export function clipGradNorm(grads: Iterable<Float32Array | null | undefined>, maxNorm: number): number {
  const list = [...grads];
  const total = globalGradNorm(list);
  const coef = Math.min(Math.fround(Math.fround(maxNorm) / Math.fround(total + 1e-6)), 1);
  for (const g of list) {
    if (!g) continue;
    for (let i = 0; i < g.length; i++) g[i] = Math.fround((g[i] ?? 0) * coef);
  }
  return total;
}
