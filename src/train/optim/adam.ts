/**
 * Adam and AdamW as torch.optim (1.13, single-tensor path), in float32 with each tensor op rounded
 * as torch rounds it. With `maximize` the gradient is negated first (g = -grad). AdamW decays
 * decoupled, before the moments:
 *   p *= 1 - lr*wd;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * Adam's weight decay is the coupled L2 form (g += wd p before the moments). AMSGrad keeps
 * vmax = max(vmax, v) (buffer `max_exp_avg_sq`) and uses sqrt(vmax) in place of sqrt(v).
 * t is the parameter's own step count: a parameter without a gradient keeps its value, its state
 * and its count (torch skips `p.grad is None`).
 * Reference: pytorch v1.13.1 torch/optim/adam.py `_single_tensor_adam`, adamw.py `_single_tensor_adamw`.
 */
import { InvalidArgumentError } from "../../errors.js";
import {
  BufferSet,
  type NamedArrays,
  type Optimizer,
  type OptimizerState,
  type SparseRows,
  checkGradient,
  isSparseRows,
} from "./optimizer.js";

export interface AdamOptions {
  readonly lr: number;
  /** (optional, default [0.9, 0.999]) */
  readonly betas?: readonly [number, number];
  /** (optional, default 1e-8) */
  readonly eps?: number;
  /** (optional, default 0.01 for AdamW, 0 for Adam) */
  readonly weightDecay?: number;
  /** (optional, default false) AMSGrad: the denominator uses the running maximum of exp_avg_sq. */
  readonly amsgrad?: boolean;
  /** (optional, default false) maximise the objective: every gradient is negated first. */
  readonly maximize?: boolean;
  /**
   * (optional) parameters updated lazily, as torch.optim.SparseAdam does: an element whose gradient
   * is exactly 0 this step keeps its value and its moments (no decay). For tables of which each step
   * touches a few rows (grid encodings, embeddings): the untouched rows cost one comparison.
   */
  readonly lazy?: (name: string) => boolean;
}

const BUFFERS = ["exp_avg", "exp_avg_sq"] as const;
const AMSGRAD_BUFFERS = [...BUFFERS, "max_exp_avg_sq"] as const;

class AdamBase implements Optimizer {
  private readonly buffers = new BufferSet();
  /** step() calls */
  private steps = 0;
  /** Per-parameter step counts (torch's state[p]["step"]), for parameters with state. */
  private readonly paramSteps = new Map<string, number>();
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly amsgrad: boolean;
  readonly maximize: boolean;
  private readonly lazy: (name: string) => boolean;

  constructor(
    options: AdamOptions,
    private readonly decoupled: boolean,
  ) {
    const [b1, b2] = options.betas ?? [0.9, 0.999];
    for (const [name, v, lo, hi] of [
      ["lr", options.lr, 0, Infinity],
      ["betas[0]", b1, 0, 1],
      ["betas[1]", b2, 0, 1],
    ] as const) {
      if (!(v >= lo && v < hi)) throw new InvalidArgumentError(name, `a number in [${lo}, ${hi})`, v);
    }
    this.lr = options.lr;
    this.beta1 = b1;
    this.beta2 = b2;
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? (decoupled ? 0.01 : 0);
    this.amsgrad = options.amsgrad ?? false;
    this.maximize = options.maximize ?? false;
    this.lazy = options.lazy ?? (() => false);
  }

