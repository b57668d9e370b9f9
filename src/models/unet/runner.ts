/**
 * The UNet as an ONNX Runtime session: `UNet2DConditionModel.load(dir | {config, store})` builds the
 * graph (build.ts) and compiles it (../model-runner.ts: written with external data into the model
 * cache, opened as a session); `forward` runs one denoising step on host tensors. Absent ControlNet
 * residuals are fed as zeros (./residual-feeds.ts, the same policy as UNetMotionModel's runner).
 */
import { classLabelsFeed } from "./class-embedding.js";
import { InvalidArgumentError } from "../../errors.js";
import { WeightScope } from "../../nn/weights.js";
import { type HostTensor, shapeToString, tensor } from "../../tensor.js";
import { type AnchorAttentionIO, runWithAnchors } from "../anchor-attention.js";
import type { ModelLoadOptions } from "../compiled-graph.js";
import { type ModelSource, resolveModelSource } from "../component-source.js";
import type { DenoisingUNet } from "../model-interfaces.js";
import {
  ModelRunner,
  RunnerGraph,
  float32Output,
  newGraph,
  signalOption,
  timestepFeed,
} from "../model-runner.js";
import {
  type CrossFrameSetting,
  type IpAdapterLayer,
  UNET_INPUT,
  UNET_OUTPUT,
  buildUNet2DConditionModel,
  ipAdapterLayers,
  ipKeyName,
  ipValueName,
} from "./build.js";
import { type UNet2DConditionModelConfig, parseUNet2DConditionModelConfig } from "./config.js";
import { intrablockFeeds, residualFeeds, residualSpecs } from "./residual-feeds.js";

/** The timestep broadcast now lives with the runner base; re-exported for existing imports. */
export { timestepFeed };

/** A diffusers `unet/` folder (config.json + diffusion_pytorch_model.safetensors), or a config and a weight store. */
export type UNetSource = ModelSource<UNet2DConditionModelConfig>;

export interface UNetLoadOptions extends ModelLoadOptions {
  /** (optional, default false) take ControlNet residuals (zeros are fed when a call gives none; ./residual-feeds.ts). */
  readonly residuals?: boolean;
  /** (optional, default false) take T2I-Adapter features (zeros are fed when a call gives none). */
  readonly intrablockResiduals?: boolean;
  /** (optional) Text2Video-Zero cross-frame attention in every attn1. */
  readonly crossFrame?: CrossFrameSetting;
  /** (optional, default false) take IP-Adapter keys/values in every attn2 (none given: no image term). */
  readonly ipAdapter?: boolean;
  /** (optional, default false) also output `intermediate.*` tensors (see `run`). */
  readonly intermediates?: boolean;
}

export interface UNetRunInputs {
  /** [B, in_channels, H, W] float32. */
  readonly sample: HostTensor;
  /** A number, or a tensor of shape [], [1] or [B] of any numeric dtype (broadcast to [B]). */
  readonly timestep: HostTensor | number;
  /** [B, L, cross_attention_dim] float32. */
  readonly encoderHiddenStates: HostTensor;
  /**
   * [B, time_cond_proj_dim] float32: the guidance embedding of an LCM-distilled UNet (zeros when left
   * out, which equals diffusers' timestep_cond=None: cond_proj has no bias).
   */
  readonly timestepCond?: HostTensor;
  /**
   * diffusers class_labels, required by a config with class embeddings (class-embedding.ts): int64 [B]
   * for a table, [B] timesteps for "timestep", [B, width] for "identity" / "projection" types.
   */
  readonly classLabels?: HostTensor;
  /** ControlNet down_block_res_samples (one per skip connection); give both residual fields or neither. */
  readonly downBlockAdditionalResiduals?: readonly HostTensor[];
  readonly midBlockAdditionalResidual?: HostTensor;
  /** T2I-Adapter features, one per down block (diffusers down_intrablock_additional_residuals). */
  readonly downIntrablockAdditionalResiduals?: readonly HostTensor[];
  /**
   * IP-Adapter keys/values by graph input name (`ip_key.<path>`, `ip_value.<path>`, [B, tokens,
   * inner], the ip scale already in the values; src/models/ip-adapter). Left out: no image term.
   */
  readonly ipAdapterKeyValues?: Readonly<Record<string, HostTensor>>;
  /** Cached anchor keys/values and frames to record (a UNet loaded with crossFrame.anchorCache). */
  readonly anchorAttention?: AnchorAttentionIO;
}

export class UNet2DConditionModelRunner extends ModelRunner implements DenoisingUNet {
  constructor(
    graph: RunnerGraph,
    readonly config: UNet2DConditionModelConfig,
    /** The cross-frame setting the graph was built with. */
    readonly crossFrame?: CrossFrameSetting,
    /** True when the graph takes ControlNet residuals. */
    readonly acceptsResiduals = false,
    /** The cross-attentions that take IP-Adapter keys/values, in diffusers' attn_processors order (none: no ipAdapter). */
    readonly ipAdapterLayers: readonly IpAdapterLayer[] = [],
  ) {
    super("UNet2DConditionModel", [graph]);
  }

  /** True when the graph takes cached anchor keys/values (src/models/anchor-attention.ts). */
  get anchorCache(): boolean {
    return this.crossFrame?.anchorCache === true;
  }

