/**
 * Uni-ControlNet's LocalAdapter as a graph-building module, as ShihaoZhaoZSH/Uni-ControlNet
 * `models/local_adapter.py` (`FeatureExtractor`, `FDN`, `LocalResBlock`, `LocalAdapter.forward`):
 *
 * - `feature_extractor`: conv3x3 21->32, SiLU, 32->64 s2, SiLU, 64->64, SiLU, 64->128 s2, SiLU,
 *   128->128, SiLU (H/4), then four (conv3x3 s2 + SiLU) to inject_channels[i] at H/8 ... H/64, each
 *   through a 3x3 `zero_convs.i`; all four levels are computed.
 * - a copy of the UNet encoder built from the same blocks as ../unet (ResnetBlock2D,
 *   Transformer2DModel, Downsample2D, UNetMidBlock2DCrossAttn; diffusers names after the LDM key map,
 *   see ../../weights/key-maps/uni.ts), except that the first resnet of each listed level is a
 *   `LocalResBlock` whose two GroupNorms are FDNs of the level's feature map:
 *   `FDN(x, f) = GroupNorm32_noaffine(x) * (1 + conv_gamma(f)) + conv_beta(f)`.
 *   No hint is added after conv_in: the maps enter only through FDN.
 * - 1x1 `controlnet_down_blocks.i` (LDM `zero_convs.i.0`) per skip and `controlnet_mid_block`
 *   (`middle_block_out.0`): the residuals, in the UNet's skip order, each times its scale.
 */
