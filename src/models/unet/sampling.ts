/**
 * Downsample2D and Upsample2D with use_conv=True, as diffusers 0.26.3 `models/downsampling.py` and
 * `models/upsampling.py`: keys `conv` (the blocks put them at `downsamplers.0` / `upsamplers.0`).
 */
import { type Value, attr } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import { Conv2d, type Conv2dOptions } from "../../nn/conv.js";
import { Module } from "../../nn/module.js";
import { upsampleNearest } from "../../nn/upsample.js";
import type { WeightScope } from "../../nn/weights.js";

export interface Upsample2DOptions {
  readonly channels: number;
  /** Default: channels. */
  readonly outChannels?: number;
}

export interface Downsample2DOptions extends Upsample2DOptions {
  /** downsample_padding (default 1); 0 pads only bottom/right by one, as diffusers does. */
  readonly padding?: number;
}

/** The sampler's 3x3 `conv`, channels -> outChannels (default channels). */
function samplerConv(
  w: WeightScope,
  options: Upsample2DOptions,
  layout: Pick<Conv2dOptions, "stride" | "padding">,
): Conv2d {
  return new Conv2d(w.at("conv"), {
    inChannels: options.channels,
    outChannels: options.outChannels ?? options.channels,
    kernelSize: 3,
    ...layout,
  });
}

/** 3x3 conv with stride 2. */
export class Downsample2D extends Module {
  readonly conv: Conv2d;
  constructor(
    w: WeightScope,
    readonly options: Downsample2DOptions,
  ) {
    super(w);
    this.conv = samplerConv(w, options, { stride: 2 });
  }

  forward(x: Value): Value {
    const p = this.options.padding ?? 1;
    // padding 0: diffusers F.pad(x, (0, 1, 0, 1)) then conv, i.e. conv pads [top 0, left 0, bottom 1, right 1].
    const pads = p === 0 ? [0, 0, 1, 1] : [p, p, p, p];
    return this.scoped(() => this.conv.convolve(x, { strides: [2, 2], pads }));
  }
}

/** Nearest-neighbour x2 (or to the skip connection's size), then a 3x3 conv. */
export class Upsample2D extends Module {
  readonly conv: Conv2d;
  constructor(
    w: WeightScope,
    readonly options: Upsample2DOptions,
  ) {
    super(w);
    this.conv = samplerConv(w, options, { padding: 1 });
  }

  /**
   * x [B, C, H, W] -> [B, out, 2H, 2W]; with `sizeLike`, the output takes that tensor's spatial
   * size instead (diffusers `upsample_size`: the next skip connection, for sizes not divisible by 2).
   */
  forward(x: Value, sizeLike?: Value): Value {
    const g = this.graph;
    return this.scoped(() => {
      let up: Value;
      if (sizeLike === undefined) up = upsampleNearest(g, x, 2);
      else {
        const sizes = op.Concat(
          g,
          [op.Shape(g, x, { start: 0, end: 2 }), op.Shape(g, sizeLike, { start: 2, end: 4 })],
          0,
        );
        up = g.node1(
          "Resize",
          [x, null, null, sizes],
          {
            mode: attr.string("nearest"),
            coordinate_transformation_mode: attr.string("asymmetric"),
            nearest_mode: attr.string("floor"),
          },
          {
            dtype: x.dtype,
            shape: [
              x.shape[0] ?? null,
              x.shape[1] ?? null,
              sizeLike.shape[2] ?? null,
              sizeLike.shape[3] ?? null,
            ],
          },
        );
      }
      return this.conv.forward(up);
    });
  }
}
