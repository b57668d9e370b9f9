/**
 * Gradient rule of com.microsoft MultiHeadAttention (packed q [B, S, H*D], k [B, L, H*D],
 * v [B, L, H*Dv]; optional causal mask and additive attention bias, which gets no gradient). The
 * forward op keeps no probabilities, so the backward recomputes them per head (as flash attention's
 * backward does): P = softmax(scale Q K^T + mask), dV = P^T dO, dP = dO V^T,
 * dS = P (dP - rowsum(dO * O)), dQ = scale dS K, dK = scale dS^T Q. The [S, L] matrices are
 * computed a chunk of heads at a time (and a part of the query rows at a time when one head's matrix
 * exceeds the chunk, dK and dV summed over the parts), so they never exist for the whole batch.
 */
import type { GraphBuilder, Value } from "../builder.js";
import * as op from "../ops/index.js";
import { staticShape, sumAll } from "./helpers.js";
import type { GradientRule } from "./rule.js";

/**
 * Score elements ([S, L] per head) of one chunk of the backward. Each chunk of heads runs its whole
 * chain (scores, softmax, dP, dS and the three products) before the next one starts, so its [S, L]
 * matrices (4 MiB at 1024 x 1024) stay in cache and are freed at once, instead of every head's
 * probabilities being materialised for the whole batch ([B, H, S, L]) between passes.
 */
const CHUNK_ELEMENTS = 1 << 20;

/** [B, T, H*D] -> [B*H, T, D] (or [B*H, D, T] when `transposed`). */
function heads(g: GraphBuilder, x: Value, h: number, transposed = false): Value {
  const [b = 0, t = 0, hd = 0] = staticShape("MultiHeadAttention", x);
  const d = hd / h;
  const split = op.Transpose(g, op.Reshape(g, x, [b, t, h, d]), transposed ? [0, 2, 3, 1] : [0, 2, 1, 3]);
  return op.Reshape(g, split, transposed ? [b * h, d, t] : [b * h, t, d]);
}

/** [B*H, T, D] (or [B*H, D, T] when `transposed`) -> [B, T, H*D]. */
function merge(g: GraphBuilder, x: Value, b: number, transposed = false): Value {
  const [bh = 0, m = 0, n = 0] = staticShape("MultiHeadAttention", x);
  const h = bh / b;
  const [t, d] = transposed ? [n, m] : [m, n];
  const split = op.Reshape(g, x, [b, h, m, n]);
  return op.Reshape(g, op.Transpose(g, split, transposed ? [0, 3, 1, 2] : [0, 2, 1, 3]), [b, t, h * d]);
}

/** `x` split into `n` equal parts along axis 0 (itself when n = 1). */
function parts(g: GraphBuilder, x: Value, n: number): Value[] {
  return n === 1 ? [x] : op.Split(g, x, 0, { count: n });
}

/** The largest divisor of `total` that is at most `limit` (at least 1). */
function divisorAtMost(total: number, limit: number): number {
  for (let c = Math.max(1, Math.min(total, limit)); c > 1; c--) if (total % c === 0) return c;
  return 1;
}

