/** UNetMotionModel + MotionAdapter (AnimateDiff): configs, graph modules, builder, runner, checkpoints. */
export { animateDiffStore, openAnimateDiffCheckpoint } from "./animatediff-checkpoint.js";
export {
  UNET_MOTION_INPUT,
  UNET_MOTION_OUTPUT,
  type UNetMotionBuildOptions,
  type UNetMotionGraph,
  buildUNetMotionModel,
} from "./build.js";
export {
  MOTION_ADAPTER_DEFAULTS,
  type MotionAdapterConfig,
  type MotionModuleSite,
  motionModuleSites,
  parseMotionAdapterConfig,
  readMotionAdapterConfig,
} from "./config.js";
export { MotionAdapter, type MotionAdapterOptions, MotionModules } from "./motion-adapter.js";
export {
  type MotionAdapterSource,
  type UNetMotionLoadOptions,
  UNetMotionModelRunner,
  type UNetMotionRunInputs,
  type UNetMotionSource,
  loadUNetMotionModel,
} from "./runner.js";
export { TransformerTemporalModel, type TransformerTemporalModelOptions } from "./transformer-temporal.js";
export { checkAdapterFitsUNet, unetMotionConfig } from "./unet-motion-config.js";
export {
  type UNetMotionConfigFiles,
  type UNetMotionForwardInputs,
  UNetMotionModel,
} from "./unet-motion-model.js";
