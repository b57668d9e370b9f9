/**
 * Conv2d (torch.nn.Conv2d): weight [out, in / groups, kH, kW], optional bias [out]; symmetric
 * integer padding as in PyTorch.
 */
import { GraphError } from "../errors.js";
import type { Value } from "../graph/builder.js";
import * as op from "../graph/ops/index.js";
import { type ConvBranch, type ConvGeometry, addConvBranches, convBranches } from "./low-rank.js";
import { Module } from "./module.js";
import type { WeightScope } from "./weights.js";

export interface Conv2dOptions {
  readonly inChannels: number;
  readonly outChannels: number;
  /** Square kernel size or [kH, kW]. */
  readonly kernelSize: number | readonly [number, number];
  /** Default 1. */
  readonly stride?: number | readonly [number, number];
  /** Zero padding on each side (default 0). */
  readonly padding?: number | readonly [number, number];
  /** Default 1. */
  readonly dilation?: number | readonly [number, number];
  /** Default 1. */
  readonly groups?: number;
  /** Has a `bias` weight (default true). */
  readonly bias?: boolean;
}

const pair = (v: number | readonly [number, number]): [number, number] =>
  typeof v === "number" ? [v, v] : [v[0], v[1]];

export class Conv2d extends Module {
  readonly weight: Value;
  readonly bias: Value | null;
  /** Unfused LoRA branches with live scales (GraphBuildOptions.lowRank); usually none. */
  private readonly branches: readonly ConvBranch[];

  constructor(
    w: WeightScope,
    readonly options: Conv2dOptions,
  ) {
    super(w);
    const [kh, kw] = pair(options.kernelSize);
    const groups = options.groups ?? 1;
    if (
      !Number.isInteger(groups) ||
      groups < 1 ||
      options.inChannels % groups !== 0 ||
      options.outChannels % groups !== 0
    ) {
      throw new GraphError(
        "Conv2d",
        `${w.path}: in_channels ${options.inChannels} and out_channels ${options.outChannels} must divide by groups ${groups}`,
      );
    }
    this.weight = w.param("weight", [options.outChannels, options.inChannels / groups, kh, kw]);
    this.bias = options.bias === false ? null : w.param("bias", [options.outChannels]);
    this.branches = convBranches(w, options.inChannels, options.outChannels, [kh, kw]);
  }

  /** x [N, in, H, W] -> [N, out, H', W']. */
  forward(x: Value): Value {
    const [ph, pw] = pair(this.options.padding ?? 0);
    return this.convolve(x, {
      strides: pair(this.options.stride ?? 1),
      pads: [ph, pw, ph, pw],
      dilations: pair(this.options.dilation ?? 1),
    });
  }

  /**
   * The conv with explicit geometry (Downsample2D pads asymmetrically), plus the layer's unfused
   * LoRA branches when it has any.
   */
  convolve(x: Value, geometry: ConvGeometry): Value {
    return this.scoped(() => {
      const y = op.Conv(this.graph, x, this.weight, this.bias, {
        strides: [...geometry.strides],
        pads: [...geometry.pads],
        ...(geometry.dilations ? { dilations: [...geometry.dilations] } : {}),
        group: this.options.groups ?? 1,
      });
      return this.branches.length === 0 ? y : addConvBranches(this.graph, x, y, this.branches, geometry);
    });
  }
}
