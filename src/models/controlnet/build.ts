/**
 * Builds a whole ControlNetModel graph: inputs `sample` [batch, in_channels, height, width],
 * `timestep` float32 [batch], `encoder_hidden_states` [batch, sequence, cross_attention_dim],
 * `controlnet_cond` [batch, conditioning_channels, cond_height, cond_width] (in [0, 1]),
 * `conditioning_scale` float32 scalar; outputs `down_block_res_samples.{i}` and
 * `mid_block_res_sample` (already multiplied by the scale). Checks weight coverage like the UNet.
 */
import { CLASS_LABELS_INPUT } from "../unet/class-embedding.js";
import type { Value } from "../../graph/builder.js";
import type { WeightScope } from "../../nn/weights.js";
import { type CrossFrameSetting, crossFrameTransform } from "../unet/build.js";
import type { ModelGraph } from "../model-graph.js";
import type { ControlNetModelConfig } from "./config.js";
import { ControlNetModel } from "./controlnet-model.js";

export const CONTROLNET_INPUT = {
  sample: "sample",
  timestep: "timestep",
  encoderHiddenStates: "encoder_hidden_states",
  controlnetCond: "controlnet_cond",
  conditioningScale: "conditioning_scale",
} as const;
export const MID_BLOCK_RES_SAMPLE = "mid_block_res_sample";

/** Graph output name of the i-th down block residual. */
export const downResSampleName = (i: number): string => `down_block_res_samples.${i}`;

export interface ControlNetBuildOptions {
  /** (optional, default false) diffusers guess_mode: residuals scaled by logspace(-1, 0) (unless global_pool_conditions). */
  readonly guessMode?: boolean;
  /**
   * (optional, default false) with global_pool_conditions, output the spatial means expanded to each
   * residual's size (as the UNet's broadcasting addition sees them) instead of [B, C, 1, 1].
   */
  readonly broadcastPooled?: boolean;
  /** (optional, default false) also output `intermediate.<name>` (controlnet_cond_embedding, down_blocks.i, ...). */
  readonly intermediates?: boolean;
  /** (optional, default "controlnet/config.json") names the config in errors. */
  readonly configFile?: string;
  /** (optional) cross-frame attention in every self-attention, as in the UNet it serves. */
  readonly crossFrame?: CrossFrameSetting;
}

/** Outputs: down_block_res_samples.0..n-1, mid_block_res_sample, then intermediates. */
export type ControlNetGraph = ModelGraph<ControlNetModel>;

export function buildControlNetModel(
  w: WeightScope,
  config: ControlNetModelConfig,
  options: ControlNetBuildOptions = {},
): ControlNetGraph {
  const g = w.graph;
  const scope = options.crossFrame
    ? w.withOptions({ keyValueTransform: crossFrameTransform(options.crossFrame) })
    : w;
  const model = new ControlNetModel(scope, config, options.configFile);
  const dtype = w.dtype;
  const sample = g.input(CONTROLNET_INPUT.sample, dtype, ["batch", config.in_channels, "height", "width"]);
  const timestep = g.input(CONTROLNET_INPUT.timestep, "float32", ["batch"]);
  const encoderHiddenStates = g.input(CONTROLNET_INPUT.encoderHiddenStates, dtype, [
    "batch",
    "sequence",
    config.cross_attention_dim,
  ]);
  const controlnetCond = g.input(CONTROLNET_INPUT.controlnetCond, dtype, [
    "batch",
    config.conditioning_channels,
    "cond_height",
    "cond_width",
  ]);
  const conditioningScale = g.input(CONTROLNET_INPUT.conditioningScale, "float32", []);
  const classSpec = model.class_embedding?.input;
  const classLabels = classSpec ? g.input(CLASS_LABELS_INPUT, classSpec.dtype, classSpec.shape) : undefined;
  const taps: [string, Value][] = [];
  const res = model.forward(
    {
      sample,
      timestep,
      encoderHiddenStates,
      controlnetCond,
      conditioningScale,
      ...(classLabels ? { classLabels } : {}),
    },
    { guessMode: options.guessMode ?? false, broadcastPooled: options.broadcastPooled ?? false },
    options.intermediates ? (name, v) => taps.push([name, v]) : undefined,
  );
  const outputs = res.downBlockResSamples.map((v, i) => g.output(v, downResSampleName(i)).name);
  outputs.push(g.output(res.midBlockResSample, MID_BLOCK_RES_SAMPLE).name);
  for (const [name, v] of taps) outputs.push(g.output(v, `intermediate.${name}`).name);
  const weights = w.finish();
  return { model, inputs: g.inputs.map((v) => v.name), outputs, weights };
}
