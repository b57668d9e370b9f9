/**
 * Gradient rules of the normalisations: InstanceNormalization (the models' GroupNorm is Reshape
 * [N, G, -1] + InstanceNormalization + affine), LayerNormalization and GroupNormalization-21.
 * Statistics are recomputed from the input (biased variance, eps inside the sqrt), then
 *   grad_x = (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / sqrt(var + eps),  dxhat = dy * scale
 * with means over the normalised axes, as torch's native_group_norm_backward / layer_norm_backward.
 */
import type { GraphBuilder, Value } from "../builder.js";
import * as op from "../ops/index.js";
import { reshapeTo, staticShape, unbroadcast } from "./helpers.js";
import type { GradientRule } from "./rule.js";

interface Normalized {
  readonly xhat: Value;
  readonly rstd: Value;
}

/** xhat = (x - mean) * rstd over `axes` (kept as size 1). */
function normalize(g: GraphBuilder, x: Value, axes: readonly number[], eps: number): Normalized {
  const mean = op.ReduceMean(g, x, axes);
  const centered = op.Sub(g, x, mean);
  const variance = op.ReduceMean(g, op.Mul(g, centered, centered), axes);
  const rstd = op.Reciprocal(g, op.Sqrt(g, op.Add(g, variance, eps)));
  return { xhat: op.Mul(g, centered, rstd), rstd };
}

/** (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) * rstd over `axes`. */
function normInputGrad(g: GraphBuilder, dxhat: Value, n: Normalized, axes: readonly number[]): Value {
  const m1 = op.ReduceMean(g, dxhat, axes);
  const m2 = op.ReduceMean(g, op.Mul(g, dxhat, n.xhat), axes);
  return op.Mul(g, op.Sub(g, op.Sub(g, dxhat, m1), op.Mul(g, n.xhat, m2)), n.rstd);
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

/** Per-channel vector [C] as [C, 1, ...] for broadcasting over x [N, C, ...]. */
function channelView(g: GraphBuilder, v: Value, rank: number): Value {
  return op.Reshape(g, v, [-1, ...Array<number>(rank - 2).fill(1)]);
}

const instanceNormRule: GradientRule = (ctx, [gy]) => {
  if (!gy) return [null, null, null];
  const { g } = ctx;
  const x = ctx.input(0);
  const scale = ctx.input(1);
  const axes = range(2, x.rank);
  const n = normalize(g, x, axes, ctx.float("epsilon", 1e-5));
  const notChannel = [0, ...axes];
  const gx = ctx.needs[0] ? normInputGrad(g, op.Mul(g, gy, channelView(g, scale, x.rank)), n, axes) : null;
  const gs = ctx.needs[1] ? op.ReduceSum(g, op.Mul(g, gy, n.xhat), notChannel, { keepdims: false }) : null;
  const gb = ctx.needs[2] ? op.ReduceSum(g, gy, notChannel, { keepdims: false }) : null;
  return [gx, gs, gb];
};

const layerNormRule: GradientRule = (ctx, [gy]) => {
  if (!gy) return [null, null, null];
  const { g } = ctx;
  const x = ctx.input(0);
  const scale = ctx.input(1);
  const axis0 = ctx.int("axis", -1);
  const axis = axis0 < 0 ? axis0 + x.rank : axis0;
  const axes = range(axis, x.rank);
  const n = normalize(g, x, axes, ctx.float("epsilon", 1e-5));
  const gx = ctx.needs[0] ? normInputGrad(g, op.Mul(g, gy, scale), n, axes) : null;
  const gs = ctx.needs[1] ? unbroadcast(g, op.Mul(g, gy, n.xhat), scale) : null;
  const bias = ctx.inputs[2];
  const gb = bias && ctx.needs[2] ? unbroadcast(g, gy, bias) : null;
  return [gx, gs, gb];
};

const groupNormRule: GradientRule = (ctx, [gy]) => {
  if (!gy) return [null, null, null];
  const { g } = ctx;
  const x = ctx.input(0);
  const scale = ctx.input(1);
  const groups = ctx.int("num_groups", 1);
  const shape = staticShape("GroupNormalization", x);
  const grouped = op.Reshape(g, x, [shape[0] ?? 0, groups, -1]);
  const n = normalize(g, grouped, [2], ctx.float("epsilon", 1e-5));
  const xhat = reshapeTo(g, n.xhat, x);
  const notChannel = [0, ...range(2, x.rank)];
  let gx: Value | null = null;
  if (ctx.needs[0]) {
    const dxhat = op.Reshape(g, op.Mul(g, gy, channelView(g, scale, x.rank)), [shape[0] ?? 0, groups, -1]);
    gx = reshapeTo(g, normInputGrad(g, dxhat, n, [2]), x);
  }
  const gs = ctx.needs[1] ? op.ReduceSum(g, op.Mul(g, gy, xhat), notChannel, { keepdims: false }) : null;
  const gb = ctx.needs[2] ? op.ReduceSum(g, gy, notChannel, { keepdims: false }) : null;
  return [gx, gs, gb];
};

export const NORM_RULES: Readonly<Record<string, GradientRule>> = {
  InstanceNormalization: instanceNormRule,
  LayerNormalization: layerNormRule,
  GroupNormalization: groupNormRule,
};
