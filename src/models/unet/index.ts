/** UNet2DConditionModel: config, graph modules (diffusers class names), graph builder and runner. */
export {
  type CrossFrameSetting,
  UNET_INPUT,
  UNET_OUTPUT,
  type UNetBuildOptions,
  type UNetGraph,
  buildUNet2DConditionModel,
  crossFrameTransform,
  downResidualName,
  levelDims,
} from "./build.js";
export { type DownBlockType, type EncoderSpec, type UpBlockType, resolveEncoder } from "./block-config.js";
export {
  type UNet2DConditionModelConfig,
  parseUNet2DConditionModelConfig,
  readUNet2DConditionModelConfig,
} from "./config.js";
export { CrossAttnDownBlock2D, DownBlock2D, type DownBlock, runDownBlocks } from "./down-blocks.js";
export {
  SinusoidalPositionalEmbedding,
  TimestepEmbedding,
  Timesteps,
  sinusoidalPositionTable,
  timestepFrequencies,
} from "./embeddings.js";
export { type AfterLayerHook, type BlockLayerHook, type LayerSite } from "./layer-hook.js";
export { UNetMidBlock2DCrossAttn } from "./mid-block.js";
export { ResnetBlock2D } from "./resnet.js";
export {
  UNet2DConditionModelRunner,
  type UNetLoadOptions,
  type UNetRunInputs,
  type UNetSource,
  loadUNet2DConditionModel,
  timestepFeed,
} from "./runner.js";
export { Downsample2D, Upsample2D } from "./sampling.js";
export { BasicTransformerBlock, FeedForward, Transformer2DModel } from "./transformer-2d.js";
export { type Tap, UNet2DConditionModel, type UNetForwardInputs } from "./unet-2d-condition.js";
export { type SkipShape, type UNetSpec, resolveUNet, skipShapes } from "./unet-spec.js";
export { CrossAttnUpBlock2D, UpBlock2D, type UpBlock } from "./up-blocks.js";
