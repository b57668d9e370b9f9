/**
 * IP-Adapter image projections, as the published SD1.5 files hold them (keys under `image_proj.`)
 * and diffusers 0.26.3 runs them after `load_ip_adapter` converts the keys
 * (models/embeddings.py: ImageProjection, IPAdapterPlusImageProjection):
 *
 * - plain (`ip-adapter_sd15`): Linear(image_embeds D -> tokens * C) -> [N, tokens, C] -> LayerNorm;
 *   file keys `proj` (diffusers `image_embeds`) and `norm`;
 * - plus (`ip-adapter-plus_sd15`, the Resampler / perceiver): learned `latents` [1, T, W];
 *   x = proj_in(hidden_states); per layer i: residual = latents; kv = cat(norm1(x), norm2(latents))
 *   along tokens; latents = to_out(attention(q = to_q(norm2(latents)), k/v = to_kv(kv) split in
 *   halves, dim_head 64, no biases)) + residual; latents = FF(latents) + latents with FF = LayerNorm
 *   (`1.0`) -> Linear (`1.1`) -> erf GELU -> Linear (`1.3`), no biases; then proj_out -> norm_out.
 *   Heads = to_q rows / 64; the layer count is read from the file (diffusers hard-codes 4, which
 *   every published plus file has).
 */
