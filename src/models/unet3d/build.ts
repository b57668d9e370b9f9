/**
 * Builds a whole UNet3DConditionModel graph: declares the inputs, runs the module, names the outputs
 * and checks weight coverage (one MissingWeightsError listing every missing, unexpected and
 * mis-shaped key). Pure and synchronous; runner.ts writes and opens the result.
 *
 * Graph inputs: `sample` [batch, in_channels, frames, height, width] (frames fixed), `timestep`
 * float32 [batch], `encoder_hidden_states` [batch, sequence, cross_attention_dim]. Output:
 * `noise_pred` [batch, out_channels, frames, height, width], then `intermediate.<name>` (see UNet3DTap).
 */
import { UnsupportedError } from "../../errors.js";
import type { Value } from "../../graph/builder.js";
import type { WeightScope } from "../../nn/weights.js";
import type { ModelGraph } from "../model-graph.js";
import { UNET_INPUT, UNET_OUTPUT, singleCrossAttentionDim } from "../unet/build.js";
import type { UNet2DConditionModelConfig } from "../unet/config.js";
import { UNet3DConditionModel } from "./model.js";

export const UNET3D_INPUT = UNET_INPUT;
export const UNET3D_OUTPUT = UNET_OUTPUT;

export interface UNet3DBuildOptions {
  /** Frames per video. */
  readonly frames: number;
  /** (optional, default false) also output `intermediate.<name>`. */
  readonly intermediates?: boolean;
  /** (optional, default "unet/config.json") names the config in errors. */
  readonly configFile?: string;
}

export type UNet3DGraph = ModelGraph<UNet3DConditionModel>;

/** The one cross_attention_dim of a config, else an UnsupportedError. */
export function contextWidth(config: UNet2DConditionModelConfig): number {
  const width = singleCrossAttentionDim(config.cross_attention_dim);
  if (width === undefined) {
    throw new UnsupportedError(
      `UNet3DConditionModel with cross_attention_dim = ${JSON.stringify(config.cross_attention_dim)}`,
      { hint: "one cross_attention_dim for all blocks (one encoder_hidden_states input)" },
    );
  }
  return width;
}

export function buildUNet3DConditionModel(
  w: WeightScope,
  config: UNet2DConditionModelConfig,
  options: UNet3DBuildOptions,
): UNet3DGraph {
  const g = w.graph;
  const width = contextWidth(config);
  const model = new UNet3DConditionModel(w, config, options.frames, options.configFile);
  const dtype = w.dtype;
  const sample = g.input(UNET3D_INPUT.sample, dtype, [
    "batch",
    config.in_channels,
    options.frames,
    "height",
    "width",
  ]);
  const timestep = g.input(UNET3D_INPUT.timestep, "float32", ["batch"]);
  const encoderHiddenStates = g.input(UNET3D_INPUT.encoderHiddenStates, dtype, ["batch", "sequence", width]);
  const taps: [string, Value][] = [];
  const noise = model.forward(
    { sample, timestep, encoderHiddenStates },
    options.intermediates ? (name, v) => taps.push([name, v]) : undefined,
  );
  const outputs = [g.output(noise, UNET3D_OUTPUT).name];
  for (const [name, v] of taps) outputs.push(g.output(v, `intermediate.${name}`).name);
  const weights = w.finish();
  return { model, inputs: g.inputs.map((v) => v.name), outputs, weights };
}
