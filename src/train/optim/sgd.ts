/**
 * SGD with momentum as torch.optim.SGD (1.13): g = maximize ? -grad : grad; g += wd p; buf = g on
 * the parameter's first step with a gradient, later buf = m buf + (1 - dampening) g;
 * g = nesterov ? g + m buf : buf; p -= lr g. Float32 throughout. A parameter without a gradient
 * (null / undefined / absent) is left alone, its momentum buffer too.
 * Reference: pytorch v1.13.1 torch/optim/sgd.py `_single_tensor_sgd`.
 */
import { InvalidArgumentError } from "../../errors.js";
import {
  BufferSet,
  type NamedArrays,
  type Optimizer,
  type OptimizerState,
  checkGradient,
} from "./optimizer.js";

export interface SGDOptions {
  readonly lr: number;
  /** (optional, default 0) */
  readonly momentum?: number;
  /** (optional, default 0) */
  readonly dampening?: number;
  /** (optional, default 0) coupled L2 decay. */
  readonly weightDecay?: number;
  /** (optional, default false) */
  readonly nesterov?: boolean;
  /** (optional, default false) maximise the objective: every gradient is negated first. */
  readonly maximize?: boolean;
}

export class SGD implements Optimizer {
  private readonly buffers = new BufferSet();
  private steps = 0;

  constructor(readonly options: SGDOptions) {
    if (!(options.lr >= 0)) throw new InvalidArgumentError("lr", "a non-negative number", options.lr);
    if (options.nesterov && (!(options.momentum ?? 0) || (options.dampening ?? 0) !== 0)) {
      throw new InvalidArgumentError("nesterov", "momentum > 0 and dampening 0", options, {
        hint: "Nesterov momentum requires a momentum and zero dampening (as torch)",
      });
    }
  }

  step(
    params: NamedArrays,
    grads: ReadonlyMap<string, Float32Array | null | undefined>,
    lr = this.options.lr,
  ): void {
    this.steps += 1;
    const momentum = this.options.momentum ?? 0;
    const wd = Math.fround(this.options.weightDecay ?? 0);
    const mom = Math.fround(momentum);
    const damp = Math.fround(1 - (this.options.dampening ?? 0));
    const negLr = Math.fround(-lr);
    const maximize = this.options.maximize ?? false;
    for (const [name, grad] of grads) {
      if (grad === null || grad === undefined) continue;
      const p = checkGradient(name, params.get(name), grad);
      const existing = this.buffers.get(name, "momentum_buffer");
      const buf = existing ?? new Float32Array(p.length);
      if (momentum !== 0) this.buffers.set(name, "momentum_buffer", buf);
      for (let i = 0; i < p.length; i++) {
        let d = maximize ? -(grad[i] ?? 0) : (grad[i] ?? 0);
        if (wd !== 0) d = Math.fround(d + Math.fround(wd * (p[i] ?? 0)));
        if (momentum !== 0) {
          const b = existing ? Math.fround(Math.fround((buf[i] ?? 0) * mom) + Math.fround(damp * d)) : d;
          buf[i] = b;
          d = this.options.nesterov ? Math.fround(d + Math.fround(mom * b)) : b;
        }
        p[i] = Math.fround((p[i] ?? 0) + Math.fround(negLr * d));
      }
    }
  }

  state(): OptimizerState {
    return { step: this.steps, tensors: this.buffers.toTensors() };
  }

  loadState(state: OptimizerState): void {
    this.buffers.load(state.tensors, ["momentum_buffer"]);
    this.steps = state.step;
  }
}
