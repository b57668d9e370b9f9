/**
 * MotionAdapter as graph-building modules: the AnimateDiff motion modules (TransformerTemporalModel)
 * under diffusers' key layout `down_blocks.{i}.motion_modules.{j}`, `mid_block.motion_modules.0`,
 * `up_blocks.{i}.motion_modules.{j}` (diffusers 0.26.3 MotionAdapter / UNetMotionModel share it).
 * `afterLayer(frames)` is the UNet hook that runs each module after its resnet/attention layer.
 */
import { GraphError } from "../../errors.js";
import type { Value } from "../../graph/builder.js";
import { Module, moduleList } from "../../nn/module.js";
import type { WeightScope } from "../../nn/weights.js";
import type { AfterLayerHook } from "../unet/layer-hook.js";
import { type MotionAdapterConfig, motionModuleSites } from "./config.js";
import { TransformerTemporalModel } from "./transformer-temporal.js";

/** diffusers MotionModules: a list of TransformerTemporalModel under `motion_modules`. */
export class MotionModules extends Module {
  readonly motion_modules: readonly TransformerTemporalModel[];

  constructor(
    w: WeightScope,
    options: {
      layers: number;
      channels: number;
      numHeads: number;
      normNumGroups: number;
      maxSeqLength: number;
    },
  ) {
    super(w);
    this.motion_modules = moduleList(
      w.at("motion_modules"),
      options.layers,
      (s) =>
        new TransformerTemporalModel(s, {
          inChannels: options.channels,
          numHeads: options.numHeads,
          normNumGroups: options.normNumGroups,
          maxSeqLength: options.maxSeqLength,
        }),
    );
  }
}

export interface MotionAdapterOptions {
  /**
   * GroupNorm groups of every module (default motion_norm_num_groups). UNetMotionModel passes the
   * UNet's norm_num_groups: diffusers builds its motion modules with `norm_num_groups=resnet_groups`.
   */
  readonly normNumGroups?: number;
  /**
   * (optional) groups of the modules of up block `block`, in place of normNumGroups: diffusers
   * 0.26.3's UpBlockMotion (an up block without cross-attention) builds its modules with its
   * `temporal_norm_num_groups`, which get_up_block leaves at 32.
   */
  readonly upBlockNormNumGroups?: (block: number) => number | undefined;
}

export class MotionAdapter extends Module {
  readonly down_blocks: readonly MotionModules[];
  readonly mid_block: MotionModules | null;
  readonly up_blocks: readonly MotionModules[];

  constructor(
    w: WeightScope,
    readonly config: MotionAdapterConfig,
    options: MotionAdapterOptions = {},
  ) {
    super(w);
    const groups = options.normNumGroups ?? config.motion_norm_num_groups;
    const make = (
      scope: WeightScope,
      layers: number,
      channels: number,
      normNumGroups = groups,
    ): MotionModules =>
      new MotionModules(scope, {
        layers,
        channels,
        numHeads: config.motion_num_attention_heads,
        normNumGroups,
        maxSeqLength: config.motion_max_seq_length,
      });
    const channels = config.block_out_channels;
    const layers = config.motion_layers_per_block;
    this.down_blocks = channels.map((c, i) => make(w.at("down_blocks").at(i), layers, c));
    this.mid_block = config.use_motion_mid_block
      ? make(w.at("mid_block"), config.motion_mid_block_layers_per_block, channels[channels.length - 1] ?? 0)
      : null;
    this.up_blocks = [...channels]
      .reverse()
      .map((c, i) =>
        make(w.at("up_blocks").at(i), layers + 1, c, options.upBlockNormNumGroups?.(i) ?? groups),
      );
  }

  /** The number of motion modules (as `motionModuleSites(config)` lists them). */
  get size(): number {
    return motionModuleSites(this.config).length;
  }

  /**
   * The UNet hook running the motion module of each layer on [B*F, C, H, W] hidden states; `frames`
   * is F as an int64 [1] value. The mid block passes through when the adapter has no mid modules.
   */
  afterLayer(frames: Value): AfterLayerHook {
    return (hidden, site) => {
      if (site.part === "mid_block" && this.mid_block === null) return hidden;
      const owner = site.part === "mid_block" ? this.mid_block : this[site.part][site.block];
      const module = owner?.motion_modules[site.layer];
      if (!module) {
        throw new GraphError(
          "MotionAdapter",
          `internal: no motion module for ${site.part}.${site.block} layer ${site.layer}`,
          { hint: "the adapter config was not checked against the UNet config (see checkAdapterFitsUNet)" },
        );
      }
      return module.forward(hidden, frames);
    };
  }
}
