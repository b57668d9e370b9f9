/**
 * Builds a whole UNet2DConditionModel graph: declares the graph inputs, runs the module, names the
 * outputs and checks weight coverage (one MissingWeightsError listing every missing, unexpected and
 * mis-shaped key). Pure and synchronous; the runner (runner.ts) writes and opens the result, and a
 * benchmark can build a full-size UNet from `randomWeights()` with it.
 *
 * Graph inputs: `sample` [batch, in_channels, height, width], `timestep` float32 [batch],
 * `encoder_hidden_states` [batch, sequence, cross_attention_dim]; with `time_cond_proj_dim` (LCM)
 * `timestep_cond` float32 [batch, time_cond_proj_dim]; with residuals also
 * `down_block_additional_residuals.{i}` and `mid_block_additional_residual`; with T2I-Adapter
 * residuals `down_intrablock_additional_residuals.{i}` (one per down block); with IP-Adapter inputs
 * `ip_key.<attn2 path>` / `ip_value.<attn2 path>` [batch, ip_tokens, inner] for every cross-attention
 * (attended with their own softmax and added before to_out: src/models/ip-adapter). Output: `noise_pred`.
 */
import { CLASS_LABELS_INPUT } from "./class-embedding.js";
import { InvalidArgumentError, UnsupportedError } from "../../errors.js";
import type { GraphBuilder, Value } from "../../graph/builder.js";
import type { DType } from "../../tensor.js";
import { type CrossFrameMode, crossFrameAttention } from "../../nn/cross-frame.js";
import type { ExtraKeyValues, KeyValueTransform } from "../../nn/module.js";
import type { WeightScope } from "../../nn/weights.js";
import type { ModelGraph } from "../model-graph.js";
import type { EncoderSpec } from "./block-config.js";
import type { UNet2DConditionModelConfig } from "./config.js";
import { UNet2DConditionModel } from "./unet-2d-condition.js";
import { skipShapes } from "./unet-spec.js";

export const UNET_INPUT = {
  sample: "sample",
  timestep: "timestep",
  encoderHiddenStates: "encoder_hidden_states",
  timestepCond: "timestep_cond",
  midBlockAdditionalResidual: "mid_block_additional_residual",
} as const;
export const UNET_OUTPUT = "noise_pred";

/** Graph input name of the i-th down block residual. */
export const downResidualName = (i: number): string => `down_block_additional_residuals.${i}`;

/** Graph input name of the i-th down block's T2I-Adapter feature. */
export const intrablockResidualName = (i: number): string => `down_intrablock_additional_residuals.${i}`;

/**
 * Declares `down_intrablock_additional_residuals.{i}`, one per down block, shaped like the tensor it
 * is added to: a CrossAttnDownBlock2D's last layer (before its downsampler), a DownBlock2D's output.
 */
export function declareIntrablockInputs(
  g: GraphBuilder,
  dtype: DType,
  spec: EncoderSpec,
  batchDim: string,
): Value[] {
  return spec.down.map((block, i) => {
    const level = block.type !== "CrossAttnDownBlock2D" && block.addDownsample ? i + 1 : i;
    return g.input(intrablockResidualName(i), dtype, [batchDim, block.outChannels, ...levelDims(level)]);
  });
}

/** True for the ControlNet residual graph inputs (down_block_additional_residuals.i, mid_block_additional_residual). */
export const isResidualInput = (name: string): boolean =>
  name === UNET_INPUT.midBlockAdditionalResidual || /^down_block_additional_residuals\.\d+$/.test(name);

/** Symbolic spatial dims of level `l` (0 = the sample's height/width). */
export function levelDims(level: number): [string, string] {
  return level === 0 ? ["height", "width"] : [`height_${level}`, `width_${level}`];
}

/** The one cross_attention_dim of a config (a number, or a list of equal numbers), else undefined. */
export function singleCrossAttentionDim(value: number | readonly number[]): number | undefined {
  const dims = new Set(Array.isArray(value) ? value : [value]);
  return dims.size === 1 ? [...dims][0] : undefined;
}

/** The ControlNet residual inputs of a UNet graph. */
export interface ResidualInputs {
  readonly down: Value[];
  readonly mid: Value;
}

/**
 * Declares `down_block_additional_residuals.{i}` (one per skip connection) and
 * `mid_block_additional_residual`, with `batchDim` as their first dimension.
 */
