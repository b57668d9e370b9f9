/**
 * A hook run after each layer of the UNet's blocks: after every resnet (+ transformer) pair of the
 * down and up blocks, and after every transformer of the mid block (before the next resnet). It is
 * where diffusers' UNetMotionModel inserts its motion modules (models/unets/unet_3d_blocks.py:
 * CrossAttnDownBlockMotion, DownBlockMotion, UNetMidBlockCrossAttnMotion, CrossAttnUpBlockMotion,
 * UpBlockMotion); a plain UNet2DConditionModel has none.
 */
import type { Value } from "../../graph/builder.js";

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