  /** Runs the session with raw feeds and returns every output by name (noise_pred, intermediate.*). */
  async run(
    inputs: UNetRunInputs,
    options: { signal?: AbortSignal } = {},
  ): Promise<Record<string, HostTensor>> {
    const batch = inputs.sample.shape[0] ?? 0;
    const group = this.crossFrame?.videoLength ?? this.crossFrame?.batchSize;
    if (group !== undefined && batch % group !== 0) {
      const what =
        this.crossFrame?.videoLength !== undefined
          ? `frames per video (videoLength ${group})`
          : `videos (batchSize ${group})`;
      throw new InvalidArgumentError(
        "sample",
        `a batch that is a multiple of the ${what}`,
        `batch ${batch}`,
        {
          hint: "cross-frame attention lays the batch out as whole videos",
        },
      );
    }
    const session = await this.openSession();
    const residualOptions = {
      model: this.modelName,
      geometry: () => ({
        batch,
        height: inputs.sample.shape[2] ?? 1,
        width: inputs.sample.shape[3] ?? 1,
        downsamplePadding: this.config.downsample_padding,
      }),
    };
    const feeds: Record<string, HostTensor> = {
      [UNET_INPUT.sample]: inputs.sample,
      [UNET_INPUT.timestep]: timestepFeed(inputs.timestep, batch),
      [UNET_INPUT.encoderHiddenStates]: inputs.encoderHiddenStates,
      ...this.timestepCondFeed(inputs.timestepCond, batch),
      ...classLabelsFeed(session.inputs, inputs.classLabels, this.modelName),
      ...residualFeeds(residualSpecs(session.inputs), inputs, residualOptions),
      ...intrablockFeeds(session.inputs, inputs.downIntrablockAdditionalResiduals, residualOptions),
      ...this.ipAdapterFeeds(inputs.ipAdapterKeyValues, batch),
    };
    return runWithAnchors(this.modelName, session, feeds, inputs.anchorAttention, signalOption(options));
  }

  /**
   * The IP-Adapter feeds: every `ip_key.*` / `ip_value.*` input from `given`, or, when none are given,
   * one zero token each (zero values add exactly nothing). Partial or unknown feeds are refused.
   */
  private ipAdapterFeeds(
    given: Readonly<Record<string, HostTensor>> | undefined,
    batch: number,
  ): Record<string, HostTensor> {
    const layers = this.ipAdapterLayers;
    if (layers.length === 0) {
      if (given === undefined) return {};
      throw new InvalidArgumentError(
        "ipAdapterKeyValues",
        "nothing (the UNet was loaded without ipAdapter: true)",
        "IP-Adapter keys/values",
        {
          hint: "load the UNet with { ipAdapter: true }",
        },
      );
    }
    const names = layers.flatMap((l) => [ipKeyName(l.path), ipValueName(l.path)]);
    if (given === undefined)
      return Object.fromEntries(
        names.map((n, i) => [n, tensor("float32", [batch, 1, layers[i >> 1]?.innerDim ?? 0])]),
      );
    const missing = names.filter((n) => given[n] === undefined);
    const unknown = Object.keys(given).filter((n) => !names.includes(n));
    if (missing.length > 0 || unknown.length > 0) {
      throw new InvalidArgumentError(
        "ipAdapterKeyValues",
        `exactly the UNet's ${names.length} IP-Adapter inputs`,
        `missing ${missing.join(", ") || "none"}; unknown ${unknown.join(", ") || "none"}`,
      );
    }
    return { ...given };
  }

  /** time_cond_proj_dim of the UNet (the width of the guidance embedding), undefined when it has none. */
  get guidanceEmbeddingDim(): number | undefined {
    return this.config.time_cond_proj_dim ?? undefined;
  }

  private timestepCondFeed(cond: HostTensor | undefined, batch: number): Record<string, HostTensor> {
    const dim = this.config.time_cond_proj_dim;
    if (dim === null) {
      if (cond === undefined) return {};
      throw new InvalidArgumentError(
        "timestepCond",
        "nothing (the UNet has no time_cond_proj_dim)",
        "a tensor",
      );
    }
    if (cond === undefined) return { [UNET_INPUT.timestepCond]: tensor("float32", [batch, dim]) };
    if (cond.shape.join() !== [batch, dim].join())
      throw new InvalidArgumentError("timestepCond", `shape [${batch}, ${dim}]`, shapeToString(cond.shape));
    return { [UNET_INPUT.timestepCond]: cond };
  }

  /** noise_pred [B, out_channels, H, W]. */
  async forward(inputs: UNetRunInputs): Promise<HostTensor<"float32">> {
    return float32Output(await this.run(inputs), UNET_OUTPUT);
  }
}

/** Builds, writes (or reuses) and opens a UNet; see UNetLoadOptions. */
export async function loadUNet2DConditionModel(
  source: UNetSource,
  options: UNetLoadOptions = {},
): Promise<UNet2DConditionModelRunner> {
  const { config, store, weightsId, configName } = await resolveModelSource(
    source,
    "unet/config.json",
    parseUNet2DConditionModelConfig,
  );
  const g = newGraph("unet");
  const residuals = options.residuals ?? false;
  buildUNet2DConditionModel(WeightScope.bind(g, store), config, {
    configFile: configName,
    residuals,
    intrablockResiduals: options.intrablockResiduals ?? false,
    intermediates: options.intermediates ?? false,
    ...(options.crossFrame ? { crossFrame: options.crossFrame } : {}),
    ...(options.ipAdapter ? { ipAdapter: true } : {}),
  });
  return ModelRunner.opened(
    new UNet2DConditionModelRunner(
      new RunnerGraph("unet", g, weightsId, options),
      config,
      options.crossFrame,
      residuals,
      ipAdapterLayers(g.inputs),
    ),
    options,
  );
}