import { GraphError } from "../../errors.js";
import type { Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import { gelu } from "../../nn/activations.js";
import { LayerNorm } from "../../nn/layer-norm.js";
import { Linear } from "../../nn/linear.js";
import { Module, moduleList } from "../../nn/module.js";
import type { WeightScope } from "../../nn/weights.js";

/** Sizes of the plain projection, read from the file. */
export interface ImageProjectionDims {
  /** CLIP image_embeds width D. */
  readonly embedDim: number;
  /** The UNet's cross_attention_dim C. */
  readonly crossAttentionDim: number;
  /** Image tokens per image (4 in every published file). */
  readonly tokens: number;
}

export class ImageProjection extends Module {
  readonly proj: Linear;
  readonly norm: LayerNorm;

  constructor(
    w: WeightScope,
    readonly dims: ImageProjectionDims,
  ) {
    super(w);
    const { embedDim, crossAttentionDim, tokens } = dims;
    this.proj = new Linear(w.at("proj"), { inFeatures: embedDim, outFeatures: tokens * crossAttentionDim });
    this.norm = new LayerNorm(w.at("norm"), { normalizedShape: crossAttentionDim, eps: 1e-5 });
  }

  /** image_embeds [B, D] -> tokens [B, tokens, C]. */
  forward(x: Value): Value {
    const { tokens, crossAttentionDim } = this.dims;
    return this.scoped(() =>
      this.norm.forward(op.Reshape(this.graph, this.proj.forward(x), [0, tokens, crossAttentionDim])),
    );
  }
}

/** Sizes of the Resampler, read from the file. */
export interface ResamplerDims {
  /** Width E of the CLIP hidden states (hidden_states[-2]). */
  readonly embedDim: number;
  /** Width W of the latents. */
  readonly width: number;
  /** Learned latents = image tokens T. */
  readonly tokens: number;
  readonly crossAttentionDim: number;
  readonly depth: number;
  readonly heads: number;
  /** Inner width of each feed-forward. */
  readonly ffInner: number;
}

const DIM_HEAD = 64;

/** The attention of one Resampler layer (`layers.i.0`): norm1, norm2, to_q, to_kv, to_out. */
export class PerceiverAttention extends Module {
  readonly norm1: LayerNorm;
  readonly norm2: LayerNorm;
  readonly to_q: Linear;
  readonly to_kv: Linear;
  readonly to_out: Linear;

  constructor(
    w: WeightScope,
    readonly dims: ResamplerDims,
  ) {
    super(w);
    const { width, heads } = dims;
    const inner = heads * DIM_HEAD;
    const norm = { normalizedShape: width, eps: 1e-5 };
    this.norm1 = new LayerNorm(w.at("norm1"), norm);
    this.norm2 = new LayerNorm(w.at("norm2"), norm);
    this.to_q = new Linear(w.at("to_q"), { inFeatures: width, outFeatures: inner, bias: false });
    this.to_kv = new Linear(w.at("to_kv"), { inFeatures: width, outFeatures: 2 * inner, bias: false });
    this.to_out = new Linear(w.at("to_out"), { inFeatures: inner, outFeatures: width, bias: false });
  }

  /** x [B, S, W] image features, latents [B, T, W] -> latents + attention [B, T, W]. */
  forward(x: Value, latents: Value): Value {
    const g = this.graph;
    return this.scoped(() => {
      const normed = this.norm2.forward(latents);
      const context = op.Concat(g, [this.norm1.forward(x), normed], 1);
      const [k, v] = op.Split(g, this.to_kv.forward(context), -1, { count: 2 });
      if (k === undefined || v === undefined)
        throw new GraphError("PerceiverAttention", "internal: to_kv split");
      const out = op.multiHeadAttention(g, this.to_q.forward(normed), k, v, {
        numHeads: this.dims.heads,
        scale: DIM_HEAD ** -0.5,
        implementation: this.w.options.attention ?? "mha",
      });
      return op.Add(g, this.to_out.forward(out), latents);
    });
  }
}

/** The feed-forward of one Resampler layer (`layers.i.1`): LayerNorm `0`, Linear `1`, GELU, Linear `3`. */
export class PerceiverFeedForward extends Module {
  readonly net: readonly [LayerNorm, Linear, Linear];

  constructor(w: WeightScope, dims: ResamplerDims) {
    super(w);
    this.net = [
      new LayerNorm(w.at(0), { normalizedShape: dims.width, eps: 1e-5 }),
      new Linear(w.at(1), { inFeatures: dims.width, outFeatures: dims.ffInner, bias: false }),
      new Linear(w.at(3), { inFeatures: dims.ffInner, outFeatures: dims.width, bias: false }),
    ];
  }

  /** latents -> FF(latents) + latents. */
  forward(latents: Value): Value {
    const g = this.graph;
    return this.scoped(() => {
      const [norm, fc1, fc2] = this.net;
      return op.Add(g, fc2.forward(gelu(g, fc1.forward(norm.forward(latents)))), latents);
    });
  }
}

export class Resampler extends Module {
  readonly latents: Value;
  readonly proj_in: Linear;
  readonly layers: readonly (readonly [PerceiverAttention, PerceiverFeedForward])[];
  readonly proj_out: Linear;
  readonly norm_out: LayerNorm;

  constructor(
    w: WeightScope,
    readonly dims: ResamplerDims,
  ) {
    super(w);
    const d = dims;
    this.latents = w.param("latents", [1, d.tokens, d.width]);
    this.proj_in = new Linear(w.at("proj_in"), { inFeatures: d.embedDim, outFeatures: d.width });
    this.layers = moduleList(
      w.at("layers"),
      d.depth,
      (lw) => [new PerceiverAttention(lw.at(0), d), new PerceiverFeedForward(lw.at(1), d)] as const,
    );
    this.proj_out = new Linear(w.at("proj_out"), { inFeatures: d.width, outFeatures: d.crossAttentionDim });
    this.norm_out = new LayerNorm(w.at("norm_out"), { normalizedShape: d.crossAttentionDim, eps: 1e-5 });
  }

  /** CLIP hidden states [B, S, E] -> tokens [B, T, C]. */
  forward(hiddenStates: Value): Value {
    const g = this.graph;
    return this.scoped(() => {
      const batch = op.Shape(g, hiddenStates, { start: 0, end: 1 });
      let latents = op.Expand(
        g,
        this.latents,
        op.Concat(g, [batch, g.int64s([this.dims.tokens, this.dims.width])], 0),
      );
      const x = this.proj_in.forward(hiddenStates);
      for (const [attention, ff] of this.layers) latents = ff.forward(attention.forward(x, latents));
      return this.norm_out.forward(this.proj_out.forward(latents));
    });
  }
}
