/**
 * Multi-head scaled dot-product attention over packed heads: query [B, S, H*D], key [B, L, H*D],
 * value [B, L, H*Dv] -> [B, S, H*Dv]. Two lowerings: the com.microsoft MultiHeadAttention contrib op
 * (ORT CPU, CUDA and WebGPU kernels) and plain ONNX (Reshape/Transpose/MatMul/Softmax) for runtimes
 * without contrib ops.
 */
import { GraphError } from "../../errors.js";
import type { DType } from "../../tensor.js";
import type { GraphBuilder, Value } from "../builder.js";
import { attr } from "../builder.js";
import { type Dim, dimToString, dimsEqual, shapeStr } from "../shape.js";
import { commonDType, expectFloat } from "./common.js";
import { Add, Cast, Mul } from "./elementwise.js";
import { MatMul } from "./matmul.js";
import { Reshape, Transpose } from "./movement.js";
import { Softmax } from "./reduce.js";

/** How attention is lowered: "mha" = com.microsoft MultiHeadAttention, "matmul" = plain ONNX ops. */
export type AttentionImplementation = "mha" | "matmul";

export interface AttentionOptions {
  /** Number of heads H (the packed hidden sizes must divide by it). */
  readonly numHeads: number;
  /** Score scale (default 1/sqrt(D)). */
  readonly scale?: number;
  /** Lowering (default "mha"). */
  readonly implementation?: AttentionImplementation;
  /** "matmul" only: compute scores and softmax in float32 for float16 inputs (diffusers `upcast_attention`). */
  readonly upcast?: boolean;
  /** Added to the scaled scores before softmax, broadcastable to [B, H, S, L] (e.g. a causal mask of -inf). */
  readonly attentionBias?: Value;
  /** Causal mask: query i attends to keys 0..i only (CLIP text encoder). Default false. */
  readonly causal?: boolean;
}

interface Dims {
  readonly batch: Dim;
  readonly seq: Dim;
  readonly headDim: number;
  readonly valueHeadDim: number;
}

function checkInputs(op: string, q: Value, k: Value, v: Value, numHeads: number): Dims {
  commonDType(op, q, k, v);
  expectFloat(op, q);
  for (const [what, x] of [
    ["query", q],
    ["key", k],
    ["value", v],
  ] as const) {
    if (x.rank !== 3)
      throw new GraphError(
        op,
        `${what} must be [batch, sequence, heads*head_dim] but ${x.name} is ${shapeStr(x.shape)}`,
      );
  }
  if (!Number.isInteger(numHeads) || numHeads < 1)
    throw new GraphError(op, `num_heads must be a positive integer, got ${numHeads}`);
  const hidden = q.shape[2];
  const vHidden = v.shape[2];
  if (typeof hidden !== "number" || typeof vHidden !== "number") {
    throw new GraphError(
      op,
      `the hidden sizes must be static, got query ${shapeStr(q.shape)} and value ${shapeStr(v.shape)}`,
    );
  }
  if (hidden % numHeads !== 0 || vHidden % numHeads !== 0) {
    throw new GraphError(
      op,
      `hidden sizes ${hidden} (query) and ${vHidden} (value) must divide by num_heads ${numHeads}`,
    );
  }
  if (dimsEqual(k.shape[2] ?? null, hidden) === false) {
    throw new GraphError(
      op,
      `key hidden size ${dimToString(k.shape[2] ?? null)} must equal query hidden size ${hidden}`,
    );
  }
  if (dimsEqual(k.shape[1] ?? null, v.shape[1] ?? null) === false) {
    throw new GraphError(
      op,
      `key and value sequence lengths differ: ${shapeStr(k.shape)} vs ${shapeStr(v.shape)}`,
    );
  }
  const [bq, bk, bv] = [q.shape[0] ?? null, k.shape[0] ?? null, v.shape[0] ?? null];
  if (dimsEqual(bq, bk) === false || dimsEqual(bk, bv) === false) {
    throw new GraphError(
      op,
      `batch sizes differ: query ${shapeStr(q.shape)}, key ${shapeStr(k.shape)}, value ${shapeStr(v.shape)}`,
    );
  }
  return {
    batch: q.shape[0] ?? null,
    seq: q.shape[1] ?? null,
    headDim: hidden / numHeads,
    valueHeadDim: vHidden / numHeads,
  };
}