import { GraphError } from "../../errors.js";
import type { Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import { Conv2d } from "../../nn/conv.js";
import { GroupNorm } from "../../nn/group-norm.js";
import { Linear } from "../../nn/linear.js";
import { Module, moduleList } from "../../nn/module.js";
import type { WeightScope } from "../../nn/weights.js";
import { diffusersActivation } from "../unet/activation.js";
import {
  type DownBlockSpec,
  type EncoderSpec,
  type SharedBlockSettings,
  resolveEncoder,
} from "../unet/block-config.js";
import { blockAttentions, blockResnetOptions } from "../unet/block-layers.js";
import type { TimestepEmbedding, Timesteps } from "../unet/embeddings.js";
import { UNetMidBlock2DCrossAttn } from "../unet/mid-block.js";
import { ResnetBlock2D } from "../unet/resnet.js";
import { Downsample2D } from "../unet/sampling.js";
import { embedTimestep, timeConditioning } from "../unet/time-conditioning.js";
import type { Transformer2DModel } from "../unet/transformer-2d.js";
import type { Tap } from "../unet/unet-2d-condition.js";
import { skipShapes } from "../unet/unet-spec.js";
import { type UniControlNetConfig, uniUNetConfig } from "./config.js";

const silu = (v: Value): Value => diffusersActivation(v.graph, v, "silu");

/** The maps' feature pyramid: `pre_extractor`, `extractors.i.0`, `zero_convs.i`. */
export class FeatureExtractor extends Module {
  readonly pre_extractor: readonly Conv2d[];
  readonly extractors: readonly Conv2d[];
  readonly zero_convs: readonly Conv2d[];

  constructor(w: WeightScope, localChannels: number, injectChannels: readonly number[]) {
    super(w);
    const pre: [number, number, number][] = [
      [localChannels, 32, 1],
      [32, 64, 2],
      [64, 64, 1],
      [64, 128, 2],
      [128, 128, 1],
    ];
    this.pre_extractor = pre.map(
      ([i, o, s], k) =>
        new Conv2d(w.at("pre_extractor").at(2 * k), {
          inChannels: i,
          outChannels: o,
          kernelSize: 3,
          padding: 1,
          stride: s,
        }),
    );
    this.extractors = moduleList(
      w.at("extractors"),
      4,
      (s, i) =>
        new Conv2d(s.at(0), {
          inChannels: i === 0 ? 128 : (injectChannels[i - 1] ?? 0),
          outChannels: injectChannels[i] ?? 0,
          kernelSize: 3,
          padding: 1,
          stride: 2,
        }),
    );
    this.zero_convs = moduleList(
      w.at("zero_convs"),
      4,
      (s, i) =>
        new Conv2d(s, {
          inChannels: injectChannels[i] ?? 0,
          outChannels: injectChannels[i] ?? 0,
          kernelSize: 3,
          padding: 1,
        }),
    );
  }

  /** [B, local_channels, H, W] -> four features at H/8, H/16, H/32, H/64. */
  forward(maps: Value): Value[] {
    return this.scoped(() => {
      let h = maps;
      for (const conv of this.pre_extractor) h = silu(conv.forward(h));
      return this.extractors.map((conv, i) => {
        h = silu(conv.forward(h));
        return this.zero_convs[i]?.forward(h) ?? h;
      });
    });
  }
}

/** Feature denormalisation (SPADE-like): parameter-free GroupNorm(32, eps 1e-5) modulated by the feature map. */
export class FDN extends Module {
  readonly param_free_norm: GroupNorm;
  readonly conv_gamma: Conv2d;
  readonly conv_beta: Conv2d;

  constructor(w: WeightScope, normChannels: number, labelChannels: number) {
    super(w);
    this.param_free_norm = new GroupNorm(w, {
      numGroups: 32,
      numChannels: normChannels,
      eps: 1e-5,
      affine: false,
    });
    const conv = (name: string): Conv2d =>
      new Conv2d(w.at(name), {
        inChannels: labelChannels,
        outChannels: normChannels,
        kernelSize: 3,
        padding: 1,
      });
    this.conv_gamma = conv("conv_gamma");
    this.conv_beta = conv("conv_beta");
  }

  forward(x: Value, features: Value): Value {
    const g = this.graph;
    return this.scoped(() => {
      const normalized = this.param_free_norm.forward(x);
      const gamma = this.conv_gamma.forward(features);
      const beta = this.conv_beta.forward(features);
      return op.Add(g, op.Mul(g, normalized, op.Add(g, gamma, 1)), beta);
    });
  }
}

/** A ResBlock whose two norms are FDNs: keys norm_in, conv1, time_emb_proj, norm_out, conv2, conv_shortcut. */
export class LocalResBlock extends Module {
  readonly norm_in: FDN;
  readonly conv1: Conv2d;
  readonly time_emb_proj: Linear;
  readonly norm_out: FDN;
  readonly conv2: Conv2d;
  readonly conv_shortcut: Conv2d | null;

  constructor(
    w: WeightScope,
    inChannels: number,
    outChannels: number,
    tembChannels: number,
    injectChannels: number,
  ) {
    super(w);
    this.norm_in = new FDN(w.at("norm_in"), inChannels, injectChannels);
    this.conv1 = new Conv2d(w.at("conv1"), { inChannels, outChannels, kernelSize: 3, padding: 1 });
    this.time_emb_proj = new Linear(w.at("time_emb_proj"), {
      inFeatures: tembChannels,
      outFeatures: outChannels,
    });
    this.norm_out = new FDN(w.at("norm_out"), outChannels, injectChannels);
    this.conv2 = new Conv2d(w.at("conv2"), {
      inChannels: outChannels,
      outChannels,
      kernelSize: 3,
      padding: 1,
    });
    this.conv_shortcut =
      inChannels === outChannels
        ? null
        : new Conv2d(w.at("conv_shortcut"), { inChannels, outChannels, kernelSize: 1 });
  }

  /** `tapNormIn` receives the first FDN's output. */
  forward(x: Value, temb: Value, features: Value, tapNormIn: (v: Value) => void = () => undefined): Value {
    const g = this.graph;
    return this.scoped(() => {
      const normed = this.norm_in.forward(x, features);
      tapNormIn(normed);
      let h = this.conv1.forward(silu(normed));
      h = op.Add(g, h, op.Unsqueeze(g, this.time_emb_proj.forward(silu(temb)), [2, 3]));
      h = this.conv2.forward(silu(this.norm_out.forward(h, features)));
      return op.Add(g, this.conv_shortcut ? this.conv_shortcut.forward(x) : x, h);
    });
  }
}

/** One level of the adapter's encoder: resnets (some LocalResBlocks), attentions, downsampler. */
class LocalDownBlock extends Module {
  readonly resnets: readonly (ResnetBlock2D | LocalResBlock)[];
  readonly attentions: readonly Transformer2DModel[];
  readonly downsamplers: readonly Downsample2D[];

  constructor(
    w: WeightScope,
    spec: DownBlockSpec,
    shared: SharedBlockSettings,
    /** Per resnet: the FDN feature width when it is a LocalResBlock, else null. */
    readonly injected: readonly (number | null)[],
  ) {
    super(w);
    this.resnets = moduleList(w.at("resnets"), spec.numLayers, (s, i) => {
      const inChannels = i === 0 ? spec.inChannels : spec.outChannels;
      const inject = injected[i] ?? null;
      return inject === null
        ? new ResnetBlock2D(s, blockResnetOptions(shared, inChannels, spec.outChannels))
        : new LocalResBlock(s, inChannels, spec.outChannels, shared.tembChannels, inject);
    });
    this.attentions =
      spec.type === "CrossAttnDownBlock2D"
        ? blockAttentions(w, spec.numLayers, spec.outChannels, spec, shared)
        : [];
    this.downsamplers = spec.addDownsample
      ? moduleList(
          w.at("downsamplers"),
          1,
          (s) => new Downsample2D(s, { channels: spec.outChannels, padding: spec.downsamplePadding }),
        )
      : [];
  }
}

export interface LocalAdapterForwardInputs {
  readonly sample: Value;
  /** [B], any numeric dtype. */
  readonly timestep: Value;
  /** [B, 77 + K, context_dim]: the text context with the global tokens (as the UNet's). */
  readonly context: Value;
  /** [B, local_channels, 8h, 8w] in [0, 1]. */
  readonly localConditions: Value;
  /** [R] float32: residual i is multiplied by scales[i] (local_control_scales; last = middle block). */
  readonly scales: Value;
}

export interface LocalAdapterResiduals {
  readonly downBlockResSamples: readonly Value[];
  readonly midBlockResSample: Value;
}

export class LocalAdapter extends Module {
  readonly spec: EncoderSpec;
  readonly time_proj: Timesteps;
  readonly time_embedding: TimestepEmbedding;
  readonly feature_extractor: FeatureExtractor;
  readonly conv_in: Conv2d;
  readonly down_blocks: readonly LocalDownBlock[];
  readonly controlnet_down_blocks: readonly Conv2d[];
  readonly mid_block: UNetMidBlock2DCrossAttn;
  readonly controlnet_mid_block: Conv2d;

  constructor(
    /** The scope at `local_adapter`. */
    w: WeightScope,
    readonly config: UniControlNetConfig,
    file = "Uni-ControlNet config",
  ) {
    super(w);
    const c = config;
    const unet = uniUNetConfig(c, file);
    this.spec = resolveEncoder("LocalAdapter", file, unet);
    const s = this.spec;
    const time = timeConditioning(w, unet, s.timeEmbedDim);
    this.time_proj = time.time_proj;
    this.time_embedding = time.time_embedding;
    this.feature_extractor = new FeatureExtractor(
      w.at("feature_extractor"),
      c.local_channels,
      c.inject_channels,
    );
    this.conv_in = new Conv2d(w.at("conv_in"), {
      inChannels: c.in_channels,
      outChannels: unet.block_out_channels[0] ?? 0,
      kernelSize: 3,
      padding: 1,
    });
    this.down_blocks = s.down.map((spec, level) => {
      const injected = Array.from({ length: spec.numLayers }, (_, nr) =>
        c.inject_layers.includes(1 + 3 * level + nr) ? (c.inject_channels[level] ?? 0) : null,
      );
      return new LocalDownBlock(w.at("down_blocks").at(level), spec, s.shared, injected);
    });
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
    if (mid === null)
      throw new GraphError("LocalAdapter", "internal: the Uni-ControlNet encoder always has a middle block");
    this.mid_block = new UNetMidBlock2DCrossAttn(w.at("mid_block"), mid, s.shared);
    this.controlnet_mid_block = new Conv2d(w.at("controlnet_mid_block"), {
      inChannels: mid.channels,
      outChannels: mid.channels,
      kernelSize: 1,
    });
  }

  /** Residuals in adapter order (one per skip connection, then the middle block). */
  get numResiduals(): number {
    return this.controlnet_down_blocks.length + 1;
  }

  /**
   * The scaled residuals. `tap` receives `time_proj`, `time_embedding`, `features.i`, `input_blocks.N`
   * (after LDM input block N), `input_blocks.N.0.norm_in` (first FDN of a LocalResBlock),
   * `residuals.i` (before scaling).
   */
  forward(inputs: LocalAdapterForwardInputs, tap: Tap = () => undefined): LocalAdapterResiduals {
    const g = this.graph;
    const { context } = inputs;
    const c = this.config;
    const emb = embedTimestep(g, this, inputs.timestep, inputs.sample.dtype, tap);
    const features = this.feature_extractor.forward(inputs.localConditions);
    features.forEach((f, i) => tap(`features.${i}`, f));
    let h = this.conv_in.forward(inputs.sample);
    tap("input_blocks.0", h);
    const states: Value[] = [h];
    let block = 1;
    this.down_blocks.forEach((down) => {
      down.resnets.forEach((resnet, i) => {
        const index = block;
        if (resnet instanceof LocalResBlock) {
          const f = features[c.inject_layers.indexOf(index)];
          if (f === undefined)
            throw new GraphError(
              "LocalAdapter",
              `no feature map for input block ${index} (inject_layers ${JSON.stringify(c.inject_layers)})`,
            );
          h = resnet.forward(h, emb, f, (v) => tap(`input_blocks.${index}.0.norm_in`, v));
        } else {
          h = resnet.forward(h, emb);
        }
        const attention = down.attentions[i];
        if (attention) h = attention.forward(h, context);
        tap(`input_blocks.${index}`, h);
        states.push(h);
        block++;
      });
      for (const sampler of down.downsamplers) {
        h = sampler.forward(h);
        tap(`input_blocks.${block}`, h);
        states.push(h);
        block++;
      }
    });
    h = this.mid_block.forward(h, emb, context);
    tap("middle_block", h);
    const raw = [
      ...states.map((state, i) => this.controlnet_down_blocks[i]?.forward(state) ?? state),
      this.controlnet_mid_block.forward(h),
    ];
    raw.forEach((r, i) => tap(`residuals.${i}`, r));
    const scaled = raw.map((r, i) =>
      g.scope(`local_control_scale_${i}`, () =>
        op.Mul(g, r, op.Cast(g, op.Gather(g, inputs.scales, i, 0), r.dtype)),
      ),
    );
    const mid = scaled.pop();
    if (mid === undefined) throw new GraphError("LocalAdapter", "internal: no residuals");
    return { downBlockResSamples: scaled, midBlockResSample: mid };
  }
}
