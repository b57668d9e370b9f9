/**
 * Tune-A-Video's temporal attention (showlab/Tune-A-Video `tuneavideo/models/attention.py`,
 * BasicTransformerBlock after its feed-forward): tokens [(b f), d, c] are rearranged to
 * [(b d), f, c], then `attn_temp(norm_temp(x)) + x` (self-attention over the F frames of each
 * spatial position, the block's heads, no positional encoding, no mask), then back. Keys under the
 * block: `attn_temp.{to_q,to_k,to_v}.weight`, `attn_temp.to_out.0.{weight,bias}`,
 * `norm_temp.{weight,bias}` (LayerNorm, eps 1e-5).
 */
import type { Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import { Attention } from "../../nn/attention.js";
import { LayerNorm } from "../../nn/layer-norm.js";
import { Module } from "../../nn/module.js";
import type { WeightScope } from "../../nn/weights.js";
import type { TransformerBlockDims } from "../unet/layer-hook.js";
import { fromTemporal, toTemporal } from "./frames.js";

/** Receives `<block>.attn_temp.input` / `.output` ([(b d), f, c]) while the graph is built. */
export type TemporalTap = (name: string, value: Value) => void;

export class TemporalAttention extends Module {
  readonly attn_temp: Attention;
  readonly norm_temp: LayerNorm;

  /** `w` is the BasicTransformerBlock's scope (the keys sit beside attn1/attn2). */
  constructor(
    w: WeightScope,
    dims: TransformerBlockDims,
    readonly frames: number,
    upcastAttention: boolean,
    private readonly tap: TemporalTap = () => undefined,
  ) {
    super(w);
    this.attn_temp = new Attention(w.at("attn_temp"), {
      queryDim: dims.dim,
      heads: dims.numHeads,
      dimHead: dims.headDim,
      upcastAttention,
    });
    this.norm_temp = new LayerNorm(w.at("norm_temp"), { normalizedShape: dims.dim, eps: 1e-5 });
  }

  /** Temporal sequences [(b d), f, c] -> attn_temp(norm_temp(x)) + x. */
  attend(x: Value): Value {
    const normed = this.norm_temp.forward(x);
    this.tap(`${this.path}.attn_temp.input`, normed);
    const out = this.attn_temp.forward(normed);
    this.tap(`${this.path}.attn_temp.output`, out);
    return op.Add(this.graph, out, x);
  }

  /** Tokens [(b f), d, c] -> the same shape. */
  forward(x: Value): Value {
    const g = this.graph;
    return g.withScope(`${this.path}.temporal`, () =>
      fromTemporal(g, this.attend(toTemporal(g, x, this.frames)), x, this.frames),
    );
  }
}