/** com.microsoft MultiHeadAttention (contrib op, opset 1 of domain "com.microsoft"). */
export function MultiHeadAttention(
  g: GraphBuilder,
  q: Value,
  k: Value,
  v: Value,
  options: AttentionOptions,
): Value {
  const d = checkInputs("MultiHeadAttention", q, k, v, options.numHeads);
  const bias = options.attentionBias;
  if (bias && bias.rank !== 4) {
    throw new GraphError(
      "MultiHeadAttention",
      `attention bias must be [B or 1, H or 1, S, L] but ${bias.name} is ${shapeStr(bias.shape)}`,
    );
  }
  return g.node1(
    "MultiHeadAttention",
    bias ? [q, k, v, null, null, bias] : [q, k, v],
    {
      num_heads: attr.int(options.numHeads),
      scale: options.scale === undefined ? undefined : attr.float(options.scale),
      unidirectional: options.causal ? attr.int(1) : undefined,
    },
    { dtype: q.dtype, shape: [d.batch, d.seq, d.valueHeadDim * options.numHeads] },
    "com.microsoft",
  );
}

/** The same attention from plain ONNX ops: softmax(Q K^T * scale) V per head. */
export function MatMulAttention(
  g: GraphBuilder,
  q: Value,
  k: Value,
  v: Value,
  options: AttentionOptions,
): Value {
  const d = checkInputs("MatMulAttention", q, k, v, options.numHeads);
  const h = options.numHeads;
  const scale = options.scale ?? 1 / Math.sqrt(d.headDim);
  const upcast = options.upcast === true && q.dtype !== "float32";
  const scoreDType = upcast ? "float32" : q.dtype;
  const qh = Transpose(g, Reshape(g, Cast(g, q, scoreDType), [0, 0, h, d.headDim]), [0, 2, 1, 3]); // [B, H, S, D]
  const kh = Transpose(g, Reshape(g, Cast(g, k, scoreDType), [0, 0, h, d.headDim]), [0, 2, 3, 1]); // [B, H, D, L]
  const vh = Transpose(g, Reshape(g, v, [0, 0, h, d.valueHeadDim]), [0, 2, 1, 3]); // [B, H, L, Dv]
  let scores = MatMul(g, Mul(g, qh, scale), kh); // [B, H, S, L]
  if (options.attentionBias) scores = Add(g, scores, Cast(g, options.attentionBias, scoreDType));
  if (options.causal) scores = Add(g, scores, causalMask(g, d.seq, k.shape[1] ?? null, scoreDType));
  const probs = Softmax(g, scores, -1);
  const out = MatMul(g, Cast(g, probs, v.dtype), vh); // [B, H, S, Dv]
  return Reshape(g, Transpose(g, out, [0, 2, 1, 3]), [0, 0, h * d.valueHeadDim]);
}

/** Additive causal mask [S, L]: 0 where key j <= query i, -inf elsewhere (needs static lengths). */
function causalMask(g: GraphBuilder, seq: Dim, keys: Dim, dtype: DType): Value {
  if (typeof seq !== "number" || typeof keys !== "number") {
    throw new GraphError(
      "MatMulAttention",
      `a causal mask needs static sequence lengths, got ${dimToString(seq)} queries and ${dimToString(keys)} keys`,
      {
        hint: 'use the "mha" implementation for dynamic lengths',
      },
    );
  }
  const values = Array.from({ length: seq * keys }, (_, i) =>
    i % keys <= Math.floor(i / keys) ? 0 : -Infinity,
  );
  return g.constantOf(dtype, [seq, keys], values);
}

/** Multi-head attention with the chosen lowering (default "mha"). */
export function multiHeadAttention(
  g: GraphBuilder,
  q: Value,
  k: Value,
  v: Value,
  options: AttentionOptions,
): Value {
  return (options.implementation ?? "mha") === "mha"
    ? MultiHeadAttention(g, q, k, v, options)
    : MatMulAttention(g, q, k, v, options);
}
