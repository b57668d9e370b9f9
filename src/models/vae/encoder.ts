/**
 * diffusers `Encoder` (models/autoencoders/vae.py, 0.26.3) as AutoencoderKL builds it: conv_in,
 * DownEncoderBlock2Ds (downsampling after every block but the last), UNetMidBlock2D, GroupNorm (eps
 * 1e-6), SiLU, conv_out to 2 * latent_channels (double_z: mean and logvar).
 */
import type { Value } from "../../graph/builder.js";
import { silu } from "../../nn/activations.js";
import { Conv2d } from "../../nn/conv.js";
import { GroupNorm } from "../../nn/group-norm.js";
import { Module, moduleList } from "../../nn/module.js";
import type { WeightScope } from "../../nn/weights.js";
import { DownEncoderBlock2D, UNetMidBlock2D, VAE_NORM_EPS, type VaeBlockOptions } from "./blocks.js";
import type { VaeSpec } from "./validate.js";

export class Encoder extends Module {
  readonly conv_in: Conv2d;
  readonly down_blocks: readonly DownEncoderBlock2D[];
  readonly mid_block: UNetMidBlock2D;
  readonly conv_norm_out: GroupNorm;
  readonly conv_out: Conv2d;

  constructor(w: WeightScope, spec: VaeSpec) {
    super(w);
    const c = spec.config;
    const channels = c.block_out_channels;
    const first = channels[0] ?? 0;
    const last = channels[channels.length - 1] ?? 0;
    const options: VaeBlockOptions = { groups: c.norm_num_groups, act: spec.act };
    this.conv_in = new Conv2d(w.at("conv_in"), {
      inChannels: c.in_channels,
      outChannels: first,
      kernelSize: 3,
      padding: 1,
    });
    this.down_blocks = moduleList(
      w.at("down_blocks"),
      channels.length,
      (bw, i) =>
        new DownEncoderBlock2D(
          bw,
          channels[i - 1] ?? first,
          channels[i] ?? 0,
          c.layers_per_block,
          i < channels.length - 1,
          options,
        ),
    );
    this.mid_block = new UNetMidBlock2D(w.at("mid_block"), last, options);
    this.conv_norm_out = new GroupNorm(w.at("conv_norm_out"), {
      numGroups: c.norm_num_groups,
      numChannels: last,
      eps: VAE_NORM_EPS,
    });
    this.conv_out = new Conv2d(w.at("conv_out"), {
      inChannels: last,
      outChannels: 2 * c.latent_channels,
      kernelSize: 3,
      padding: 1,
    });
  }

  /** image [B, in_channels, H, W] -> [B, 2 * latent_channels, H / f, W / f]. */
  forward(x: Value): Value {
    return this.scoped(() => {
      let h = this.conv_in.forward(x);
      for (const block of this.down_blocks) h = block.forward(h);
      h = this.mid_block.forward(h);
      // conv_act is nn.SiLU() whatever act_fn says (diffusers vae.py).
      h = silu(this.graph, this.conv_norm_out.forward(h));
      return this.conv_out.forward(h);
    });
  }
}
