/**
 * Matrix products: MatMul (numpy semantics, batch dims broadcast) and Gemm (2-D, optional transposes).
 */
import { GraphError } from "../../errors.js";
import type { GraphBuilder, Value } from "../builder.js";
import { attr } from "../builder.js";
import { type Dim, broadcastShapes, dimToString, dimsEqual, shapeStr } from "../shape.js";
import { commonDType } from "./common.js";

/** MatMul(a, b): [..., M, K] x [..., K, N] -> [..., M, N]; 1-D operands are promoted as in numpy. */
export function MatMul(g: GraphBuilder, a: Value, b: Value): Value {
  const dtype = commonDType("MatMul", a, b);
  if (a.rank === 0 || b.rank === 0)
    throw new GraphError(
      "MatMul",
      `operands must have rank >= 1, got ${shapeStr(a.shape)} and ${shapeStr(b.shape)}`,
    );
  const sa = a.rank === 1 ? [1, ...a.shape] : a.shape;
  const sb = b.rank === 1 ? [...b.shape, 1] : b.shape;
  const k1 = sa[sa.length - 1] ?? null;
  const k2 = sb[sb.length - 2] ?? null;
  if (dimsEqual(k1, k2) === false) {
    throw new GraphError(
      "MatMul",
      `inner dims differ: ${shapeStr(a.shape)} x ${shapeStr(b.shape)} (${dimToString(k1)} vs ${dimToString(k2)})`,
    );
  }
  const batch = broadcastShapes("MatMul", sa.slice(0, -2), sb.slice(0, -2));
  const out: Dim[] = [...batch];
  if (a.rank !== 1) out.push(sa[sa.length - 2] ?? null);
  if (b.rank !== 1) out.push(sb[sb.length - 1] ?? null);
  return g.node1("MatMul", [a, b], {}, { dtype, shape: out });
}

export interface GemmOptions {
  /** Multiply A by alpha (default 1). */
  readonly alpha?: number;
  /** Multiply C by beta (default 1). */
  readonly beta?: number;
  /** Use A transposed (default false). */
  readonly transA?: boolean;
  /** Use B transposed, e.g. a Linear weight stored [out, in] (default false). */
  readonly transB?: boolean;
}

/** Gemm(A, B, C): alpha * A' x B' + beta * C with A' [M, K], B' [K, N], C broadcastable to [M, N]. */
export function Gemm(g: GraphBuilder, a: Value, b: Value, c: Value | null, options: GemmOptions = {}): Value {
  const dtype = commonDType("Gemm", a, b, ...(c ? [c] : []));
  if (a.rank !== 2 || b.rank !== 2) {
    throw new GraphError("Gemm", `A and B must be 2-D, got ${shapeStr(a.shape)} and ${shapeStr(b.shape)}`);
  }
  const [m, ka] = options.transA
    ? [a.shape[1] ?? null, a.shape[0] ?? null]
    : [a.shape[0] ?? null, a.shape[1] ?? null];
  const [kb, n] = options.transB
    ? [b.shape[1] ?? null, b.shape[0] ?? null]
    : [b.shape[0] ?? null, b.shape[1] ?? null];
  if (dimsEqual(ka, kb) === false) {
    throw new GraphError(
      "Gemm",
      `inner dims differ: A${options.transA ? "^T" : ""} ${shapeStr(a.shape)} x B${options.transB ? "^T" : ""} ${shapeStr(b.shape)} (${dimToString(ka)} vs ${dimToString(kb)})`,
    );
  }
  if (c) broadcastShapes("Gemm", c.shape, [m, n]);
  return g.node1(
    "Gemm",
    [a, b, c],
    {
      alpha: options.alpha === undefined ? undefined : attr.float(options.alpha),
      beta: options.beta === undefined ? undefined : attr.float(options.beta),
      transA: options.transA ? attr.int(1) : undefined,
      transB: options.transB ? attr.int(1) : undefined,
    },
    { dtype, shape: [m, n] },
  );
}
