/**
 * Transformer2DModel for continuous (image) inputs with its BasicTransformerBlocks, as diffusers
 * 0.26.3 `models/transformers/transformer_2d.py` and `models/attention.py` (norm_type "layer_norm",
 * activation "geglu"): GroupNorm (eps 1e-6) - proj_in - blocks - proj_out - + residual. The blocks
 * also take the options the motion modules use (double_self_attention, sinusoidal positions).
 *
 * proj_in/proj_out are 1x1 convs (use_linear_projection false, SD1) or Linears (SD2). On
 * [B, HW, C] tokens both are the same matrix product, so the graph always applies them as MatMul
 * on tokens (one transpose in, one out); a 1x1 conv checkpoint weight [C', C, 1, 1] binds as [C', C].
 */
import type { Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import { GEGLU } from "../../nn/activations.js";
import { Attention } from "../../nn/attention.js";
import { GroupNorm } from "../../nn/group-norm.js";
import { LayerNorm } from "../../nn/layer-norm.js";
import { Linear } from "../../nn/linear.js";
import { Module, moduleList } from "../../nn/module.js";
import type { WeightScope } from "../../nn/weights.js";
import { SinusoidalPositionalEmbedding } from "./embeddings.js";
import type { UNetModuleHooks } from "./layer-hook.js";

/** diffusers FeedForward with GEGLU: keys net.0.proj (GEGLU) and net.2 (Linear); inner = 4 * dim. */
export class FeedForward extends Module {
  readonly net: readonly [GEGLU, Linear];
  constructor(w: WeightScope, dim: number, mult = 4) {
    super(w);
    const inner = dim * mult;
    this.net = [
      new GEGLU(w.at("net").at(0), { dimIn: dim, dimOut: inner }),
      new Linear(w.at("net").at(2), { inFeatures: inner, outFeatures: dim }),
    ];
  }
  forward(x: Value): Value {
    return this.scoped(() => this.net[1].forward(this.net[0].forward(x)));
  }
}

export interface BasicTransformerBlockOptions {
  readonly dim: number;
  readonly numHeads: number;
  readonly headDim: number;
  /** Width of the encoder hidden states; null = no attn2 (self-attention only). */
  readonly crossAttentionDim: number | null;
  /** attn1 attends to the encoder hidden states too (diffusers only_cross_attention). */
  readonly onlyCrossAttention?: boolean;
  readonly upcastAttention?: boolean;
  /** attn2 is a second self-attention (diffusers double_self_attention; default false). */
  readonly doubleSelfAttention?: boolean;
  /**
   * Adds `pos_embed` with this many positions, added to the normed hidden states before attn1 and
   * attn2 (diffusers positional_embeddings "sinusoidal" + num_positional_embeddings; default none).
   */
  readonly sinusoidalPositions?: number;
  /** (optional) video UNet hooks: `transformerBlockTail` adds layers after the feed-forward. */
  readonly hooks?: UNetModuleHooks;
}

export class BasicTransformerBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attn1: Attention;
  readonly norm2: LayerNorm | null;
  readonly attn2: Attention | null;
  readonly norm3: LayerNorm;
  readonly ff: FeedForward;
  readonly pos_embed: SinusoidalPositionalEmbedding | null;
  /** Layers a video UNet adds after the feed-forward (UNetModuleHooks.transformerBlockTail). */
  readonly tail: ((x: Value) => Value) | null;

  constructor(
    w: WeightScope,
    readonly options: BasicTransformerBlockOptions,
  ) {
    super(w);
    const { dim, numHeads, headDim, crossAttentionDim } = options;
    const upcastAttention = options.upcastAttention ?? false;
    const onlyCross = options.onlyCrossAttention === true && crossAttentionDim !== null;
    const attention = (scope: WeightScope, kvDim: number | null): Attention =>
      new Attention(scope, {
        queryDim: dim,
        heads: numHeads,
        dimHead: headDim,
        upcastAttention,
        ...(kvDim === null ? {} : { crossAttentionDim: kvDim }),
      });
    const double = options.doubleSelfAttention === true;
    const hasAttn2 = crossAttentionDim !== null || double;
    this.norm1 = new LayerNorm(w.at("norm1"), { normalizedShape: dim, eps: 1e-5 });
    this.attn1 = attention(w.at("attn1"), onlyCross ? crossAttentionDim : null);
    this.norm2 = hasAttn2 ? new LayerNorm(w.at("norm2"), { normalizedShape: dim, eps: 1e-5 }) : null;
    this.attn2 = hasAttn2 ? attention(w.at("attn2"), double ? null : crossAttentionDim) : null;
    this.norm3 = new LayerNorm(w.at("norm3"), { normalizedShape: dim, eps: 1e-5 });
    this.ff = new FeedForward(w.at("ff"), dim);
    const positions = options.sinusoidalPositions;
    this.pos_embed =
      positions === undefined
        ? null
        : new SinusoidalPositionalEmbedding(w.at("pos_embed"), { embedDim: dim, maxSeqLength: positions });
    this.tail = options.hooks?.transformerBlockTail?.(w, { dim, numHeads, headDim }) ?? null;
  }

  /** x [B, S, dim], context [B, L, crossAttentionDim] -> [B, S, dim]. */
  forward(x: Value, encoderHiddenStates: Value | null): Value {
    const g = this.graph;
    const context = encoderHiddenStates === null ? {} : { encoderHiddenStates };
    return this.scoped(() => {
      const selfContext = this.options.onlyCrossAttention === true ? context : {};
      const positioned = (v: Value): Value => (this.pos_embed ? this.pos_embed.forward(v) : v);
      let h = op.Add(g, this.attn1.forward(positioned(this.norm1.forward(x)), selfContext), x);
      if (this.attn2 && this.norm2)
        h = op.Add(g, this.attn2.forward(positioned(this.norm2.forward(h)), context), h);
      h = op.Add(g, this.ff.forward(this.norm3.forward(h)), h);
      return this.tail ? this.tail(h) : h;
    });
  }
}

