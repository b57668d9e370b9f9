/**
 * Reductions along axes: ReduceMean, ReduceSum, ReduceMax, and Softmax (normalizes along one axis).
 */
import type { GraphBuilder, Value } from "../builder.js";
import { attr } from "../builder.js";
import { type Dim, normalizeAxis } from "../shape.js";
import { expectFloat } from "./common.js";

export interface ReduceOptions {
  /** Keep reduced axes as size 1 (default true, as in ONNX). */
  readonly keepdims?: boolean;
}

function reduce(
  op: string,
  g: GraphBuilder,
  x: Value,
  axes: readonly number[],
  options: ReduceOptions,
): Value {
  const norm = axes.map((a) => normalizeAxis(op, a, x.rank));
  const keep = options.keepdims ?? true;
  const out: Dim[] = [];
  x.shape.forEach((d, i) => {
    if (!norm.includes(i)) out.push(d);
    else if (keep) out.push(1);
  });
  return g.node1(
    op,
    [x, g.int64s(norm)],
    { keepdims: attr.int(keep ? 1 : 0) },
    { dtype: x.dtype, shape: out },
  );
}

/** Mean over `axes`. */
export function ReduceMean(
  g: GraphBuilder,
  x: Value,
  axes: readonly number[],
  options: ReduceOptions = {},
): Value {
  expectFloat("ReduceMean", x);
  return reduce("ReduceMean", g, x, axes, options);
}

/** Sum over `axes`. */
export function ReduceSum(
  g: GraphBuilder,
  x: Value,
  axes: readonly number[],
  options: ReduceOptions = {},
): Value {
  return reduce("ReduceSum", g, x, axes, options);
}

/** Max over `axes`. */
export function ReduceMax(
  g: GraphBuilder,
  x: Value,
  axes: readonly number[],
  options: ReduceOptions = {},
): Value {
  return reduce("ReduceMax", g, x, axes, options);
}

/** Softmax along `axis` (default -1). */
export function Softmax(g: GraphBuilder, x: Value, axis = -1): Value {
  expectFloat("Softmax", x);
  return g.node1("Softmax", [x], { axis: attr.int(normalizeAxis("Softmax", axis, x.rank)) }, x);
}
