/**
 * ResnetBlock2D, as diffusers 0.26.3 `models/resnet.py` with time_embedding_norm "default":
 * norm1 - act - conv1 - (+ time_emb_proj(act(temb))) - norm2 - act - conv2, plus the input (through
 * a 1x1 conv_shortcut when the channel count changes), divided by output_scale_factor.
 * With time_embedding_norm "scale_shift" (UNet config resnet_time_scale_shift) time_emb_proj gives
 * 2 * out channels, chunked into (scale, shift), and norm2's output becomes norm2(h) * (1 + scale) + shift.
 */
import { GraphError } from "../../errors.js";
import type { Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import { Conv2d } from "../../nn/conv.js";
import { GroupNorm } from "../../nn/group-norm.js";
import { Linear } from "../../nn/linear.js";
import { Module } from "../../nn/module.js";
import type { WeightScope } from "../../nn/weights.js";
import { diffusersActivation } from "./activation.js";

export interface ResnetBlock2DOptions {
  readonly inChannels: number;
  /** Default: inChannels. */
  readonly outChannels?: number;
  /** Width of the time embedding; null = no time_emb_proj. */
  readonly tembChannels: number | null;
  readonly groups: number;
  readonly eps: number;
  /** non_linearity (default "silu"). */
  readonly actFn?: string;
  /** Default 1. */
  readonly outputScaleFactor?: number;
  /** diffusers time_embedding_norm (default "default": temb added before norm2). */
  readonly timeEmbeddingNorm?: "default" | "scale_shift";
  /** (optional) applies norm1/norm2 instead of GroupNorm.forward (UNetModuleHooks.groupNorm). */
  readonly applyNorm?: (norm: GroupNorm, x: Value) => Value;
}

export class ResnetBlock2D extends Module {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly time_emb_proj: Linear | null;
  readonly norm2: GroupNorm;
  readonly conv2: Conv2d;
  readonly conv_shortcut: Conv2d | null;
  readonly outChannels: number;

  constructor(
    w: WeightScope,
    readonly options: ResnetBlock2DOptions,
  ) {
    super(w);
    const { inChannels, groups, eps } = options;
    const out = options.outChannels ?? inChannels;
    this.outChannels = out;
    this.norm1 = new GroupNorm(w.at("norm1"), { numGroups: groups, numChannels: inChannels, eps });
    this.conv1 = new Conv2d(w.at("conv1"), { inChannels, outChannels: out, kernelSize: 3, padding: 1 });
    this.time_emb_proj =
      options.tembChannels === null
        ? null
        : new Linear(w.at("time_emb_proj"), {
            inFeatures: options.tembChannels,
            outFeatures: options.timeEmbeddingNorm === "scale_shift" ? 2 * out : out,
          });
    this.norm2 = new GroupNorm(w.at("norm2"), { numGroups: groups, numChannels: out, eps });
    this.conv2 = new Conv2d(w.at("conv2"), { inChannels: out, outChannels: out, kernelSize: 3, padding: 1 });
    this.conv_shortcut =
      inChannels === out
        ? null
        : new Conv2d(w.at("conv_shortcut"), { inChannels, outChannels: out, kernelSize: 1 });
  }

  /** x [B, in, H, W], temb [B, tembChannels] -> [B, out, H, W]. */
  forward(x: Value, temb: Value | null): Value {
    const g = this.graph;
    const act = (v: Value): Value => diffusersActivation(g, v, this.options.actFn ?? "silu");
    const apply = this.options.applyNorm;
    const norm = (n: GroupNorm, v: Value): Value => (apply ? apply(n, v) : n.forward(v));
    return this.scoped(() => {
      let h = this.conv1.forward(act(norm(this.norm1, x)));
      const t =
        this.time_emb_proj && temb
          ? op.Unsqueeze(g, this.time_emb_proj.forward(act(temb)), [2, 3]) // [B, out or 2*out, 1, 1]
          : null;
      if (this.options.timeEmbeddingNorm === "scale_shift") {
        const [scale, shift] = t === null ? [] : op.Split(g, t, 1, [this.outChannels, this.outChannels]);
        if (scale === undefined || shift === undefined)
          throw new GraphError("ResnetBlock2D", 'time_embedding_norm "scale_shift" needs a time embedding');
        h = op.Add(g, op.Mul(g, norm(this.norm2, h), op.Add(g, scale, 1)), shift);
      } else {
        if (t !== null) h = op.Add(g, h, t);
        h = norm(this.norm2, h);
      }
      h = this.conv2.forward(act(h));
      const shortcut = this.conv_shortcut ? this.conv_shortcut.forward(x) : x;
      const sum = op.Add(g, shortcut, h);
      const scale = this.options.outputScaleFactor ?? 1;
      return scale === 1 ? sum : op.Div(g, sum, scale);
    });
  }
}
