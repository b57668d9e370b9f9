/**
 * ControlNetConditioningEmbedding, as diffusers 0.26.3 `models/controlnet.py`: conv_in, then per
 * step a 3x3 conv and a stride-2 3x3 conv (blocks.0, blocks.1, ...), then conv_out, with SiLU
 * between. It maps the control image (in [0, 1]) down by 2 ** (len(block_out_channels) - 1) to
 * the UNet's first block width.
 */
import type { Value } from "../../graph/builder.js";
import { silu } from "../../nn/activations.js";
import { Conv2d } from "../../nn/conv.js";
import { Module } from "../../nn/module.js";
import type { WeightScope } from "../../nn/weights.js";

export interface ControlNetConditioningEmbeddingOptions {
  /** Output channels (the UNet's block_out_channels[0]). */
  readonly conditioningEmbeddingChannels: number;
  /** Image channels (default 3). */
  readonly conditioningChannels?: number;
  /** conditioning_embedding_out_channels (default [16, 32, 96, 256]). */
  readonly blockOutChannels?: readonly number[];
}

export class ControlNetConditioningEmbedding extends Module {
  readonly conv_in: Conv2d;
  readonly blocks: readonly Conv2d[];
  readonly conv_out: Conv2d;

  constructor(
    w: WeightScope,
    readonly options: ControlNetConditioningEmbeddingOptions,
  ) {
    super(w);
    const channels = options.blockOutChannels ?? [16, 32, 96, 256];
    const first = channels[0] ?? 16;
    const last = channels[channels.length - 1] ?? first;
    this.conv_in = new Conv2d(w.at("conv_in"), {
      inChannels: options.conditioningChannels ?? 3,
      outChannels: first,
      kernelSize: 3,
      padding: 1,
    });
    const blocks: Conv2d[] = [];
    for (let i = 0; i + 1 < channels.length; i++) {
      const cin = channels[i] ?? 0;
      const cout = channels[i + 1] ?? 0;
      blocks.push(
        new Conv2d(w.at("blocks").at(blocks.length), {
          inChannels: cin,
          outChannels: cin,
          kernelSize: 3,
          padding: 1,
        }),
      );
      blocks.push(
        new Conv2d(w.at("blocks").at(blocks.length), {
          inChannels: cin,
          outChannels: cout,
          kernelSize: 3,
          padding: 1,
          stride: 2,
        }),
      );
    }
    this.blocks = blocks;
    this.conv_out = new Conv2d(w.at("conv_out"), {
      inChannels: last,
      outChannels: options.conditioningEmbeddingChannels,
      kernelSize: 3,
      padding: 1,
    });
  }

  /** [B, conditioningChannels, H, W] -> [B, conditioningEmbeddingChannels, H / f, W / f]. */
  forward(cond: Value): Value {
    const g = this.graph;
    return this.scoped(() => {
      let h = silu(g, this.conv_in.forward(cond));
      for (const block of this.blocks) h = silu(g, block.forward(h));
      return this.conv_out.forward(h);
    });
  }
}
