/** Training an AutoencoderKL with Steadyframe's own autodiff (see trainer.ts). */
export {
  DEMO_VAE_CONFIG,
  DEMO_VAE_SIZE,
  DEMO_VAE_TRAINING,
  VAE_DIFFUSERS_VERSION,
  vaeConfigJson,
  vaeSpecOf,
} from "./config.js";
export {
  type CropChoice,
  type FrameSet,
  type LoadFramesOptions,
  cropBatch,
  drawCrops,
  loadFrames,
} from "./data.js";
export {
  type VaeReconstructionLoss,
  type VaeTrainingGraph,
  type VaeTrainingGraphOptions,
  buildVaeTrainingGraph,
} from "./graph.js";
export { initTorchDefault, initVaeWeights, shapeRecorder, vaeParameterShapes } from "./init.js";
export {
  type TrainVaeOptions,
  type TrainVaeResult,
  type VaeStepInfo,
  VAE_TRAINING_FILE,
  VAE_TRAINING_FORMAT,
  trainVae,
} from "./trainer.js";
