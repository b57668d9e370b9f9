/**
 * The AutoencoderKL-only blocks of diffusers 0.26.3 (models/unets/unet_2d_blocks.py): UNetMidBlock2D
 * (without time embedding), DownEncoderBlock2D and UpDecoderBlock2D. ResnetBlock2D (temb_channels
 * None), Downsample2D (padding 0: pad bottom/right by one, conv stride 2) and Upsample2D (nearest x2,
 * conv) are shared with the UNet (models/unet/). Field names are the checkpoint key segments. Every
 * GroupNorm here uses eps 1e-6, as diffusers' Encoder/Decoder pass it.
 */
import type { Value } from "../../graph/builder.js";
import { Attention } from "../../nn/attention.js";
import { Module, moduleList } from "../../nn/module.js";
import type { WeightScope } from "../../nn/weights.js";
import { ResnetBlock2D } from "../unet/resnet.js";
import { Downsample2D, Upsample2D } from "../unet/sampling.js";

/** Activations diffusers' `get_activation` knows (models/activations.py: ACTIVATION_FUNCTIONS). */
export const VAE_ACTIVATIONS = ["silu", "swish", "mish", "gelu", "relu"] as const;
export type VaeActivation = (typeof VAE_ACTIVATIONS)[number];

/** GroupNorm eps of every VAE norm (Encoder/Decoder pass resnet_eps=1e-6 and conv_norm_out eps=1e-6). */
export const VAE_NORM_EPS = 1e-6;

export interface VaeBlockOptions {
  readonly groups: number;
  readonly act: VaeActivation;
}

function resnet(
  w: WeightScope,
  inChannels: number,
  outChannels: number,
  options: VaeBlockOptions,
): ResnetBlock2D {
  return new ResnetBlock2D(w, {
    inChannels,
    outChannels,
    tembChannels: null,
    groups: options.groups,
    eps: VAE_NORM_EPS,
    actFn: options.act,
  });
}

/** `numLayers` resnets at `resnets.i`: the first takes inChannels, every one gives outChannels. */
function resnetStack(
  w: WeightScope,
  inChannels: number,
  outChannels: number,
  numLayers: number,
  options: VaeBlockOptions,
): ResnetBlock2D[] {
  return moduleList(w.at("resnets"), numLayers, (rw, i) =>
    resnet(rw, i === 0 ? inChannels : outChannels, outChannels, options),
  );
}

/** Runs the resnets (no time embedding), then the down- or upsampler. */
function runStack(
  x: Value,
  resnets: readonly ResnetBlock2D[],
  samplers: readonly { forward(x: Value): Value }[],
): Value {
  let h = x;
  for (const block of resnets) h = block.forward(h, null);
  for (const sampler of samplers) h = sampler.forward(h);
  return h;
}

/**
 * UNetMidBlock2D as the VAE builds it: resnet, then one attention (a single head over all channels,
 * GroupNorm, q/k/v/out with bias, residual, softmax upcast) and another resnet.
 */
export class UNetMidBlock2D extends Module {
  readonly resnets: readonly ResnetBlock2D[];
  readonly attentions: readonly Attention[];

  constructor(w: WeightScope, channels: number, options: VaeBlockOptions) {
    super(w);
    this.resnets = moduleList(w.at("resnets"), 2, (rw) => resnet(rw, channels, channels, options));
    this.attentions = moduleList(
      w.at("attentions"),
      1,
      (aw) =>
        new Attention(aw, {
          queryDim: channels,
          heads: 1,
          dimHead: channels,
          bias: true,
          normNumGroups: options.groups,
          eps: VAE_NORM_EPS,
          residualConnection: true,
          upcastSoftmax: true,
        }),
    );
  }

  forward(x: Value): Value {
    let h = this.resnets[0]?.forward(x, null) ?? x;
    this.attentions.forEach((attention, i) => {
      h = attention.forward(h);
      h = this.resnets[i + 1]?.forward(h, null) ?? h;
    });
    return h;
  }
}

/** DownEncoderBlock2D: `numLayers` resnets, then a Downsample2D (padding 0) unless it is the last block. */
export class DownEncoderBlock2D extends Module {
  readonly resnets: readonly ResnetBlock2D[];
  readonly downsamplers: readonly Downsample2D[];

  constructor(
    w: WeightScope,
    inChannels: number,
    outChannels: number,
    numLayers: number,
    addDownsample: boolean,
    options: VaeBlockOptions,
  ) {
    super(w);
    this.resnets = resnetStack(w, inChannels, outChannels, numLayers, options);
    this.downsamplers = addDownsample
      ? moduleList(
          w.at("downsamplers"),
          1,
          (dw) => new Downsample2D(dw, { channels: outChannels, padding: 0 }),
        )
      : [];
  }

  forward(x: Value): Value {
    return runStack(x, this.resnets, this.downsamplers);
  }
}

/** UpDecoderBlock2D: `numLayers` resnets (layers_per_block + 1), then an Upsample2D unless it is the last block. */
export class UpDecoderBlock2D extends Module {
  readonly resnets: readonly ResnetBlock2D[];
  readonly upsamplers: readonly Upsample2D[];

  constructor(
    w: WeightScope,
    inChannels: number,
    outChannels: number,
    numLayers: number,
    addUpsample: boolean,
    options: VaeBlockOptions,
  ) {
    super(w);
    this.resnets = resnetStack(w, inChannels, outChannels, numLayers, options);
    this.upsamplers = addUpsample
      ? moduleList(w.at("upsamplers"), 1, (uw) => new Upsample2D(uw, { channels: outChannels }))
      : [];
  }

  forward(x: Value): Value {
    return runStack(x, this.resnets, this.upsamplers);
  }
}
