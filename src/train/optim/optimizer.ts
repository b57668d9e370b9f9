/**
 * The optimiser contract shared by Adam/AdamW and SGD: parameters are named Float32Arrays updated
 * in place; a step takes one gradient per parameter (null, undefined or absent = no gradient: the
 * parameter is skipped entirely, no decay, no new state and its step count does not advance, as
 * torch.optim does for `p.grad is None`). State is exported as named host tensors
 * (`<param>.<buffer>`) plus the step counts, and restored from them exactly.
 */
import { InvalidArgumentError } from "../../errors.js";
import { type HostTensor, tensor } from "../../tensor.js";

/** Parameters or gradients by name (diffusers keys). */
export type NamedArrays = ReadonlyMap<string, Float32Array>;

export interface OptimizerState {
  /** Optimiser steps taken (calls of `step`). */
  readonly step: number;
  /**
   * (optional) Steps each parameter with state has taken (torch's per-parameter `state[p]["step"]`):
   * fewer than `step` where the parameter had no gradient at some steps. A parameter missing here
   * takes `step` on restore (states saved before the counts were kept).
   */
  readonly paramSteps?: Readonly<Record<string, number>>;
  /** `<param>.<buffer>` -> buffer, e.g. "conv_in.weight.exp_avg". */
  readonly tensors: Readonly<Record<string, HostTensor<"float32">>>;
}

export interface Optimizer {
  /** Updates `params` in place with `grads` at learning rate `lr` (default: the optimiser's lr). */
  step(params: NamedArrays, grads: ReadonlyMap<string, Float32Array | null | undefined>, lr?: number): void;
  /** A copy of the state (buffers and step count). */
  state(): OptimizerState;
  /** Replaces the state with a copy of `state` (as saved by `state()`). */
  loadState(state: OptimizerState): void;
}

/** Per-parameter buffers, created on a parameter's first step with a gradient. */
export class BufferSet {
  private readonly buffers = new Map<string, Map<string, Float32Array>>();

  get(param: string, buffer: string): Float32Array | undefined {
    return this.buffers.get(param)?.get(buffer);
  }

  set(param: string, buffer: string, data: Float32Array): void {
    let m = this.buffers.get(param);
    if (!m) this.buffers.set(param, (m = new Map()));
    m.set(buffer, data);
  }

  /** Names of the parameters with buffers. */
  params(): string[] {
    return [...this.buffers.keys()];
  }

  toTensors(): Record<string, HostTensor<"float32">> {
    const out: Record<string, HostTensor<"float32">> = {};
    for (const [param, m] of this.buffers)
      for (const [buffer, data] of m)
        out[`${param}.${buffer}`] = tensor("float32", [data.length], data.slice());
    return out;
  }

  load(tensors: Readonly<Record<string, HostTensor<"float32">>>, bufferNames: readonly string[]): void {
    this.buffers.clear();
    for (const [key, t] of Object.entries(tensors)) {
      const buffer = bufferNames.find((b) => key.endsWith(`.${b}`));
      if (buffer === undefined) {
        throw new InvalidArgumentError(
          "optimizer state",
          `keys ending in ${bufferNames.map((b) => `.${b}`).join(" or ")}`,
          key,
          {
            hint: "the state was saved by another optimiser",
          },
        );
      }
      this.set(key.slice(0, -buffer.length - 1), buffer, Float32Array.from(t.data));
    }
  }
}

/** Checks a gradient against its parameter. */
export function checkGradient(
  name: string,
  param: Float32Array | undefined,
  grad: Float32Array,
): Float32Array {
  if (!param) throw new InvalidArgumentError("grads", "gradients of known parameters only", name);
  if (param.length !== grad.length)
    throw new InvalidArgumentError(
      `gradient of ${name}`,
      `${param.length} elements`,
      `${grad.length} elements`,
    );
  return param;
}

/**
 * A gradient that is zero outside some rows of a table parameter ([rows, rowSize] row-major): the
 * gradient of a Gather, summed per row. Each row appears once. An optimiser that takes it updates
 * those rows only, as a lazy table does (see `AdamOptions.lazy`), without reading the whole table.
 */
export interface SparseRows {
  readonly kind: "rows";
  readonly rowSize: number;
  /** Distinct row numbers. */
  readonly rows: Int32Array;
  /** [rows.length, rowSize] gradient values. */
  readonly values: Float32Array;
}

/** Row -> slot of the call in progress (-1: none), kept between calls; reset after each use. */
let rowSlots = new Int32Array(0);

/**
 * Sums `values` ([n, rowSize]) into one entry per distinct row of `rows` ([n], non-negative
 * integers); the rows come out in order of first appearance, each sum taken in the order of `rows`
 * with float32 rounding. O(n): the slots are a table indexed by row number (a few hundred thousand
 * rows per step of an atlas fit).
 */
export function sumRows(rows: ArrayLike<number>, values: Float32Array, rowSize: number): SparseRows {
  let max = -1;
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i] ?? -1;
    if (!(Number.isInteger(r) && r >= 0))
      throw new InvalidArgumentError(`rows[${i}]`, "a non-negative integer row number", r);
    if (r > max) max = r;
  }
  if (rowSlots.length <= max) rowSlots = new Int32Array(Math.max(max + 1, 2 * rowSlots.length)).fill(-1);
  const slots = rowSlots;
  const order = new Int32Array(rows.length);
  const sums = new Float32Array(rows.length * rowSize);
  let count = 0;
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i] as number;
    let s = slots[r] as number;
    if (s < 0) {
      s = count++;
      slots[r] = s;
      order[s] = r;
    }
    const at = s * rowSize;
    const from = i * rowSize;
    for (let j = 0; j < rowSize; j++) sums[at + j] = (sums[at + j] as number) + (values[from + j] ?? 0);
  }
  for (let k = 0; k < count; k++) slots[order[k] as number] = -1;
  return { kind: "rows", rowSize, rows: order.slice(0, count), values: sums.slice(0, count * rowSize) };
}

/** Whether `g` is a {@link SparseRows} gradient. */
export function isSparseRows(g: Float32Array | SparseRows | null | undefined): g is SparseRows {
  return g !== null && g !== undefined && !(g instanceof Float32Array) && g.kind === "rows";
}
