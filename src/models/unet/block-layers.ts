/**
 * The layers the UNet blocks (down, mid, up; diffusers 0.26.3 `models/unets/unet_2d_blocks.py`) all
 * build the same way: ResnetBlock2Ds with the model-wide settings, and the `attentions.i`
 * Transformer2DModels of the cross-attention blocks.
 */
import { moduleList } from "../../nn/module.js";
import type { WeightScope } from "../../nn/weights.js";
import type { BlockAttentionSpec, SharedBlockSettings } from "./block-config.js";
import type { ResnetBlock2DOptions } from "./resnet.js";
import { Transformer2DModel } from "./transformer-2d.js";

/** A block resnet's options: its channels, plus the model-wide temb width, groups, eps and activation. */
export function blockResnetOptions(
  shared: SharedBlockSettings,
  inChannels: number,
  outChannels: number,
): ResnetBlock2DOptions {
  return {
    inChannels,
    outChannels,
    tembChannels: shared.tembChannels,
    groups: shared.resnetGroups,
    eps: shared.resnetEps,
    actFn: shared.actFn,
    ...(shared.resnetTimeScaleShift ? { timeEmbeddingNorm: shared.resnetTimeScaleShift } : {}),
    ...(shared.hooks?.groupNorm ? { applyNorm: shared.hooks.groupNorm } : {}),
  };
}

/** `count` Transformer2DModels at `attentions.i` over `channels` channels (head dim = channels / numHeads). */
export function blockAttentions(
  w: WeightScope,
  count: number,
  channels: number,
  spec: BlockAttentionSpec,
  shared: SharedBlockSettings,
): Transformer2DModel[] {
  return moduleList(
    w.at("attentions"),
    count,
    (s, i) =>
      new Transformer2DModel(s, {
        numHeads: spec.numHeads,
        headDim: Math.floor(channels / spec.numHeads),
        inChannels: channels,
        numLayers: spec.transformerLayers[i] ?? 1,
        crossAttentionDim: spec.crossAttentionDim,
        normNumGroups: shared.resnetGroups,
        useLinearProjection: shared.useLinearProjection,
        ...(spec.onlyCrossAttention === undefined ? {} : { onlyCrossAttention: spec.onlyCrossAttention }),
        upcastAttention: shared.upcastAttention,
        ...(shared.hooks ? { hooks: shared.hooks } : {}),
      }),
  );
}
