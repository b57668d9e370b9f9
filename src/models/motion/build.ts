/**
 * Builds a whole UNetMotionModel graph: declares the inputs, runs the module, names the output and
 * checks weight coverage of both parts (the UNet's and the motion adapter's keys, each reported in
 * one MissingWeightsError). Pure and synchronous; runner.ts writes and opens the result.
 *
 * Graph inputs: `sample` [batch, in_channels, frames, height, width], `timestep` float32 [batch],
 * `encoder_hidden_states` [batch, sequence, cross_attention_dim]; with residuals also the UNet's
 * `down_block_additional_residuals.{i}` and `mid_block_additional_residual`, per frame
 * ([batch_frames, C, h, w], frames of one video adjacent). Output: `noise_pred` [batch, out, frames, h, w].
 */
import { MissingWeightsError, UnsupportedError } from "../../errors.js";
import type { WeightReport, WeightScope } from "../../nn/weights.js";
import type { ModelGraph } from "../model-graph.js";
import { UNET_INPUT, UNET_OUTPUT, declareResidualInputs, singleCrossAttentionDim } from "../unet/build.js";
import type { UNet2DConditionModelConfig } from "../unet/config.js";
import type { MotionAdapterConfig } from "./config.js";
import { type UNetMotionConfigFiles, UNetMotionModel } from "./unet-motion-model.js";

export const UNET_MOTION_INPUT = UNET_INPUT;
export const UNET_MOTION_OUTPUT = UNET_OUTPUT;

export interface UNetMotionBuildOptions {
  /** (optional, default false) add per-frame ControlNet residual inputs. */
  readonly residuals?: boolean;
  /** (optional) names the configs in errors. */
  readonly files?: UNetMotionConfigFiles;
  /** (optional, default "motion adapter") names the adapter weights in errors. */
  readonly motionAdapterName?: string;
}

/** Output: noise_pred; weights: the UNet's and the motion adapter's coverage. */
export type UNetMotionGraph = ModelGraph<
  UNetMotionModel,
  { readonly unet: WeightReport; readonly motionAdapter: WeightReport }
>;

export function buildUNetMotionModel(
  unetScope: WeightScope,
  adapterScope: WeightScope,
  unetConfig: UNet2DConditionModelConfig,
  adapterConfig: MotionAdapterConfig,
  options: UNetMotionBuildOptions = {},
): UNetMotionGraph {
  const g = unetScope.graph;
  const width = singleCrossAttentionDim(unetConfig.cross_attention_dim);
  if (width === undefined) {
    throw new UnsupportedError(
      `UNetMotionModel with cross_attention_dim = ${JSON.stringify(unetConfig.cross_attention_dim)}`,
      { hint: "UNetMotionModel takes one cross_attention_dim for all blocks" },
    );
  }
  const model = new UNetMotionModel(unetScope, adapterScope, unetConfig, adapterConfig, options.files);
  const dtype = unetScope.dtype;
  const sample = g.input(UNET_MOTION_INPUT.sample, dtype, [
    "batch",
    unetConfig.in_channels,
    "frames",
    "height",
    "width",
  ]);
  const timestep = g.input(UNET_MOTION_INPUT.timestep, "float32", ["batch"]);
  const encoderHiddenStates = g.input(UNET_MOTION_INPUT.encoderHiddenStates, dtype, [
    "batch",
    "sequence",
    width,
  ]);
  const residuals = options.residuals
    ? declareResidualInputs(g, dtype, model.unet.spec, unetConfig.block_out_channels, "batch_frames")
    : undefined;
  const noise = model.forward({
    sample,
    timestep,
    encoderHiddenStates,
    ...(residuals
      ? { downBlockAdditionalResiduals: residuals.down, midBlockAdditionalResidual: residuals.mid }
      : {}),
  });
  const outputs = [g.output(noise, UNET_MOTION_OUTPUT).name];
  const unetReport = unetScope.finish();
  checkMidBlockModules(adapterScope, adapterConfig, options.motionAdapterName ?? "motion adapter");
  const adapterReport = adapterScope.finish();
  return {
    model,
    inputs: g.inputs.map((v) => v.name),
    outputs,
    weights: { unet: unetReport, motionAdapter: adapterReport },
  };
}

/** AnimateDiff v1 modules have no mid block: say so when exactly those keys are missing. */
function checkMidBlockModules(scope: WeightScope, config: MotionAdapterConfig, name: string): void {
  const r = scope.report();
  const midOnly =
    config.use_motion_mid_block &&
    r.missing.length > 0 &&
    r.missing.every((k) => k.startsWith("mid_block.motion_modules.")) &&
    r.unexpected.length + r.misshaped.length + r.wrongDType.length === 0;
  if (midOnly) {
    throw new MissingWeightsError(name, r.missing, [], [], {
      hint: "these motion modules have no mid block (AnimateDiff v1, mm_sd_v14/mm_sd_v15): set use_motion_mid_block to false",
    });
  }
}