  /**
   * As {@link Optimizer.step}; a {@link SparseRows} gradient updates its rows only, each element as a
   * lazy parameter's (an element whose gradient is exactly 0 is left alone).
   */
  step(
    params: NamedArrays,
    grads: ReadonlyMap<string, Float32Array | SparseRows | null | undefined>,
    lr = this.lr,
  ): void {
    this.steps += 1;
    const { beta1, beta2, eps, weightDecay, amsgrad, maximize } = this;
    const decay = Math.fround(1 - lr * weightDecay);
    const [b1, b2, c1, c2, e, wd] = [
      Math.fround(beta1),
      Math.fround(beta2),
      Math.fround(1 - beta1),
      Math.fround(1 - beta2),
      Math.fround(eps),
      Math.fround(weightDecay),
    ];
    for (const [name, grad] of grads) {
      if (grad === null || grad === undefined) continue;
      const sparse = isSparseRows(grad) ? grad : undefined;
      const p = sparse
        ? checkRows(name, params.get(name), sparse)
        : checkGradient(name, params.get(name), grad as Float32Array);
      const t = (this.paramSteps.get(name) ?? 0) + 1;
      this.paramSteps.set(name, t);
      const stepSize = Math.fround(-(lr / (1 - beta1 ** t)));
      const bc2Sqrt = Math.fround(Math.sqrt(1 - beta2 ** t));
      const m = this.buffer(name, "exp_avg", p.length);
      const v = this.buffer(name, "exp_avg_sq", p.length);
      const vmax = amsgrad ? this.buffer(name, "max_exp_avg_sq", p.length) : undefined;
      const decoupled = this.decoupled;
      const update = (i: number, g: number): void => {
        let gi = maximize ? -g : g;
        let pi = p[i] ?? 0;
        if (decoupled) pi = Math.fround(pi * decay);
        else if (weightDecay !== 0) gi = Math.fround(gi + Math.fround(wd * pi));
        const mi = Math.fround(Math.fround((m[i] ?? 0) * b1) + Math.fround(c1 * gi));
        let vi = Math.fround(Math.fround((v[i] ?? 0) * b2) + Math.fround(c2 * Math.fround(gi * gi)));
        m[i] = mi;
        v[i] = vi;
        if (vmax) {
          // torch.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq) (NaN propagates)
          vi = Math.max(vmax[i] ?? 0, vi);
          vmax[i] = vi;
        }
        const denom = Math.fround(Math.fround(Math.fround(Math.sqrt(vi)) / bc2Sqrt) + e);
        p[i] = Math.fround(pi + Math.fround(stepSize * Math.fround(mi / denom)));
      };
      if (sparse) {
        const { rows, values, rowSize } = sparse;
        for (let r = 0; r < rows.length; r++) {
          const base = (rows[r] ?? 0) * rowSize;
          for (let j = 0; j < rowSize; j++) {
            const gi = values[r * rowSize + j] ?? 0;
            if (gi !== 0) update(base + j, gi);
          }
        }
        continue;
      }
      const dense = grad as Float32Array;
      const lazy = this.lazy(name);
      for (let i = 0; i < p.length; i++) {
        const gi = dense[i] ?? 0;
        if (lazy && gi === 0) continue;
        update(i, gi);
      }
    }
  }

  /** A parameter's buffer, created (zeros) on its first step. */
  private buffer(name: string, buffer: string, length: number): Float32Array {
    let b = this.buffers.get(name, buffer);
    if (!b) this.buffers.set(name, buffer, (b = new Float32Array(length)));
    return b;
  }

  state(): OptimizerState {
    return {
      step: this.steps,
      tensors: this.buffers.toTensors(),
      paramSteps: Object.fromEntries(this.paramSteps),
    };
  }

  /**
   * As {@link Optimizer.loadState}. A parameter with buffers but no `paramSteps` entry (state saved
   * without them) takes `step`.
   */
  loadState(state: OptimizerState): void {
    const count = (what: string, n: unknown): number => {
      if (!(typeof n === "number" && Number.isInteger(n) && n >= 0))
        throw new InvalidArgumentError(what, "a non-negative integer", n);
      return n;
    };
    const step = count("optimizer state step", state.step);
    const paramSteps = new Map<string, number>();
    for (const [name, n] of Object.entries(state.paramSteps ?? {}))
      paramSteps.set(name, count(`optimizer state paramSteps.${name}`, n));
    this.buffers.load(state.tensors, this.amsgrad ? AMSGRAD_BUFFERS : BUFFERS);
    this.steps = step;
    this.paramSteps.clear();
    for (const name of this.buffers.params()) this.paramSteps.set(name, paramSteps.get(name) ?? step);
  }
}

/** Checks a sparse gradient's rows against its parameter. */
function checkRows(name: string, param: Float32Array | undefined, grad: SparseRows): Float32Array {
  if (!param) throw new InvalidArgumentError("grads", "gradients of known parameters only", name);
  const rows = param.length / grad.rowSize;
  if (!Number.isInteger(rows) || grad.values.length !== grad.rows.length * grad.rowSize)
    throw new InvalidArgumentError(
      `gradient rows of ${name}`,
      `rows of ${grad.rowSize} values`,
      grad.values.length,
    );
  for (const r of grad.rows)
    if (r < 0 || r >= rows)
      throw new InvalidArgumentError(`gradient rows of ${name}`, `rows 0..${rows - 1}`, r);
  return param;
}

/** torch.optim.AdamW (decoupled weight decay, default 0.01). */
export class AdamW extends AdamBase {
  constructor(options: AdamOptions) {
    super(options, true);
  }
}

/** torch.optim.Adam (coupled L2 weight decay, default 0). */
export class Adam extends AdamBase {
  constructor(options: AdamOptions) {
    super(options, false);
  }
}
