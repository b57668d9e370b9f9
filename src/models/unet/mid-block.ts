/**
 * UNetMidBlock2DCrossAttn, as diffusers 0.26.3 `models/unets/unet_2d_blocks.py`:
 * resnets.0, then (attentions.i, resnets.i+1) pairs; resnets use output_scale_factor =
 * mid_block_scale_factor. Its Transformer2DModels never use only_cross_attention.
 */
import type { Value } from "../../graph/builder.js";
import { Module, moduleList } from "../../nn/module.js";
import type { WeightScope } from "../../nn/weights.js";
import type { MidBlockSpec, SharedBlockSettings } from "./block-config.js";
import { blockAttentions, blockResnetOptions } from "./block-layers.js";
import type { BlockLayerHook } from "./layer-hook.js";
import { ResnetBlock2D } from "./resnet.js";
import type { Transformer2DModel } from "./transformer-2d.js";

export class UNetMidBlock2DCrossAttn extends Module {
  readonly resnets: readonly ResnetBlock2D[];
  readonly attentions: readonly Transformer2DModel[];

  constructor(w: WeightScope, spec: MidBlockSpec, shared: SharedBlockSettings) {
    super(w);
    const layers = spec.transformerLayers.length;
    this.resnets = moduleList(
      w.at("resnets"),
      layers + 1,
      (s) =>
        new ResnetBlock2D(s, {
          ...blockResnetOptions(shared, spec.channels, spec.channels),
          outputScaleFactor: spec.outputScaleFactor,
        }),
    );
    this.attentions = blockAttentions(w, layers, spec.channels, spec, shared);
  }

  /** `afterLayer` (optional) runs after each transformer, before the next resnet. */
  forward(x: Value, temb: Value, encoderHiddenStates: Value, afterLayer?: BlockLayerHook): Value {
    const [first, ...rest] = this.resnets;
    let h = first ? first.forward(x, temb) : x;
    rest.forEach((resnet, i) => {
      const attention = this.attentions[i];
      if (attention) h = attention.forward(h, encoderHiddenStates);
      if (afterLayer) h = afterLayer(h, i);
      h = resnet.forward(h, temb);
    });
    return h;
  }
}
