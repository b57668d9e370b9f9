/**
 * Tune-A-Video's UNet3DConditionModel (showlab/Tune-A-Video `tuneavideo/models/unet.py`,
 * `unet_blocks.py`, `resnet.py`, `attention.py`; diffusers 0.11.1) as graph-building modules: the
 * UNet2DConditionModel's modules and keys, inflated through the UNet's hooks (../unet/layer-hook.ts):
 *
 * - every conv, Downsample/Upsample and the Transformer3DModel's GroupNorm run per frame on
 *   [B*F, C, H, W] (row = b*F + f); encoder hidden states and the timestep are repeated per frame;
 * - the ResNet GroupNorms (norm1, norm2) and conv_norm_out see the 5-D tensor: statistics over
 *   (C/G, F, H, W), all frames of a video together;
 * - attn1 is sparse-causal: queries of frame i, keys/values of [frame 0 ; frame max(i-1, 0)]
 *   (./sparse-causal.ts);
 * - every BasicTransformerBlock ends with the temporal attention (./temporal.ts).
 *
 * Input sample [B, C, F, H, W] with F fixed when the graph is built; output [B, out, F, H, W].
 */
import { GraphError } from "../../errors.js";
import type { GraphBuilder, Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import type { GroupNorm } from "../../nn/group-norm.js";
import type { WeightScope } from "../../nn/weights.js";
import type { UNet2DConditionModelConfig } from "../unet/config.js";
import type { LayerSite, UNetModuleHooks } from "../unet/layer-hook.js";
import { UNet2DConditionModel } from "../unet/unet-2d-condition.js";
import { fromVideo, reshapeParts, toVideo } from "./frames.js";
import { sparseCausalAttention } from "./sparse-causal.js";
import { TemporalAttention } from "./temporal.js";

export interface UNet3DForwardInputs {
  /** [B, in_channels, F, H, W] with F = the model's frames. */
  readonly sample: Value;
  /** [B], any numeric dtype (one timestep per video). */
  readonly timestep: Value;
  /** [B, L, cross_attention_dim] (one per video, repeated per frame inside). */
  readonly encoderHiddenStates: Value;
}

/**
 * Receives named intermediates while the graph is built: "conv_in", "down_blocks.0.resnets.0",
 * "down_blocks.0.attentions.0", "down_blocks.0", "mid_block", "up_blocks.i" in the video layout
 * [B, C, F, h, w], and "<block>.attn_temp.input|output" as [(B*h*w), F, C].
 */
export type UNet3DTap = (name: string, value: Value) => void;

/** The GroupNorm paths whose statistics span all frames (ResnetBlock3D norm1/norm2, conv_norm_out). */
const isFrameNorm = (path: string): boolean =>
  path === "conv_norm_out" || /\.resnets\.\d+\.norm[12]$/.test(path);

export class UNet3DConditionModel {
  /** The 2D UNet whose modules (and keys) the inflated model runs. */
  readonly unet: UNet2DConditionModel;
  /** The temporal attention of each BasicTransformerBlock, by the block's key prefix. */
  readonly temporal = new Map<string, TemporalAttention>();
  private tap: UNet3DTap = () => undefined;

  constructor(
    w: WeightScope,
    readonly config: UNet2DConditionModelConfig,
    /** Frames per video (F of the sample). */
    readonly frames: number,
    /** Names the config in errors (default "unet/config.json"). */
    file = "unet/config.json",
  ) {
    if (!Number.isInteger(frames) || frames < 1)
      throw new GraphError("UNet3DConditionModel", `frames must be a positive integer, got ${frames}`);
    const g = w.graph;
    const upcast = config.upcast_attention ?? false;
    const hooks: UNetModuleHooks = {
      groupNorm: (norm, x) => this.applyNorm(g, norm, x),
      transformerBlockTail: (blockScope, dims) => {
        const t = new TemporalAttention(blockScope, dims, frames, upcast, (name, v) => this.tap(name, v));
        this.temporal.set(blockScope.path, t);
        return (x) => t.forward(x);
      },
    };
    this.unet = new UNet2DConditionModel(
      w.withOptions({ keyValueTransform: sparseCausalAttention(frames) }),
      config,
      file,
      hooks,
    );
  }

  get graph(): GraphBuilder {
    return this.unet.graph;
  }

  private applyNorm(g: GraphBuilder, norm: GroupNorm, x: Value): Value {
    const transformerInput = /^(.*)\.attentions\.(\d+)\.norm$/.exec(norm.path);
    if (transformerInput)
      this.tap(`${transformerInput[1]}.resnets.${transformerInput[2]}`, toVideo(g, x, this.frames));
    if (!isFrameNorm(norm.path)) return norm.forward(x);
    return g.withScope(`${norm.path}.frames`, () => fromVideo(g, norm.forward(toVideo(g, x, this.frames))));
  }

  /** noise_pred [B, out_channels, F, H, W]; `tap` (optional) receives intermediates (see UNet3DTap). */
  forward(inputs: UNet3DForwardInputs, tap?: UNet3DTap): Value {
    const g = this.graph;
    const { sample, timestep, encoderHiddenStates: ehs } = inputs;
    const F = this.frames;
    if (sample.rank !== 5 || timestep.rank !== 1 || ehs.rank !== 3) {
      throw new GraphError(
        "UNet3DConditionModel",
        `expected sample [B, C, F, H, W], timestep [B] and encoder_hidden_states [B, L, D] but got ranks ${sample.rank}, ${timestep.rank} and ${ehs.rank}`,
      );
    }
    if (sample.shape[2] !== F) {
      throw new GraphError(
        "UNet3DConditionModel",
        `sample ${sample.name} has ${String(sample.shape[2])} frames but the model was built for ${F}`,
      );
    }
    const b = sample.shape[0];
    const bf = typeof b === "number" ? b * F : null;
    const [, l, width] = ehs.shape;
    this.tap = tap ?? (() => undefined);
    try {
      const perFrame = g.scope("per_frame", () => ({
        // [B] -> [B*F] (b-major): equals broadcasting the per-video embedding over frames.
        timestep: reshapeParts(g, op.Expand(g, op.Unsqueeze(g, timestep, [1]), [1, F]), [[-1]], [bf]),
        // [B, L, D] -> [B, F, L, D] -> [B*F, L, D] (einops repeat 'b n c -> (b f) n c').
        encoderHiddenStates: reshapeParts(
          g,
          op.Expand(g, op.Unsqueeze(g, ehs, [1]), [1, F, 1, 1]),
          [[-1], op.Shape(g, ehs, { start: 1 })],
          [bf, l ?? null, width ?? null],
        ),
        sample: fromVideo(g, sample),
      }));
      const video = (name: string, v: Value): void => this.tap(name, toVideo(g, v, F));
      const spec = this.unet.spec;
      const hasAttention = (site: LayerSite): boolean =>
        site.part === "mid_block" ||
        (site.part === "down_blocks"
          ? spec.down[site.block]?.type === "CrossAttnDownBlock2D"
          : spec.up[site.block]?.type === "CrossAttnUpBlock2D");
      const noise = this.unet.forward(
        {
          ...perFrame,
          afterLayer: (hidden, site) => {
            const block = site.part === "mid_block" ? "mid_block" : `${site.part}.${site.block}`;
            if (tap && hasAttention(site)) video(`${block}.attentions.${site.layer}`, hidden);
            return hidden;
          },
        },
        tap ? video : undefined,
      );
      return g.scope("per_video", () => toVideo(g, noise, F));
    } finally {
      this.tap = () => undefined;
    }
  }
}