export function declareResidualInputs(
  g: GraphBuilder,
  dtype: DType,
  spec: EncoderSpec,
  blockOutChannels: readonly number[],
  batchDim: string,
): ResidualInputs {
  const down = skipShapes(spec).map((s, i) =>
    g.input(downResidualName(i), dtype, [batchDim, s.channels, ...levelDims(s.level)]),
  );
  const last = spec.down.length - 1;
  const mid = g.input(UNET_INPUT.midBlockAdditionalResidual, dtype, [
    batchDim,
    blockOutChannels[last] ?? 0,
    ...levelDims(last),
  ]);
  return { down, mid };
}

/** Graph input names of the IP-Adapter keys/values of the cross-attention at `path` (its weight path). */
export const ipKeyName = (path: string): string => `ip_key.${path}`;
export const ipValueName = (path: string): string => `ip_value.${path}`;

/** One cross-attention that takes IP-Adapter keys/values: its weight path and width (heads * head_dim). */
export interface IpAdapterLayer {
  readonly path: string;
  readonly innerDim: number;
}

/**
 * The IP-Adapter layers of a built UNet graph (from its `ip_key.*` inputs) in diffusers'
 * `unet.attn_processors` order, which numbers the published files' `ip_adapter.<n>` keys: module
 * registration order, i.e. down blocks, then UP blocks, then the mid block; within a part by block,
 * attention and transformer block index.
 */
export function ipAdapterLayers(inputs: readonly Value[]): IpAdapterLayer[] {
  const part = (p: string): number => (p.startsWith("down_blocks") ? 0 : p.startsWith("up_blocks") ? 1 : 2);
  const numbers = (p: string): number[] => (p.match(/\d+/g) ?? []).map(Number);
  const layers = inputs
    .filter((v) => v.name.startsWith("ip_key."))
    .map((v) => ({ path: v.name.slice("ip_key.".length), innerDim: Number(v.shape[2]) }));
  return layers.sort((a, b) => {
    if (part(a.path) !== part(b.path)) return part(a.path) - part(b.path);
    const x = numbers(a.path);
    const y = numbers(b.path);
    for (let i = 0; i < Math.max(x.length, y.length); i++) {
      if ((x[i] ?? -1) !== (y[i] ?? -1)) return (x[i] ?? -1) - (y[i] ?? -1);
    }
    return 0;
  });
}

/** Declares `ip_key.<path>` / `ip_value.<path>` for every cross-attention (attn2) as it is built. */
function ipAdapterKeyValues(g: GraphBuilder, dtype: DType): ExtraKeyValues {
  return (context, width) => {
    if (context.isSelfAttention) return [];
    return [
      {
        key: g.input(ipKeyName(context.path), dtype, ["batch", "ip_tokens", width]),
        value: g.input(ipValueName(context.path), dtype, ["batch", "ip_tokens", width]),
      },
    ];
  };
}

/** Text2Video-Zero cross-frame attention in every self-attention (attn1). */
export interface CrossFrameSetting {
  /** Frames per video; the batch holds batch / videoLength videos. Give this or batchSize. */
  readonly videoLength?: number;
  /** Videos in the batch (diffusers CrossFrameAttnProcessor batch_size; frames = batch / batchSize). */
  readonly batchSize?: number;
  /**
   * (optional, default "first") "first-and-previous" also attends to the previous frame; "anchors"
   * attends to the first `anchors` frames of each video (key frames).
   */
  readonly mode?: CrossFrameMode;
  /** (optional, default 1) anchor frames per video for mode "anchors". */
  readonly anchors?: number;
  /**
   * (optional, default false; with batchSize only) the anchor cache: every self-attention takes the
   * keys/values of cached anchor frames (`anchor_key.<path>`, `anchor_value.<path>`, flat) that the
   * batch's frames are put after, and outputs those of the frames `anchor_record` names
   * (`recorded_key.<path>`, `recorded_value.<path>`, [videos, R, tokens, width]); see
   * src/models/anchor-attention.ts. Nothing fed: the same result as without the cache.
   */
  readonly anchorCache?: boolean;
}

export interface UNetBuildOptions {
  /** (optional, default false) add ControlNet residual inputs. */
  readonly residuals?: boolean;
  /** (optional, default false) add T2I-Adapter inputs (`down_intrablock_additional_residuals.{i}`). */
  readonly intrablockResiduals?: boolean;
  /** (optional) cross-frame attention. */
  readonly crossFrame?: CrossFrameSetting;
  /** (optional, default false) add IP-Adapter key/value inputs to every cross-attention (`ip_key.*`, `ip_value.*`). */
  readonly ipAdapter?: boolean;
  /** (optional, default false) also output `intermediate.<name>` (time_proj, down_blocks.i, ...). */
  readonly intermediates?: boolean;
  /** (optional, default "unet/config.json") names the config in errors. */
  readonly configFile?: string;
}

/** Outputs: noise_pred, then intermediates. */
export type UNetGraph = ModelGraph<UNet2DConditionModel>;

