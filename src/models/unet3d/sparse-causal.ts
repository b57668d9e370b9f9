/**
 * Tune-A-Video's SparseCausalAttention key/value selection (showlab/Tune-A-Video
 * `tuneavideo/models/attention.py`): frame i attends to the tokens of [frame 0 ; frame max(i-1, 0)]
 * concatenated along the sequence (`former_frame_index = arange(F) - 1; former_frame_index[0] = 0`),
 * so frames 0 and 1 see frame 0 twice and frame i >= 2 does not see itself. The same selection as
 * ../../nn/cross-frame.ts "first-and-previous", written with Slice/Expand/Concat (ops with gradient
 * rules) so the training graph differentiates through it.
 */
import type { GraphBuilder, Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import type { KeyValueTransform } from "../../nn/module.js";
import { reshapeParts } from "./frames.js";

/** [B*F, L, C] keys or values -> [B*F, 2L, C] (frame 0's tokens, then the previous frame's). */
export function sparseCausalSelect(g: GraphBuilder, x: Value, frames: number): Value {
  const [bf, l, c] = x.shape;
  const b = typeof bf === "number" ? bf / frames : null;
  const perVideo = reshapeParts(
    g,
    x,
    [[-1, frames], op.Shape(g, x, { start: 1 })],
    [b, frames, l ?? null, c ?? null],
  );
  const first = op.Slice(g, perVideo, { starts: [0], ends: [1], axes: [1] }); // [B, 1, L, C]
  const firstAll = g.node1(
    "Expand",
    [first, op.Shape(g, perVideo)],
    {},
    { dtype: x.dtype, shape: perVideo.shape },
  );
  const previous =
    frames === 1
      ? first
      : op.Concat(g, [first, op.Slice(g, perVideo, { starts: [0], ends: [frames - 1], axes: [1] })], 1);
  const joined = op.Concat(g, [firstAll, previous], 2); // [B, F, 2L, C]
  const tokens = typeof l === "number" ? 2 * l : null;
  return reshapeParts(g, joined, [[-1], op.Shape(g, joined, { start: 2 })], [bf ?? null, tokens, c ?? null]);
}

/** Sparse-causal attention in every `attn1` (attn2 and attn_temp are left alone). */
export function sparseCausalAttention(frames: number): KeyValueTransform {
  return (kv, context) => {
    if (!context.isSelfAttention || !context.path.endsWith(".attn1")) return kv;
    const g = context.graph;
    return g.withScope(`${context.path}.sparse_causal`, () => ({
      key: sparseCausalSelect(g, kv.key, frames),
      value: sparseCausalSelect(g, kv.value, frames),
    }));
  };
}
