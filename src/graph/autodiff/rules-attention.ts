/**
 * Gradient rule of com.microsoft MultiHeadAttention (packed q [B, S, H*D], k [B, L, H*D],
 * v [B, L, H*Dv]; optional causal mask and additive attention bias, which gets no gradient). The
 * forward op keeps no probabilities, so the backward recomputes them per head (as flash attention's
 * backward does): P = softmax(scale Q K^T + mask), dV = P^T dO, dP = dO V^T,
 * dS = P (dP - rowsum(dO * O)), dQ = scale dS K, dK = scale dS^T Q.
 */
import type { GraphBuilder, Value } from "../builder.js";
import * as op from "../ops/index.js";
import { staticShape } from "./helpers.js";
import type { GradientRule } from "./rule.js";

/** [B, T, H*D] -> [B, H, T, D]. */
function heads(g: GraphBuilder, x: Value, h: number): Value {
  const d = (staticShape("MultiHeadAttention", x)[2] ?? 0) / h;
  return op.Transpose(g, op.Reshape(g, x, [0, 0, h, d]), [0, 2, 1, 3]);
}

/** [B, H, T, D] -> [B, T, H*D]. */
function merge(g: GraphBuilder, x: Value): Value {
  const [, h = 0, , d = 0] = staticShape("MultiHeadAttention", x);
  return op.Reshape(g, op.Transpose(g, x, [0, 2, 1, 3]), [0, 0, h * d]);
}

const swapLast = [0, 1, 3, 2];

const multiHeadAttentionRule: GradientRule = (ctx, [gy]) => {
  const none = ctx.inputs.map(() => null);
  if (!gy) return none;
  const { g } = ctx;
  const packed = ctx.inputs.slice(3, 5).some((v) => v !== undefined);
  if (packed || ctx.inputs[6] !== undefined || ctx.inputs[7] !== undefined) {
    throw ctx.error(
      "only q, k, v and attention_bias inputs (no bias, key_padding_mask or past) have a gradient rule",
    );
  }
  const h = ctx.int("num_heads", 1);
  const q = ctx.input(0);
  const qs = staticShape("MultiHeadAttention", q);
  const headDim = (qs[2] ?? 0) / h;
  const scale = ctx.float("scale", 1 / Math.sqrt(headDim));
  const qh = heads(g, q, h); // [B, H, S, D]
  const kh = heads(g, ctx.input(1), h); // [B, H, L, D]
  const vh = heads(g, ctx.input(2), h); // [B, H, L, Dv]
  const doh = heads(g, gy, h); // [B, H, S, Dv]
  let scores = op.MatMul(g, op.Mul(g, qh, scale), op.Transpose(g, kh, swapLast)); // [B, H, S, L]
  const bias = ctx.inputs[5];
  if (bias) scores = op.Add(g, scores, bias);
  if (ctx.int("unidirectional", 0) === 1) {
    const [, , s = 0, l = 0] = staticShape("MultiHeadAttention", scores);
    const mask = Array.from({ length: s * l }, (_, i) => (i % l <= Math.floor(i / l) ? 0 : -Infinity));
    scores = op.Add(g, scores, g.constantOf(scores.dtype, [s, l], mask));
  }
  const p = op.Softmax(g, scores, -1);
  const out: (Value | null)[] = [...none];
  if (ctx.needs[2]) out[2] = merge(g, op.MatMul(g, op.Transpose(g, p, swapLast), doh));
  if (ctx.needs[0] || ctx.needs[1]) {
    const dp = op.MatMul(g, doh, op.Transpose(g, vh, swapLast)); // [B, H, S, L]
    const rowDot = op.ReduceSum(g, op.Mul(g, dp, p), [-1], { keepdims: true });
    const ds = op.Mul(g, op.Mul(g, p, op.Sub(g, dp, rowDot)), scale);
    if (ctx.needs[0]) out[0] = merge(g, op.MatMul(g, ds, kh));
    if (ctx.needs[1]) out[1] = merge(g, op.MatMul(g, op.Transpose(g, ds, swapLast), qh));
  }
  return out;
};

export const ATTENTION_RULES: Readonly<Record<string, GradientRule>> = {
  MultiHeadAttention: multiHeadAttentionRule,
};