/** The key/value transform for a cross-frame setting (validated). */
export function crossFrameTransform(setting: CrossFrameSetting): KeyValueTransform {
  const { videoLength, batchSize } = setting;
  const mode = setting.mode ?? "first";
  if (mode !== "first" && mode !== "first-and-previous" && mode !== "anchors") {
    throw new InvalidArgumentError("crossFrame.mode", '"first", "first-and-previous" or "anchors"', mode);
  }
  const anchors = setting.anchors ?? 1;
  if (!(Number.isInteger(anchors) && anchors >= 1))
    throw new InvalidArgumentError("crossFrame.anchors", "a positive integer", anchors);
  if ((videoLength === undefined) === (batchSize === undefined)) {
    throw new InvalidArgumentError("crossFrame", "exactly one of videoLength and batchSize", setting, {
      hint: "videoLength = frames per video; batchSize = videos in the batch (2 with classifier-free guidance)",
    });
  }
  for (const [name, v] of [
    ["crossFrame.videoLength", videoLength],
    ["crossFrame.batchSize", batchSize],
  ] as const) {
    if (v !== undefined && !(Number.isInteger(v) && v >= 1))
      throw new InvalidArgumentError(name, "a positive integer", v);
  }
  if (setting.anchorCache === true && batchSize === undefined)
    throw new InvalidArgumentError(
      "crossFrame.anchorCache",
      "used with batchSize (videos in the batch)",
      setting,
    );
  return videoLength !== undefined
    ? crossFrameAttention({ frames: videoLength, mode, anchors })
    : crossFrameAttention({
        videos: batchSize ?? 1,
        mode,
        anchors,
        ...(setting.anchorCache === true ? { anchorCache: true } : {}),
      });
}

export function buildUNet2DConditionModel(
  w: WeightScope,
  config: UNet2DConditionModelConfig,
  options: UNetBuildOptions = {},
): UNetGraph {
  const g = w.graph;
  const scope =
    options.crossFrame || options.ipAdapter
      ? w.withOptions({
          ...(options.crossFrame ? { keyValueTransform: crossFrameTransform(options.crossFrame) } : {}),
          ...(options.ipAdapter ? { extraKeyValues: ipAdapterKeyValues(g, w.dtype) } : {}),
        })
      : w;
  const width = singleCrossAttentionDim(config.cross_attention_dim);
  if (width === undefined) {
    throw new UnsupportedError(
      `UNet2DConditionModel config field cross_attention_dim = ${JSON.stringify(config.cross_attention_dim)}`,
      {
        hint: "per-block cross_attention_dim values must all be equal (one encoder_hidden_states input)",
      },
    );
  }
  const model = new UNet2DConditionModel(scope, config, options.configFile);
  const dtype = w.dtype;
  const sample = g.input(UNET_INPUT.sample, dtype, ["batch", config.in_channels, "height", "width"]);
  const timestep = g.input(UNET_INPUT.timestep, "float32", ["batch"]);
  const encoderHiddenStates = g.input(UNET_INPUT.encoderHiddenStates, dtype, ["batch", "sequence", width]);
  const condDim = config.time_cond_proj_dim;
  const timestepCond =
    condDim === null ? undefined : g.input(UNET_INPUT.timestepCond, "float32", ["batch", condDim]);
  const residuals = options.residuals
    ? declareResidualInputs(g, dtype, model.spec, config.block_out_channels, "batch")
    : undefined;
  const intrablock = options.intrablockResiduals
    ? declareIntrablockInputs(g, dtype, model.spec, "batch")
    : undefined;
  const classSpec = model.class_embedding?.input;
  const classLabels = classSpec ? g.input(CLASS_LABELS_INPUT, classSpec.dtype, classSpec.shape) : undefined;
  const taps: [string, Value][] = [];
  const noise = model.forward(
    {
      sample,
      timestep,
      encoderHiddenStates,
      ...(timestepCond ? { timestepCond } : {}),
      ...(classLabels ? { classLabels } : {}),
      ...(residuals
        ? { downBlockAdditionalResiduals: residuals.down, midBlockAdditionalResidual: residuals.mid }
        : {}),
      ...(intrablock ? { downIntrablockAdditionalResiduals: intrablock } : {}),
    },
    options.intermediates ? (name, v) => taps.push([name, v]) : undefined,
  );
  const outputs = [g.output(noise, UNET_OUTPUT).name];
  for (const [name, v] of taps) outputs.push(g.output(v, `intermediate.${name}`).name);
  const weights = w.finish();
  return { model, inputs: g.inputs.map((v) => v.name), outputs, weights };
}
