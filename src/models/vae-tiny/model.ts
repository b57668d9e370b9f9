/**
 * The Tiny AutoEncoder for Stable Diffusion (TAESD, madebyollin/taesd) as diffusers 0.26.3 lays it
 * out (`AutoencoderTiny`, models/autoencoders/vae.py `EncoderTiny` / `DecoderTiny`,
 * models/unets/unet_2d_blocks.py `AutoencoderTinyBlock`): plain 3x3 convolutions and ReLUs in one
 * `layers` Sequential per half, so its keys are `encoder.layers.<i>.*` and `decoder.layers.<i>.*`.
 *
 * - block (`AutoencoderTinyBlock`): relu(conv.4(act(conv.2(act(conv.0(x))))) + skip(x)), skip a 1x1
 *   conv without bias when the channel count changes;
 * - decoder: x = tanh(x / 3) * 3; conv, act; per level its blocks, then (all but the last level)
 *   nearest upsampling and a conv without bias; the last conv has a bias and gives out_channels;
 *   the result in [0, 1] is mapped to [-1, 1] (x * 2 - 1);
 * - encoder: the image in [-1, 1] mapped to [0, 1]; per level a conv (stride 2 without bias after the
 *   first level) and its blocks; a last conv to latent_channels. Its output is the latent itself (no
 *   distribution): diffusers' img2img takes it as is, drawing no noise.
 *
 * Each conv's index in `layers` counts the parameter-free entries (activations, upsampling) too.
 */
