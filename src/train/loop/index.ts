/**
 * The training loop: data (frames -> cached VAE latents, captions, control maps), the denoising
 * objective as one ONNX graph, checkpoints with exact resume, the loss plot, recipes.
 */
export {
  type CheckpointRecord,
  type LoadedCheckpoint,
  type RunFingerprint,
  listCheckpoints,
  loadCheckpoint,
} from "./checkpoint.js";
export {
  type PrepareDataOptions,
  type TrainingClip,
  type TrainingData,
  prepareTrainingData,
} from "./data.js";
export { CheckpointMismatchError, TrainingDivergedError } from "./errors.js";
export { type PredictionType, buildTrainingGraph, noiseBatch } from "./objective.js";
export { lossCurveSvg } from "./plot.js";
export { type StepInfo, type TrainOptions, type TrainResult, trainDiffusion } from "./trainer.js";
export {
  RECIPES,
  type RecipeRunOptions,
  type RecipeStage,
  type TrainingRecipe,
  findRecipe,
  runRecipe,
  stageOptions,
} from "./recipes.js";
