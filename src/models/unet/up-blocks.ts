/**
 * The UNet up path, as diffusers 0.26.3 `models/unets/unet_2d_blocks.py`: CrossAttnUpBlock2D and
 * UpBlock2D. Each layer concatenates the newest remaining skip connection, cat([h, skip], dim=1),
 * then runs a resnet (and a transformer); upsamplers.0 ends every block but the last.
 */
import type { Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import { Module, moduleList } from "../../nn/module.js";
import type { WeightScope } from "../../nn/weights.js";
import type { BlockLayersSpec, SharedBlockSettings, UpBlockType } from "./block-config.js";
import { blockAttentions, blockResnetOptions } from "./block-layers.js";
import type { BlockLayerHook } from "./layer-hook.js";
import { ResnetBlock2D } from "./resnet.js";
import { Upsample2D } from "./sampling.js";
import type { Transformer2DModel } from "./transformer-2d.js";

/** `numLayers` is layers_per_block + 1 (one layer per skip connection the block consumes). */
export interface UpBlockSpec extends BlockLayersSpec {
  readonly type: UpBlockType;
  /** Channels of the skip connections coming from the matching down block. */
  readonly inChannels: number;
  /** Channels of the hidden states entering the block. */
  readonly prevOutputChannels: number;
  readonly addUpsample: boolean;
}

export interface UpBlock {
  /** How many skip connections the block consumes. */
  readonly numLayers: number;
  /**
   * `skips` in the order they were produced (the block pops from the end); `upsampleLike` gives the
   * spatial size of the upsampled output (the next block's newest skip); `afterLayer` (optional)
   * runs on each layer's output.
   */
  forward(
    x: Value,
    skips: readonly Value[],
    temb: Value,
    encoderHiddenStates: Value,
    upsampleLike?: Value,
    afterLayer?: BlockLayerHook,
  ): Value;
}

class UpBlockBase extends Module {
  readonly resnets: readonly ResnetBlock2D[];
  readonly upsamplers: readonly Upsample2D[];
  readonly numLayers: number;

  constructor(w: WeightScope, spec: UpBlockSpec, shared: SharedBlockSettings) {
    super(w);
    this.numLayers = spec.numLayers;
    this.resnets = moduleList(w.at("resnets"), spec.numLayers, (s, i) => {
      const skipChannels = i === spec.numLayers - 1 ? spec.inChannels : spec.outChannels;
      const resnetIn = i === 0 ? spec.prevOutputChannels : spec.outChannels;
      return new ResnetBlock2D(s, blockResnetOptions(shared, resnetIn + skipChannels, spec.outChannels));
    });
    this.upsamplers = spec.addUpsample
      ? moduleList(w.at("upsamplers"), 1, (s) => new Upsample2D(s, { channels: spec.outChannels }))
      : [];
  }

  protected run(
    x: Value,
    skips: readonly Value[],
    temb: Value,
    layer: (h: Value, i: number) => Value,
    upsampleLike?: Value,
    afterLayer?: BlockLayerHook,
  ): Value {
    let h = x;
    this.resnets.forEach((resnet, i) => {
      const skip = skips[skips.length - 1 - i];
      if (skip) h = op.Concat(this.graph, [h, skip], 1);
      h = layer(resnet.forward(h, temb), i);
      if (afterLayer) h = afterLayer(h, i);
    });
    for (const up of this.upsamplers) h = up.forward(h, upsampleLike);
    return h;
  }
}

export class UpBlock2D extends UpBlockBase implements UpBlock {
  forward(
    x: Value,
    skips: readonly Value[],
    temb: Value,
    _encoderHiddenStates: Value,
    upsampleLike?: Value,
    afterLayer?: BlockLayerHook,
  ): Value {
    return this.run(x, skips, temb, (h) => h, upsampleLike, afterLayer);
  }
}

export class CrossAttnUpBlock2D extends UpBlockBase implements UpBlock {
  readonly attentions: readonly Transformer2DModel[];

  constructor(w: WeightScope, spec: UpBlockSpec, shared: SharedBlockSettings) {
    super(w, spec, shared);
    this.attentions = blockAttentions(w, spec.numLayers, spec.outChannels, spec, shared);
  }

  forward(
    x: Value,
    skips: readonly Value[],
    temb: Value,
    encoderHiddenStates: Value,
    upsampleLike?: Value,
    afterLayer?: BlockLayerHook,
  ): Value {
    return this.run(
      x,
      skips,
      temb,
      (h, i) => this.attentions[i]?.forward(h, encoderHiddenStates) ?? h,
      upsampleLike,
      afterLayer,
    );
  }
}

/** The block class named by up_block_types. */
export function makeUpBlock(w: WeightScope, spec: UpBlockSpec, shared: SharedBlockSettings): UpBlock {
  return spec.type === "CrossAttnUpBlock2D"
    ? new CrossAttnUpBlock2D(w, spec, shared)
    : new UpBlock2D(w, spec, shared);
}
