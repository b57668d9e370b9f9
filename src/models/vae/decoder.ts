/**
 * diffusers `Decoder` (models/autoencoders/vae.py, 0.26.3) as AutoencoderKL builds it: conv_in from
 * latent_channels, UNetMidBlock2D, UpDecoderBlock2Ds over the reversed block_out_channels with
 * layers_per_block + 1 resnets each (upsampling after every block but the last), GroupNorm (eps 1e-6),
 * SiLU, conv_out.
 */
import type { Value } from "../../graph/builder.js";
import { silu } from "../../nn/activations.js";
import { Conv2d } from "../../nn/conv.js";
import { GroupNorm } from "../../nn/group-norm.js";
import { Module, moduleList } from "../../nn/module.js";
import type { WeightScope } from "../../nn/weights.js";
import { UNetMidBlock2D, UpDecoderBlock2D, VAE_NORM_EPS, type VaeBlockOptions } from "./blocks.js";
import type { VaeSpec } from "./validate.js";

export class Decoder extends Module {
  readonly conv_in: Conv2d;
  readonly mid_block: UNetMidBlock2D;
  readonly up_blocks: readonly UpDecoderBlock2D[];
  readonly conv_norm_out: GroupNorm;
  readonly conv_out: Conv2d;

  constructor(w: WeightScope, spec: VaeSpec) {
    super(w);
    const c = spec.config;
    const reversed = [...c.block_out_channels].reverse();
    const top = reversed[0] ?? 0;
    const first = c.block_out_channels[0] ?? 0;
    const options: VaeBlockOptions = { groups: c.norm_num_groups, act: spec.act };
    this.conv_in = new Conv2d(w.at("conv_in"), {
      inChannels: c.latent_channels,
      outChannels: top,
      kernelSize: 3,
      padding: 1,
    });
    this.mid_block = new UNetMidBlock2D(w.at("mid_block"), top, options);
    this.up_blocks = moduleList(
      w.at("up_blocks"),
      reversed.length,
      (bw, i) =>
        new UpDecoderBlock2D(
          bw,
          reversed[i - 1] ?? top,
          reversed[i] ?? 0,
          c.layers_per_block + 1,
          i < reversed.length - 1,
          options,
        ),
    );
    this.conv_norm_out = new GroupNorm(w.at("conv_norm_out"), {
      numGroups: c.norm_num_groups,
      numChannels: first,
      eps: VAE_NORM_EPS,
    });
    this.conv_out = new Conv2d(w.at("conv_out"), {
      inChannels: first,
      outChannels: c.out_channels,
      kernelSize: 3,
      padding: 1,
    });
  }

  /** z [B, latent_channels, h, w] (after post_quant_conv) -> [B, out_channels, h * f, w * f]. */
  forward(z: Value): Value {
    return this.scoped(() => {
      let h = this.conv_in.forward(z);
      h = this.mid_block.forward(h);
      for (const block of this.up_blocks) h = block.forward(h);
      h = silu(this.graph, this.conv_norm_out.forward(h));
      return this.conv_out.forward(h);
    });
  }
}
