/**
 * UNet2DConditionModel as a graph-building module, as diffusers 0.26.3
 * `models/unets/unet_2d_condition.py`: time_proj/time_embedding, conv_in, down_blocks, mid_block,
 * up_blocks, conv_norm_out + act + conv_out; optional ControlNet residuals added to the skip
 * connections and the mid block output. `UNet2DConditionModel.load` (runner.ts) builds, writes and
 * opens it as an ONNX Runtime session.
 */
import { GraphError } from "../../errors.js";
import type { Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import { Conv2d } from "../../nn/conv.js";
import { GroupNorm } from "../../nn/group-norm.js";
import { Module } from "../../nn/module.js";
import type { WeightScope } from "../../nn/weights.js";
import { diffusersActivation } from "./activation.js";
import type { UNet2DConditionModelConfig } from "./config.js";
import { type DownBlock, makeDownBlock, runDownBlocks } from "./down-blocks.js";
import { type ClassEmbedding, addClassEmbedding, classEmbedding } from "./class-embedding.js";
import { GaussianFourierProjection, TimestepEmbedding, type Timesteps } from "./embeddings.js";
import { type AfterLayerHook, type UNetModuleHooks, blockHook } from "./layer-hook.js";
import { UNetMidBlock2DCrossAttn } from "./mid-block.js";
import type { UNet2DConditionModelRunner, UNetLoadOptions, UNetSource } from "./runner.js";
import { type UpBlock, makeUpBlock } from "./up-blocks.js";
import { embedTimestep, timeConditioning } from "./time-conditioning.js";
import { type UNetSpec, resolveUNet } from "./unet-spec.js";

/** Receives named intermediate values ("time_proj", "down_blocks.0", ...) while a graph is built. */
export type Tap = (name: string, value: Value) => void;

export interface UNetForwardInputs {
  /** [B, in_channels, H, W] in the graph dtype. */
  readonly sample: Value;
  /** [B], any numeric dtype (the sinusoid is computed in float32). */
  readonly timestep: Value;
  /** [B, L, cross_attention_dim]. */
  readonly encoderHiddenStates: Value;
  /** One per skip connection (ControlNet down_block_res_samples). */
  readonly downBlockAdditionalResiduals?: readonly Value[];
  readonly midBlockAdditionalResidual?: Value;
  /** One per down block: T2I-Adapter features (diffusers down_intrablock_additional_residuals). */
  readonly downIntrablockAdditionalResiduals?: readonly Value[];
  /** Runs after each layer of the down, mid and up blocks (motion modules; see layer-hook.ts). */
  readonly afterLayer?: AfterLayerHook;
  /** [B, time_cond_proj_dim]: the guidance embedding of LCM-distilled UNets (diffusers timestep_cond). */
  readonly timestepCond?: Value;
  /** diffusers class_labels, for a config with class embeddings (see class-embedding.ts). */
  readonly classLabels?: Value;
}

export class UNet2DConditionModel extends Module {
  readonly spec: UNetSpec;
  readonly time_proj: Timesteps | GaussianFourierProjection;
  readonly time_embedding: TimestepEmbedding;
  /** The class embedding of the config (class_embed_type / num_class_embeds), or null. */
  readonly class_embedding: ClassEmbedding | null;
  readonly conv_in: Conv2d;
  readonly down_blocks: readonly DownBlock[];
  readonly mid_block: UNetMidBlock2DCrossAttn | null;
  readonly up_blocks: readonly UpBlock[];
  readonly conv_norm_out: GroupNorm;
  readonly conv_out: Conv2d;

  /** Builds and opens a UNet as an ONNX Runtime session (see runner.ts). */
  static async load(source: UNetSource, options: UNetLoadOptions = {}): Promise<UNet2DConditionModelRunner> {
    const { loadUNet2DConditionModel } = await import("./runner.js");
    return loadUNet2DConditionModel(source, options);
  }

  constructor(
    w: WeightScope,
    readonly config: UNet2DConditionModelConfig,
    /** Names the config in errors (default "unet/config.json"). */
    file = "unet/config.json",
    /** (optional) video UNet hooks (see layer-hook.ts; Tune-A-Video's UNet3DConditionModel). */
    readonly hooks?: UNetModuleHooks,
  ) {
    super(w);
    const c = config;
    const resolved = resolveUNet(file, c);
    this.spec = hooks ? { ...resolved, shared: { ...resolved.shared, hooks } } : resolved;
    const s = this.spec;
    const ch0 = c.block_out_channels[0] ?? 0;
    if (c.time_embedding_type === "fourier") {
      // diffusers: GaussianFourierProjection(time_embed_dim // 2), timestep_input_dim = time_embed_dim.
      this.time_proj = new GaussianFourierProjection(w.at("time_proj"), {
        embeddingSize: s.timeEmbedDim / 2,
        flipSinToCos: c.flip_sin_to_cos,
      });
      this.time_embedding = new TimestepEmbedding(w.at("time_embedding"), {
        inChannels: s.timeEmbedDim,
        timeEmbedDim: s.timeEmbedDim,
        actFn: c.act_fn,
        postActFn: c.timestep_post_act,
        condProjDim: c.time_cond_proj_dim,
      });
    } else {
      const time = timeConditioning(w, c, s.timeEmbedDim, c.timestep_post_act, c.time_cond_proj_dim);
      this.time_proj = time.time_proj;
      this.time_embedding = time.time_embedding;
    }
    this.class_embedding = classEmbedding(
      this.graph,
      w,
      c,
      file,
      s.timeEmbedDim,
      this.time_proj,
      c.time_embedding_type === "fourier" ? s.timeEmbedDim : ch0,
    );
    const padIn = (c.conv_in_kernel - 1) / 2;
    this.conv_in = new Conv2d(w.at("conv_in"), {
      inChannels: c.in_channels,
      outChannels: ch0,
      kernelSize: c.conv_in_kernel,
      padding: padIn,
    });
    this.down_blocks = s.down.map((spec, i) => makeDownBlock(w.at("down_blocks").at(i), spec, s.shared));
    this.mid_block = s.mid === null ? null : new UNetMidBlock2DCrossAttn(w.at("mid_block"), s.mid, s.shared);
    this.up_blocks = s.up.map((spec, i) => makeUpBlock(w.at("up_blocks").at(i), spec, s.shared));
    this.conv_norm_out = new GroupNorm(w.at("conv_norm_out"), {
      numGroups: s.shared.resnetGroups,
      numChannels: ch0,
      eps: c.norm_eps,
    });
    const padOut = (c.conv_out_kernel - 1) / 2;
    this.conv_out = new Conv2d(w.at("conv_out"), {
      inChannels: ch0,
      outChannels: c.out_channels,
      kernelSize: c.conv_out_kernel,
      padding: padOut,
    });
  }

  /** The number of skip connections (and of ControlNet down residuals). */
  get numSkips(): number {
    return 1 + this.spec.down.reduce((n, b) => n + b.numLayers + (b.addDownsample ? 1 : 0), 0);
  }

  /** noise_pred [B, out_channels, H, W]. */
  forward(inputs: UNetForwardInputs, tap: Tap = () => undefined): Value {
    const g = this.graph;
    const c = this.config;
    const ehs = inputs.encoderHiddenStates;
    let sample = inputs.sample;
    if (c.center_input_sample) sample = op.Sub(g, op.Mul(g, sample, 2), 1);
    let emb = embedTimestep(g, this, inputs.timestep, sample.dtype, tap, inputs.timestepCond);
    emb = addClassEmbedding(g, "UNet2DConditionModel", emb, this.class_embedding, inputs.classLabels);
    if (c.time_embedding_act_fn !== null) emb = diffusersActivation(g, emb, c.time_embedding_act_fn);
    let h = this.conv_in.forward(sample);
    tap("conv_in", h);
    const hook = inputs.afterLayer;
    const intrablock = inputs.downIntrablockAdditionalResiduals;
    if (intrablock && intrablock.length !== this.down_blocks.length) {
      throw new GraphError(
        "UNet2DConditionModel",
        `got ${intrablock.length} down intrablock residuals but the UNet has ${this.down_blocks.length} down blocks`,
      );
    }
    const down = runDownBlocks(this.down_blocks, h, emb, ehs, tap, hook, intrablock);
    h = down.hidden;
    let skips = [...down.skips];
    const residuals = inputs.downBlockAdditionalResiduals;
    if (residuals) {
      if (residuals.length !== skips.length) {
        throw new GraphError(
          "UNet2DConditionModel",
          `got ${residuals.length} down block residuals but the UNet has ${skips.length} skip connections`,
        );
      }
      skips = skips.map((skip, i) =>
        g.scope(`controlnet_residual_${i}`, () => op.Add(g, skip, residuals[i] ?? skip)),
      );
    }
    if (this.mid_block) {
      h = this.mid_block.forward(h, emb, ehs, blockHook(hook, "mid_block", 0));
      tap("mid_block", h);
    }
    if (inputs.midBlockAdditionalResidual) h = op.Add(g, h, inputs.midBlockAdditionalResidual);
    this.up_blocks.forEach((block, i) => {
      const n = block.numLayers;
      const own = skips.slice(skips.length - n);
      skips = skips.slice(0, skips.length - n);
      const upsampleLike = i < this.up_blocks.length - 1 ? skips[skips.length - 1] : undefined;
      h = block.forward(h, own, emb, ehs, upsampleLike, blockHook(hook, "up_blocks", i));
      tap(`up_blocks.${i}`, h);
    });
    const normOut = this.hooks?.groupNorm;
    h = normOut ? normOut(this.conv_norm_out, h) : this.conv_norm_out.forward(h);
    h = diffusersActivation(g, h, c.act_fn);
    return this.conv_out.forward(h);
  }
}