export interface TransformerLayersOptions {
  readonly inChannels: number;
  readonly numHeads: number;
  readonly headDim: number;
  readonly normNumGroups: number;
  /** Number of BasicTransformerBlocks (default 1). */
  readonly numLayers?: number;
  /** proj_in/proj_out may bind 1x1 conv weights (see Linear; default: Linear's). */
  readonly allowReshape?: boolean;
  /** (optional) video UNet hooks (`groupNorm` applies `norm`; the blocks get them too). */
  readonly hooks?: UNetModuleHooks;
}

/**
 * The layers Transformer2DModel and TransformerTemporalModel share, by their checkpoint keys: norm
 * (GroupNorm, eps 1e-6), proj_in (inChannels -> numHeads * headDim), transformer_blocks (`block` is
 * added to each block's dim/numHeads/headDim) and proj_out back to inChannels.
 */
export abstract class TransformerLayers extends Module {
  readonly norm: GroupNorm;
  readonly proj_in: Linear;
  readonly transformer_blocks: readonly BasicTransformerBlock[];
  readonly proj_out: Linear;
  protected readonly hooks: UNetModuleHooks | undefined;

  constructor(
    w: WeightScope,
    layers: TransformerLayersOptions,
    block: Omit<BasicTransformerBlockOptions, "dim" | "numHeads" | "headDim">,
  ) {
    super(w);
    const { inChannels, numHeads, headDim } = layers;
    const inner = numHeads * headDim;
    const reshape = layers.allowReshape === undefined ? {} : { allowReshape: layers.allowReshape };
    this.hooks = layers.hooks;
    this.norm = new GroupNorm(w.at("norm"), {
      numGroups: layers.normNumGroups,
      numChannels: inChannels,
      eps: 1e-6,
    });
    this.proj_in = new Linear(w.at("proj_in"), { inFeatures: inChannels, outFeatures: inner, ...reshape });
    this.transformer_blocks = moduleList(
      w.at("transformer_blocks"),
      layers.numLayers ?? 1,
      (s) =>
        new BasicTransformerBlock(s, {
          dim: inner,
          numHeads,
          headDim,
          ...block,
          ...(layers.hooks ? { hooks: layers.hooks } : {}),
        }),
    );
    this.proj_out = new Linear(w.at("proj_out"), { inFeatures: inner, outFeatures: inChannels, ...reshape });
  }
}

export interface Transformer2DModelOptions {
  readonly numHeads: number;
  readonly headDim: number;
  readonly inChannels: number;
  /** Number of BasicTransformerBlocks (default 1). */
  readonly numLayers?: number;
  readonly crossAttentionDim: number | null;
  readonly normNumGroups: number;
  readonly useLinearProjection: boolean;
  readonly onlyCrossAttention?: boolean;
  readonly upcastAttention?: boolean;
  /** (optional) video UNet hooks (see layer-hook.ts). */
  readonly hooks?: UNetModuleHooks;
}

export class Transformer2DModel extends TransformerLayers {
  constructor(
    w: WeightScope,
    readonly options: Transformer2DModelOptions,
  ) {
    super(
      w,
      { ...options, allowReshape: !options.useLinearProjection },
      {
        crossAttentionDim: options.crossAttentionDim,
        onlyCrossAttention: options.onlyCrossAttention ?? false,
        upcastAttention: options.upcastAttention ?? false,
      },
    );
  }

  /** x [B, C, H, W], context [B, L, D] -> [B, C, H, W]. */
  forward(x: Value, encoderHiddenStates: Value | null): Value {
    const g = this.graph;
    return this.scoped(() => {
      const normed = this.hooks?.groupNorm ? this.hooks.groupNorm(this.norm, x) : this.norm.forward(x);
      let h = op.Transpose(g, op.Reshape(g, normed, [0, 0, -1]), [0, 2, 1]); // [B, HW, C]
      h = this.proj_in.forward(h);
      for (const block of this.transformer_blocks) h = block.forward(h, encoderHiddenStates);
      h = this.proj_out.forward(h);
      const back = op.ReshapeLike(g, op.Transpose(g, h, [0, 2, 1]), x); // [B, C, H, W]
      return op.Add(g, back, x);
    });
  }
}
