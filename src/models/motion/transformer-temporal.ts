/**
 * TransformerTemporalModel as diffusers 0.26.3 builds it for AnimateDiff motion modules
 * (models/transformers/transformer_temporal.py, created by MotionModules / the *Motion blocks of
 * models/unets/unet_3d_blocks.py): attention over the frame axis at every pixel.
 *
 * hidden [B*F, C, H, W] -> [B, C, F, H, W] -> GroupNorm (eps 1e-6; statistics over C/G channels of
 * ALL frames and pixels, as diffusers normalizes the 5-D tensor) -> tokens [B*H*W, F, C] -> proj_in
 * -> BasicTransformerBlocks (attn1 and attn2 both self-attention over frames, double_self_attention;
 * sinusoidal `pos_embed` added to the normed tokens before each attention; GEGLU feed-forward) ->
 * proj_out -> back to [B*F, C, H, W] -> + residual.
 */
import type { Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import type { WeightScope } from "../../nn/weights.js";
import { TransformerLayers } from "../unet/transformer-2d.js";
import { concatShape } from "./shape-parts.js";

export interface TransformerTemporalModelOptions {
  readonly inChannels: number;
  /** motion_num_attention_heads; head dim = inChannels // heads. */
  readonly numHeads: number;
  readonly normNumGroups: number;
  /** motion_max_seq_length: positions of `pos_embed` (the most frames one call may have). */
  readonly maxSeqLength: number;
  /** Transformer blocks (default 1, as MotionModules builds them). */
  readonly numLayers?: number;
}

export class TransformerTemporalModel extends TransformerLayers {
  constructor(
    w: WeightScope,
    readonly options: TransformerTemporalModelOptions,
  ) {
    super(
      w,
      { ...options, headDim: Math.floor(options.inChannels / options.numHeads) },
      { crossAttentionDim: null, doubleSelfAttention: true, sinusoidalPositions: options.maxSeqLength },
    );
  }

  /** x [B*F, C, H, W], frames: int64 [1] (F, a runtime or constant value) -> [B*F, C, H, W]. */
  forward(x: Value, frames: Value): Value {
    const g = this.graph;
    const c = this.options.inChannels;
    return this.scoped(() => {
      const flat = op.Unsqueeze(g, op.Reshape(g, x, [0, 0, -1]), [0]); // [1, B*F, C, HW]
      const split = op.Reshape(g, flat, concatShape(g, [[-1], frames, [0, 0]])); // [B, F, C, HW]
      const normed = this.norm.forward(op.Transpose(g, split, [0, 2, 1, 3])); // [B, C, F, HW]
      const tokens = op.Transpose(g, normed, [0, 3, 2, 1]); // [B, HW, F, C]
      let h = op.Reshape(g, tokens, concatShape(g, [[-1], frames, [c]])); // [B*HW, F, C]
      h = this.proj_in.forward(h);
      for (const block of this.transformer_blocks) h = block.forward(h, null);
      h = this.proj_out.forward(h);
      const spatial = op.Shape(g, x, { start: 2 }); // [H, W]
      const grid = op.Reshape(g, h, concatShape(g, [[-1], spatial, frames, [c]])); // [B, H, W, F, C]
      const back = op.ReshapeLike(g, op.Transpose(g, grid, [0, 3, 4, 1, 2]), x); // [B*F, C, H, W]
      return op.Add(g, back, x);
    });
  }
}
