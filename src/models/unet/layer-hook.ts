/**
 * A hook run after each layer of the UNet's blocks: after every resnet (+ transformer) pair of the
 * down and up blocks, and after every transformer of the mid block (before the next resnet). It is
 * where diffusers' UNetMotionModel inserts its motion modules (models/unets/unet_3d_blocks.py:
 * CrossAttnDownBlockMotion, DownBlockMotion, UNetMidBlockCrossAttnMotion, CrossAttnUpBlockMotion,
 * UpBlockMotion); a plain UNet2DConditionModel has none.
 */
import type { Value } from "../../graph/builder.js";
import type { GroupNorm } from "../../nn/group-norm.js";
import type { WeightScope } from "../../nn/weights.js";

/** Where a layer sits: `down_blocks.{block}` layer `layer`, `mid_block` (block 0) or `up_blocks.{block}`. */
export interface LayerSite {
  readonly part: "down_blocks" | "mid_block" | "up_blocks";
  readonly block: number;
  /** Index of the resnet/transformer pair in its block (in the mid block: of the transformer). */
  readonly layer: number;
}

/** Replaces a layer's output hidden states [B, C, H, W] (return them unchanged to leave a layer alone). */
export type AfterLayerHook = (hidden: Value, site: LayerSite) => Value;

/** The per-block form blocks receive: `layer` is the index inside the block. */
export type BlockLayerHook = (hidden: Value, layer: number) => Value;

/** The block hook of `part`/`block` for `hook` (undefined when there is no hook). */
export function blockHook(
  hook: AfterLayerHook | undefined,
  part: LayerSite["part"],
  block: number,
): BlockLayerHook | undefined {
  return hook === undefined ? undefined : (hidden, layer) => hook(hidden, { part, block, layer });
}

/** The sizes of a BasicTransformerBlock, given to `UNetModuleHooks.transformerBlockTail`. */
export interface TransformerBlockDims {
  readonly dim: number;
  readonly numHeads: number;
  readonly headDim: number;
}

/**
 * Changes to how the UNet's own layers compute, for video UNets built on it (Tune-A-Video's
 * UNet3DConditionModel, src/models/unet3d): both optional; a plain UNet2DConditionModel has none.
 */
export interface UNetModuleHooks {
  /**
   * Applies a GroupNorm of the UNet (ResNet norm1/norm2, the Transformer2DModel `norm`,
   * conv_norm_out; `norm.path` names it) to x, instead of `norm.forward(x)`.
   */
  readonly groupNorm?: (norm: GroupNorm, x: Value) => Value;
  /**
   * Builds extra layers of the BasicTransformerBlock bound at `w` (its key prefix), run on the
   * block's output after the feed-forward; undefined = none for this block.
   */
  readonly transformerBlockTail?: (
    w: WeightScope,
    dims: TransformerBlockDims,
  ) => ((x: Value) => Value) | undefined;
}
