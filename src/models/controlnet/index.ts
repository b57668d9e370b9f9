/** ControlNetModel: config, graph modules, graph builder, runner, multi-ControlNet helpers. */
export {
  CONTROLNET_INPUT,
  type ControlNetBuildOptions,
  type ControlNetGraph,
  MID_BLOCK_RES_SAMPLE,
  buildControlNetModel,
  downResSampleName,
} from "./build.js";
export { ControlNetConditioningEmbedding } from "./conditioning-embedding.js";
export {
  type ControlNetModelConfig,
  parseControlNetModelConfig,
  readControlNetModelConfig,
} from "./config.js";
export {
  type ControlNetForwardInputs,
  ControlNetModel,
  type ControlNetResiduals,
  guessModeScales,
} from "./controlnet-model.js";
export { type FitsUNetOptions, controlNetMismatches, fitsUNet } from "./fits-unet.js";
export { type MultiControlNetInputs, MultiControlNetModel, controlnetKeep } from "./multi-controlnet.js";
export {
  type ControlNetLoadOptions,
  ControlNetModelRunner,
  type ControlNetRunInputs,
  type ControlNetSource,
  loadControlNetModel,
} from "./runner.js";
