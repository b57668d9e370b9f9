/** Tune-A-Video's UNet3DConditionModel: config, graph modules, sources (tuned or 2D), builder and runner. */
export { type UNet3DConfig, parseUNet3DConditionModelConfig, unet3dConfigJson } from "./config.js";
export {
  UNET3D_INPUT,
  UNET3D_OUTPUT,
  type UNet3DBuildOptions,
  type UNet3DGraph,
  buildUNet3DConditionModel,
} from "./build.js";
export { UNet3DConditionModel, type UNet3DForwardInputs, type UNet3DTap } from "./model.js";
export {
  UNet3DConditionModelRunner,
  type UNet3DLoadOptions,
  type UNet3DRunInputs,
  loadUNet3DConditionModel,
  openUNet3DConditionModel,
} from "./runner.js";
export {
  type ResolvedUNet3D,
  type UNet3DSourceOptions,
  initialTemporalWeights,
  isTemporalKey,
  openUNetWeights,
  resolveUNet3D,
  temporalParameterShapes,
  unetFolder,
  unionStore,
} from "./source.js";
export { TemporalAttention } from "./temporal.js";
