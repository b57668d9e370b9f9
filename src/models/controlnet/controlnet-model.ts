/**
 * ControlNetModel as a graph-building module, as diffusers 0.26.3 `models/controlnet.py`: the UNet's
 * encoder half (the same blocks as ../unet) plus the conditioning embedding added after conv_in, a
 * 1x1 conv per skip connection (controlnet_down_blocks) and controlnet_mid_block. Residuals are
 * multiplied by conditioning_scale (a graph value, so one session serves every scale); guess mode
 * scales them by logspace(-1, 0) as diffusers does; global_pool_conditions averages them spatially.
 */
import { UnsupportedError } from "../../errors.js";
import type { Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import { Conv2d } from "../../nn/conv.js";
import { Module, moduleList } from "../../nn/module.js";
import type { WeightScope } from "../../nn/weights.js";
import { type EncoderSpec, resolveEncoder } from "../unet/block-config.js";
import { type ClassEmbedding, addClassEmbedding, classEmbedding } from "../unet/class-embedding.js";
import { type DownBlock, makeDownBlock, runDownBlocks } from "../unet/down-blocks.js";
import type { TimestepEmbedding, Timesteps } from "../unet/embeddings.js";
import { UNetMidBlock2DCrossAttn } from "../unet/mid-block.js";
import type { Tap } from "../unet/unet-2d-condition.js";
import { embedTimestep, timeConditioning } from "../unet/time-conditioning.js";
import { skipShapes } from "../unet/unet-spec.js";
import type { ControlNetModelConfig } from "./config.js";
import { ControlNetConditioningEmbedding } from "./conditioning-embedding.js";
import type { ControlNetLoadOptions, ControlNetModelRunner, ControlNetSource } from "./runner.js";

export interface ControlNetForwardInputs {
  readonly sample: Value;
  /** [B], any numeric dtype. */
  readonly timestep: Value;
  readonly encoderHiddenStates: Value;
  /** [B, conditioning_channels, H * f, W * f], in [0, 1]. */
  readonly controlnetCond: Value;
  /** Scalar (rank 0) or broadcastable factor for every residual. */
  readonly conditioningScale: Value;
  /** diffusers class_labels, for a config with class embeddings (see unet/class-embedding.ts). */
  readonly classLabels?: Value;
}

export interface ControlNetResiduals {
  readonly downBlockResSamples: readonly Value[];
  readonly midBlockResSample: Value;
}

/**
 * torch.logspace(-1, 0, steps) in float32 as torch 1.13 computes it (float step, the second half
 * counted back from the end, pow in double).
 */
export function guessModeScales(steps: number): number[] {
  const step = steps > 1 ? Math.fround(1 / Math.fround(steps - 1)) : 0;
  const halfway = Math.floor(steps / 2);
  return Array.from({ length: steps }, (_, i) => {
    const exponent =
      i < halfway
        ? Math.fround(-1 + Math.fround(step * i))
        : Math.fround(0 - Math.fround(step * (steps - i - 1)));
    return Math.fround(10 ** exponent);
  });
}

export class ControlNetModel extends Module {
  readonly spec: EncoderSpec;
  readonly time_proj: Timesteps;
  readonly time_embedding: TimestepEmbedding;
  /** The class embedding of the config (class_embed_type / num_class_embeds), or null. */
  readonly class_embedding: ClassEmbedding | null;
  readonly conv_in: Conv2d;
  readonly controlnet_cond_embedding: ControlNetConditioningEmbedding;
  readonly down_blocks: readonly DownBlock[];
  readonly controlnet_down_blocks: readonly Conv2d[];
  readonly mid_block: UNetMidBlock2DCrossAttn;
  readonly controlnet_mid_block: Conv2d;

  /** Builds and opens a ControlNet as an ONNX Runtime session (see runner.ts). */
  static async load(
    source: ControlNetSource,
    options: ControlNetLoadOptions = {},
  ): Promise<ControlNetModelRunner> {
    const { loadControlNetModel } = await import("./runner.js");
    return loadControlNetModel(source, options);
  }

  constructor(
    w: WeightScope,
    readonly config: ControlNetModelConfig,
    /** Names the config in errors (default "controlnet/config.json"). */
    file = "controlnet/config.json",
  ) {
    super(w);
    const c = config;
    if (c.mid_block_type !== "UNetMidBlock2DCrossAttn") {
      throw new UnsupportedError(
        `ControlNetModel config field mid_block_type = ${JSON.stringify(c.mid_block_type)}`,
        {
          hint: "only UNetMidBlock2DCrossAttn is implemented",
        },
      );
    }
    this.spec = resolveEncoder("ControlNetModel", file, c, undefined, true);
    const s = this.spec;
    const ch0 = c.block_out_channels[0] ?? 0;
    const time = timeConditioning(w, c, s.timeEmbedDim);
    this.time_proj = time.time_proj;
    this.time_embedding = time.time_embedding;
    this.class_embedding = classEmbedding(this.graph, w, c, file, s.timeEmbedDim, this.time_proj, ch0);
    this.conv_in = new Conv2d(w.at("conv_in"), {
      inChannels: c.in_channels,
      outChannels: ch0,
      kernelSize: 3,
      padding: 1,
    });
    this.controlnet_cond_embedding = new ControlNetConditioningEmbedding(w.at("controlnet_cond_embedding"), {
      conditioningEmbeddingChannels: ch0,
      conditioningChannels: c.conditioning_channels,
      blockOutChannels: c.conditioning_embedding_out_channels,
    });
    this.down_blocks = s.down.map((spec, i) => makeDownBlock(w.at("down_blocks").at(i), spec, s.shared));
    const skips = skipShapes(s);
    this.controlnet_down_blocks = moduleList(
      w.at("controlnet_down_blocks"),
      skips.length,
      (scope, i) =>
        new Conv2d(scope, {
          inChannels: skips[i]?.channels ?? 0,
          outChannels: skips[i]?.channels ?? 0,
          kernelSize: 1,
        }),
    );
    const mid = s.mid;
    if (mid === null) throw new UnsupportedError("ControlNetModel without a mid block");
    this.mid_block = new UNetMidBlock2DCrossAttn(w.at("mid_block"), mid, s.shared);
    this.controlnet_mid_block = new Conv2d(w.at("controlnet_mid_block"), {
      inChannels: mid.channels,
      outChannels: mid.channels,
      kernelSize: 1,
    });
  }

  /** The number of down block residuals (= the UNet's skip connections). */
  get numDownResiduals(): number {
    return this.controlnet_down_blocks.length;
  }

  /**
   * `guessMode`: diffusers guess_mode scaling. `broadcastPooled`: with global_pool_conditions, expand
   * each [B, C, 1, 1] mean back to its residual's size (what the UNet's addition does by broadcasting),
   * so a UNet whose residual inputs have the skip sizes takes them.
   */
  forward(
    inputs: ControlNetForwardInputs,
    options: { guessMode?: boolean; broadcastPooled?: boolean } = {},
    tap: Tap = () => undefined,
  ): ControlNetResiduals {
    const g = this.graph;
    const c = this.config;
    const ehs = inputs.encoderHiddenStates;
    let cond = inputs.controlnetCond;
    if (c.controlnet_conditioning_channel_order === "bgr") {
      const n = c.conditioning_channels;
      cond = op.Gather(
        g,
        cond,
        Array.from({ length: n }, (_, i) => n - 1 - i),
        1,
      ); // torch.flip(cond, dims=[1])
    }
    let emb = embedTimestep(g, this, inputs.timestep, inputs.sample.dtype, tap);
    emb = addClassEmbedding(g, "ControlNetModel", emb, this.class_embedding, inputs.classLabels);
    let h = this.conv_in.forward(inputs.sample);
    tap("conv_in", h);
    const condEmb = this.controlnet_cond_embedding.forward(cond);
    tap("controlnet_cond_embedding", condEmb);
    h = op.Add(g, h, condEmb);
    const down = runDownBlocks(this.down_blocks, h, emb, ehs, tap);
    h = this.mid_block.forward(down.hidden, emb, ehs);
    tap("mid_block", h);
    let downRes = down.skips.map((skip, i) => this.controlnet_down_blocks[i]?.forward(skip) ?? skip);
    let midRes = this.controlnet_mid_block.forward(h);
    const scale = op.Cast(g, inputs.conditioningScale, inputs.sample.dtype);
    if (options.guessMode === true && !c.global_pool_conditions) {
      const scales = guessModeScales(downRes.length + 1);
      const factor = (i: number): Value =>
        op.Mul(g, g.scalar(scales[i] ?? 1, "float32"), inputs.conditioningScale);
      downRes = downRes.map((r, i) => op.Mul(g, r, op.Cast(g, factor(i), r.dtype)));
      midRes = op.Mul(g, midRes, op.Cast(g, factor(downRes.length), midRes.dtype));
    } else {
      downRes = downRes.map((r) => op.Mul(g, r, scale));
      midRes = op.Mul(g, midRes, scale);
    }
    if (c.global_pool_conditions) {
      // torch.mean(sample, dim=(2, 3), keepdim=True)
      const pool = (r: Value): Value => {
        const mean = op.ReduceMean(g, r, [2, 3]);
        return options.broadcastPooled === true ? op.Expand(g, mean, op.Shape(g, r)) : mean;
      };
      downRes = downRes.map(pool);
      midRes = pool(midRes);
    }
    return { downBlockResSamples: downRes, midBlockResSample: midRes };
  }
}