/*
 * Layout: heads flattened to [B*H, T, D]. The [S, L] matrices (P, dS) are only the right operand of a
 * product with a thin left one (dV^T = dO^T P, dK^T = (scale Q)^T dS) or the left operand of a plain
 * one (dQ = dS (scale K)), so none is transposed; the row sums rowsum(dP * P) = rowsum(dO * O) come
 * from the thin output instead of a pass over [S, L]; the scale multiplies the thin Q and K.
 */
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
  const k = ctx.input(1);
  const v = ctx.input(2);
  const [b = 0, s = 0, qk = 0] = staticShape("MultiHeadAttention", q);
  const l = staticShape("MultiHeadAttention", k)[1] ?? 0;
  const scale = ctx.float("scale", 1 / Math.sqrt(qk / h));
  const qScaled = op.Mul(g, q, scale);
  const kScaled = op.Mul(g, k, scale);
  const bias = ctx.inputs[5];
  const causal = ctx.int("unidirectional", 0) === 1;
  const mask = causal
    ? g.constantOf(
        q.dtype,
        [s, l],
        Array.from({ length: s * l }, (_, i) => (i % l <= Math.floor(i / l) ? 0 : -Infinity)),
      )
    : undefined;
  // an attention bias [B | 1, H | 1, S, L] as [B*H | 1, S, L]
  let biasFlat: Value | undefined;
  if (bias) {
    const [bb = 1, bhd = 1] = staticShape("MultiHeadAttention", bias);
    const shared = bb * bhd === 1;
    const full = shared || (bb === b && bhd === h) ? bias : op.Expand(g, bias, [b, h, s, l]);
    biasFlat = op.Reshape(g, full, [shared ? 1 : b * h, s, l]);
  }
  const needQK = ctx.needs[0] || ctx.needs[1];
  const count = (b * h) / divisorAtMost(b * h, Math.floor(CHUNK_ELEMENTS / Math.max(1, s * l)));
  const qs = parts(g, heads(g, qScaled, h), count); // [c, S, D]
  const kT = parts(g, heads(g, k, h, true), count); // [c, D, L]
  const doT = ctx.needs[2] ? parts(g, heads(g, gy, h, true), count) : []; // [c, Dv, S]
  const biases = biasFlat && (biasFlat.shape[0] ?? 1) !== 1 ? parts(g, biasFlat, count) : undefined;
  let dos: Value[] = [];
  let vT: Value[] = [];
  let rowDots: Value[] = [];
  let ks: Value[] = [];
  let qsT: Value[] = [];
  if (needQK) {
    const doh = heads(g, gy, h);
    dos = parts(g, doh, count); // [c, S, Dv]
    vT = parts(g, heads(g, v, h, true), count); // [c, Dv, L]
    const rowDot = op.ReduceSum(g, op.Mul(g, doh, heads(g, ctx.output(0), h)), [-1], { keepdims: true });
    rowDots = parts(g, rowDot, count); // [c, S, 1]
    if (ctx.needs[0]) ks = parts(g, heads(g, kScaled, h), count); // [c, L, D]
    if (ctx.needs[1]) qsT = parts(g, heads(g, qScaled, h, true), count); // [c, D, S]
  }
  const dq: Value[] = [];
  const dkT: Value[] = [];
  const dvT: Value[] = [];
  // a head whose [S, L] matrix alone exceeds the chunk: query rows in parts, dK and dV summed over them
  const rowParts = s * l > CHUNK_ELEMENTS ? Math.min(s, Math.ceil((s * l) / CHUNK_ELEMENTS)) : 1;
  const rowSizes = Array.from(
    { length: rowParts },
    (_, j) => Math.floor((s * (j + 1)) / rowParts) - Math.floor((s * j) / rowParts),
  );
  const rows = (x: Value | undefined, axis: number): Value[] => {
    if (!x) return [];
    return rowParts === 1 ? [x] : op.Split(g, x, axis, rowSizes);
  };
  const maskRows = rows(mask, 0);
  for (let i = 0; i < count; i++) {
    const qsR = rows(qs[i], 1);
    const biasR = rows(biases ? biases[i] : biasFlat, 1);
    const doTR = rows(doT[i], 2);
    const dosR = rows(dos[i], 1);
    const rowDotR = rows(rowDots[i], 1);
    const qsTR = rows(qsT[i], 2);
    const dqRows: Value[] = [];
    const dkParts: Value[] = [];
    const dvParts: Value[] = [];
    for (let j = 0; j < rowParts; j++) {
      let scores = op.MatMul(g, qsR[j] as Value, kT[i] as Value); // [c, S, L]
      const biasRow = biasR[j];
      const maskRow = maskRows[j];
      if (biasRow) scores = op.Add(g, scores, biasRow);
      if (maskRow) scores = op.Add(g, scores, maskRow);
      const p = op.Softmax(g, scores, -1);
      if (ctx.needs[2]) dvParts.push(op.MatMul(g, doTR[j] as Value, p)); // dV^T = dO^T P
      if (needQK) {
        const dp = op.MatMul(g, dosR[j] as Value, vT[i] as Value); // [c, S, L]
        const ds = op.Mul(g, p, op.Sub(g, dp, rowDotR[j] as Value)); // dS / scale
        if (ctx.needs[0]) dqRows.push(op.MatMul(g, ds, ks[i] as Value));
        if (ctx.needs[1]) dkParts.push(op.MatMul(g, qsTR[j] as Value, ds)); // dK^T
      }
    }
    if (dvParts.length > 0) dvT.push(sumAll(g, dvParts));
    if (dkParts.length > 0) dkT.push(sumAll(g, dkParts));
    if (dqRows.length > 0) dq.push(dqRows.length === 1 ? (dqRows[0] as Value) : op.Concat(g, dqRows, 1));
  }
  const out: (Value | null)[] = [...none];
  const put = (index: number, chunks: Value[], transposed: boolean): void => {
    if (chunks.length === 0) return;
    const all = chunks.length === 1 ? (chunks[0] as Value) : op.Concat(g, chunks, 0);
    out[index] = merge(g, all, b, transposed);
  };
  put(0, dq, false);
  put(1, dkT, true);
  put(2, dvT, true);
  return out;
};

export const ATTENTION_RULES: Readonly<Record<string, GradientRule>> = {
  MultiHeadAttention: multiHeadAttentionRule,
};
