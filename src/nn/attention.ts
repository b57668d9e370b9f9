/**
 * Attention, as diffusers `models/attention_processor.py: Attention` with the default processor:
 * keys `to_q`, `to_k`, `to_v`, `to_out.0` (and `group_norm` when norm_num_groups is set, as in the
 * VAE mid-block). Accepts [B, S, C] or [B, C, H, W] hidden states; optional encoder hidden states
 * make it cross-attention. The lowering (contrib MultiHeadAttention or plain MatMul/Softmax), an
 * optional key/value transform (cross-frame attention) and optional extra key/value sources attended
 * with their own softmax and added before to_out (IP-Adapter) come from the scope's GraphBuildOptions.
 */
import type { Value } from "../graph/builder.js";
import * as op from "../graph/ops/index.js";
import { GroupNorm } from "./group-norm.js";
import { Linear } from "./linear.js";
import { type KeyValue, Module } from "./module.js";
import type { WeightScope } from "./weights.js";

export interface AttentionOptions {
  readonly queryDim: number;
  /** Width of the encoder hidden states (default: queryDim, i.e. self-attention only). */
  readonly crossAttentionDim?: number;
  /** Default 8. */
  readonly heads?: number;
  /** Default 64. */
  readonly dimHead?: number;
  /** Bias on to_q/to_k/to_v (default false). */
  readonly bias?: boolean;
  /** Bias on to_out.0 (default true). */
  readonly outBias?: boolean;
  /** Output width (default queryDim); when set, heads = outDim / dimHead as in diffusers. */
  readonly outDim?: number;
  /** Scale scores by dim_head^-0.5 (default true). */
  readonly scaleQk?: boolean;
  /** Compute scores in float32 for float16 graphs (diffusers upcast_attention). */
  readonly upcastAttention?: boolean;
  /** Softmax in float32 for float16 graphs (diffusers upcast_softmax). */
  readonly upcastSoftmax?: boolean;
  /** Adds `group_norm` over the input channels before the projections. */
  readonly normNumGroups?: number;
  /** Group norm epsilon (default 1e-5). */
  readonly eps?: number;
  /** Add the input to the output (default false). */
  readonly residualConnection?: boolean;
  /** Divide the output by this (default 1). */
  readonly rescaleOutputFactor?: number;
}

export interface AttentionCallOptions {
  /** [B, L, crossAttentionDim] context; absent = self-attention. */
  readonly encoderHiddenStates?: Value;
}

export class Attention extends Module {
  readonly heads: number;
  readonly dimHead: number;
  readonly to_q: Linear;
  readonly to_k: Linear;
  readonly to_v: Linear;
  readonly to_out: readonly [Linear];
  readonly group_norm: GroupNorm | null;

  constructor(
    w: WeightScope,
    readonly options: AttentionOptions,
  ) {
    super(w);
    this.dimHead = options.dimHead ?? 64;
    const innerDim = options.outDim ?? this.dimHead * (options.heads ?? 8);
    this.heads = options.outDim !== undefined ? options.outDim / this.dimHead : (options.heads ?? 8);
    const bias = options.bias ?? false;
    const kvDim = options.crossAttentionDim ?? options.queryDim;
    this.group_norm =
      options.normNumGroups === undefined
        ? null
        : new GroupNorm(w.at("group_norm"), {
            numGroups: options.normNumGroups,
            numChannels: options.queryDim,
            eps: options.eps ?? 1e-5,
          });
    this.to_q = new Linear(w.at("to_q"), { inFeatures: options.queryDim, outFeatures: innerDim, bias });
    this.to_k = new Linear(w.at("to_k"), { inFeatures: kvDim, outFeatures: innerDim, bias });
    this.to_v = new Linear(w.at("to_v"), { inFeatures: kvDim, outFeatures: innerDim, bias });
    this.to_out = [
      new Linear(w.at("to_out").at(0), {
        inFeatures: innerDim,
        outFeatures: options.outDim ?? options.queryDim,
        bias: options.outBias ?? true,
      }),
    ];
  }

  forward(hiddenStates: Value, call: AttentionCallOptions = {}): Value {
    const g = this.graph;
    const o = this.options;
    return this.scoped(() => {
      const residual = hiddenStates;
      let x = hiddenStates;
      if (this.group_norm) x = this.group_norm.forward(x);
      const spatial = x.rank === 4;
      if (spatial) x = op.Transpose(g, op.Reshape(g, x, [0, 0, -1]), [0, 2, 1]); // [B, C, H, W] -> [B, HW, C]
      const context = call.encoderHiddenStates ?? x;
      const query = this.to_q.forward(x);
      let kv: KeyValue = { key: this.to_k.forward(context), value: this.to_v.forward(context) };
      const kvContext = {
        graph: g,
        path: this.path,
        isSelfAttention: call.encoderHiddenStates === undefined,
        heads: this.heads,
      };
      const transform = this.w.options.keyValueTransform;
      if (transform) kv = transform(kv, kvContext);
      const upcast = (o.upcastAttention === true || o.upcastSoftmax === true) && query.dtype !== "float32";
      const implementation = this.w.options.attention ?? "mha";
      const scale = (o.scaleQk ?? true) ? this.dimHead ** -0.5 : 1;
      const attend = (source: KeyValue): Value => {
        if (upcast && implementation === "mha") {
          const f32 = (v: Value): Value => op.Cast(g, v, "float32");
          const up = op.MultiHeadAttention(g, f32(query), f32(source.key), f32(source.value), {
            numHeads: this.heads,
            scale,
          });
          return op.Cast(g, up, query.dtype);
        }
        return op.multiHeadAttention(g, query, source.key, source.value, {
          numHeads: this.heads,
          scale,
          implementation,
          upcast,
        });
      };
      let out = attend(kv);
      const extra = this.w.options.extraKeyValues?.(kvContext, this.heads * this.dimHead) ?? [];
      for (const source of extra) out = op.Add(g, out, attend(source));
      out = this.to_out[0].forward(out);
      if (spatial) out = op.ReshapeLike(g, op.Transpose(g, out, [0, 2, 1]), residual); // back to [B, C, H, W]
      if (o.residualConnection) out = op.Add(g, out, residual);
      if (o.rescaleOutputFactor !== undefined && o.rescaleOutputFactor !== 1)
        out = op.Div(g, out, o.rescaleOutputFactor);
      return out;
    });
  }
}