import type { GraphBuilder, Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import { silu } from "../../nn/activations.js";
import { Conv2d } from "../../nn/conv.js";
import { Module } from "../../nn/module.js";
import { upsampleNearest } from "../../nn/upsample.js";
import type { WeightScope } from "../../nn/weights.js";
import { UnsupportedError } from "../../errors.js";
import type { AutoencoderTinyConfig } from "./config.js";

type Act = (g: GraphBuilder, x: Value) => Value;

/** diffusers get_activation for the names a tiny autoencoder config uses. */
export function tinyActivation(name: string, configFile: string): Act {
  if (name === "relu") return (g, x) => op.Relu(g, x);
  if (name === "silu" || name === "swish") return silu;
  throw new UnsupportedError(`act_fn "${name}" in ${configFile}`, {
    hint: 'TAESD uses "relu"; "silu" is supported too',
  });
}

const conv3 = (
  w: WeightScope,
  inChannels: number,
  outChannels: number,
  extra: { stride?: number; bias?: boolean } = {},
) => new Conv2d(w, { inChannels, outChannels, kernelSize: 3, padding: 1, ...extra });

/** diffusers AutoencoderTinyBlock. */
export class AutoencoderTinyBlock extends Module {
  readonly convs: readonly [Conv2d, Conv2d, Conv2d];
  readonly skip: Conv2d | null;

  constructor(
    w: WeightScope,
    inChannels: number,
    outChannels: number,
    private readonly act: Act,
  ) {
    super(w);
    const c = w.at("conv");
    this.convs = [
      conv3(c.at(0), inChannels, outChannels),
      conv3(c.at(2), outChannels, outChannels),
      conv3(c.at(4), outChannels, outChannels),
    ];
    this.skip =
      inChannels === outChannels
        ? null
        : new Conv2d(w.at("skip"), { inChannels, outChannels, kernelSize: 1, bias: false });
  }

  forward(x: Value): Value {
    return this.scoped(() => {
      const g = this.graph;
      const [a, b, c] = this.convs;
      const h = c.forward(this.act(g, b.forward(this.act(g, a.forward(x)))));
      return op.Relu(g, op.Add(g, h, this.skip ? this.skip.forward(x) : x));
    });
  }
}

/** One entry of a `layers` Sequential. */
type Layer = (x: Value) => Value;

function checkLevels(config: AutoencoderTinyConfig, configFile: string): void {
  for (const [blocks, channels, what] of [
    [config.num_encoder_blocks, config.encoder_block_out_channels, "encoder"],
    [config.num_decoder_blocks, config.decoder_block_out_channels, "decoder"],
  ] as const) {
    if (blocks.length === 0 || blocks.length !== channels.length)
      throw new UnsupportedError(
        `${what} levels in ${configFile}: num_${what}_blocks has ${blocks.length}, ${what}_block_out_channels ${channels.length}`,
        { hint: "give one block count and one channel count per level" },
      );
  }
  if (config.upsample_fn !== "nearest")
    throw new UnsupportedError(`upsample_fn "${config.upsample_fn}" in ${configFile}`, {
      hint: 'TAESD uses "nearest"',
    });
}

/** diffusers DecoderTiny (`decoder.layers.*`). */
export class DecoderTiny extends Module {
  private readonly layers: Layer[] = [];
  /** Upsampling factor from latents to pixels. */
  readonly scaleFactor: number;

  constructor(w: WeightScope, config: AutoencoderTinyConfig, configFile: string) {
    super(w);
    checkLevels(config, configFile);
    const act = tinyActivation(config.act_fn, configFile);
    const layers = w.at("layers");
    const ch = config.decoder_block_out_channels;
    const levels = config.num_decoder_blocks.length;
    let index = 0;
    const next = (): WeightScope => layers.at(index++);
    const g = w.graph;
    const first = conv3(next(), config.latent_channels, ch[0] ?? 0);
    this.layers.push((x) => first.forward(x));
    index++; // the activation
    this.layers.push((x) => act(g, x));
    for (let level = 0; level < levels; level++) {
      const last = level === levels - 1;
      const channels = ch[level] ?? 0;
      for (let b = 0; b < (config.num_decoder_blocks[level] ?? 0); b++) {
        const block = new AutoencoderTinyBlock(next(), channels, channels, act);
        this.layers.push((x) => block.forward(x));
      }
      if (!last) {
        index++; // nn.Upsample
        const factor = config.upsampling_scaling_factor;
        this.layers.push((x) => upsampleNearest(g, x, factor));
      }
      const conv = conv3(next(), channels, last ? config.out_channels : channels, { bias: last });
      this.layers.push((x) => conv.forward(x));
    }
    this.scaleFactor = config.upsampling_scaling_factor ** (levels - 1);
  }

  /** Latents [B, C, h, w] (the diffusion latents, scaling_factor 1) -> image [B, 3, H, W] in [-1, 1]. */
  forward(latents: Value): Value {
    return this.scoped(() => {
      const g = this.graph;
      let h = op.Mul(g, op.Tanh(g, op.Div(g, latents, 3)), 3);
      for (const layer of this.layers) h = layer(h);
      return op.Sub(g, op.Mul(g, h, 2), 1);
    });
  }
}

/** diffusers EncoderTiny (`encoder.layers.*`). */
export class EncoderTiny extends Module {
  private readonly layers: Layer[] = [];

  constructor(w: WeightScope, config: AutoencoderTinyConfig, configFile: string) {
    super(w);
    checkLevels(config, configFile);
    const act = tinyActivation(config.act_fn, configFile);
    const layers = w.at("layers");
    const ch = config.encoder_block_out_channels;
    let index = 0;
    const next = (): WeightScope => layers.at(index++);
    for (const [level, blocks] of config.num_encoder_blocks.entries()) {
      const channels = ch[level] ?? 0;
      const conv =
        level === 0
          ? conv3(next(), config.in_channels, channels)
          : conv3(next(), channels, channels, { stride: 2, bias: false });
      this.layers.push((x) => conv.forward(x));
      for (let b = 0; b < blocks; b++) {
        const block = new AutoencoderTinyBlock(next(), channels, channels, act);
        this.layers.push((x) => block.forward(x));
      }
    }
    const out = conv3(next(), ch[ch.length - 1] ?? 0, config.latent_channels);
    this.layers.push((x) => out.forward(x));
  }

  /** Image [B, 3, H, W] in [-1, 1] -> latents [B, C, H / f, W / f] (scaling_factor 1). */
  forward(image: Value): Value {
    return this.scoped(() => {
      const g = this.graph;
      let h = op.Div(g, op.Add(g, image, 1), 2);
      for (const layer of this.layers) h = layer(h);
      return h;
    });
  }
}
