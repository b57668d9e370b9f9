/**
 * Steadyframe's public API. Import from "steadyframe"; deep imports are not part of the API.
 */
export * from "./errors.js";
export * from "./tensor.js";
export { image, type Image, type Channels } from "./image.js";
export type { ProgressEvent, ProgressCallback, LongTaskOptions } from "./progress.js";

// Weights
export {
  SafetensorsFile,
  openSafetensors,
  readSafetensors,
  parseSafetensors,
  serializeSafetensors,
  writeSafetensors,
  type SafetensorsEntry,
} from "./weights/safetensors.js";
export { readTorchStateDict, readTorchCheckpoint } from "./weights/pickle/index.js";
export { openCheckpointStore, splitSingleFile, type SingleFileStores } from "./weights/single-file.js";
export { mapLdmCheckpoint, type LdmLayout, type KeyMapping } from "./weights/key-maps/ldm.js";
export { applyLoras, readLoraFile, type LoraSetting, type AppliedLoras } from "./weights/lora/index.js";
export {
  safetensorsStore,
  mapStore,
  randomWeights,
  zeroWeights,
  type WeightStore,
} from "./nn/weight-store.js";

// Graphs and runtime
export { GraphBuilder, Value } from "./graph/builder.js";
export { writeModel, encodeModelInline, type WriteModelOptions } from "./graph/serialize.js";
export { WeightScope } from "./nn/weights.js";
export {
  createSession,
  Session,
  type CreateSessionOptions,
  type ExecutionProvider,
} from "./runtime/session.js";

// Models
export {
  UNet2DConditionModel,
  buildUNet2DConditionModel,
  type UNet2DConditionModelRunner,
} from "./models/unet/index.js";
export {
  ControlNetModel,
  MultiControlNetModel,
  fitsUNet,
  controlnetKeep,
} from "./models/controlnet/index.js";
export { AutoencoderKL } from "./models/vae/index.js";
export {
  UNI_V15_CONFIG,
  buildRandomUniControlNet,
  loadUniControlNet,
} from "./models/uni-controlnet/index.js";
export { generateUni, predictUniNoise, stackLocalConditions } from "./pipeline/uni-controlnet.js";
export { CLIPTextModel } from "./models/clip/index.js";
export { ClipVisionRunner, clipPixelValues } from "./models/clip-vision/index.js";
export { IpAdapterRunner } from "./models/ip-adapter/index.js";
export { IpAdapterConditioner, ipAdaptedUNet } from "./pipeline/ip-adapter.js";
export {
  UNetMotionModel,
  MotionAdapter,
  buildUNetMotionModel,
  openAnimateDiffCheckpoint,
  type UNetMotionModelRunner,
} from "./models/motion/index.js";
export {
  UNet3DConditionModel,
  loadUNet3DConditionModel,
  type UNet3DConditionModelRunner,
} from "./models/unet3d/index.js";
export {
  generateTuneAVideo,
  type TuneAVideoGenerateOptions,
  type TuneAVideoGenerateResult,
} from "./pipeline/tune-a-video.js";
export { tuneAVideo, type TuneAVideoOptions, type TuneAVideoResult } from "./train/tune-a-video.js";
export {
  CheckpointMismatchError,
  RECIPES as TRAINING_RECIPES,
  type StepInfo as TrainStepInfo,
  type TrainOptions,
  type TrainResult,
  TrainingDivergedError,
  trainDiffusion,
} from "./train/loop/index.js";
export { CLIPTokenizer } from "./tokenizer/clip-tokenizer.js";

// Diffusion
export {
  fromConfig as schedulerFromConfig,
  resolveSchedulerName,
  SCHEDULER_NAMES,
} from "./schedulers/registry.js";
export type { Scheduler, SchedulerClassName, NoiseGenerator } from "./schedulers/scheduler.js";
export {
  qSample,
  qPosteriorMeanVariance,
  predictX0FromEps,
  posteriorCoefficients,
} from "./schedulers/ddpm-equations.js";
export { TorchGenerator, randn, rand } from "./random/torch-generator.js";
export {
  StableDiffusionPipeline,
  type LoadPipelineOptions,
  type GenerateOptions,
} from "./pipeline/stable-diffusion.js";
export { textToImage, type TextToImageOptions, type ControlUnit } from "./pipeline/text-to-image.js";
export {
  invertLatents,
  reconstructLatents,
  type DDIMInversionComponents,
  type DDIMLoopOptions,
  type DDIMLoopResult,
} from "./pipeline/ddim-inversion.js";
export { imageToTensor, tensorToImages, denormalize } from "./pipeline/images.js";
export {
  encodePromptWeighted,
  encodePromptsWeighted,
  parsePromptAttention,
  promptChunks,
  type PromptSyntax,
} from "./pipeline/prompt-weighting.js";

// Video, control maps and metrics
export { readFrames, readAllFrames, type Frame, type ReadFramesOptions } from "./video/read.js";
export { writeVideo, type WriteVideoOptions } from "./video/write.js";
export { probeVideo, type VideoInfo } from "./video/probe.js";
export { sideBySide, grid } from "./video/compose.js";
export { canny, type CannyOptions } from "./control/canny.js";
export { toGray } from "./control/gray.js";
export { resizeImage } from "./control/resize.js";
export { addWeighted, interpolateEdgeMaps } from "./control/interpolate.js";
export { farnebackFlow, pairFlows, type FlowField, type FarnebackOptions } from "./control/flow.js";
export { warpImage } from "./control/warp.js";
export { consistencyMask } from "./control/occlusion.js";
export { flowWarpEdgeMaps } from "./control/flow-warp-edges.js";
export { DepthEstimator } from "./control/depth.js";
export { SoftEdgeDetector } from "./control/soft-edge.js";
export { readImageFile, writePngFile } from "./control/png.js";
export { clipWarpError, pairWarpError } from "./metrics/warp-error.js";
export { flickerIndex, pixelFlicker, meanLuminance } from "./metrics/flicker.js";
export { edgeF1, clipEdgeFidelity } from "./metrics/edge-fidelity.js";
export { depthAgreement, clipDepthFidelity } from "./metrics/depth-fidelity.js";
export { ClipScorer, clipF, clipT } from "./metrics/clip-score.js";
export {
  writeStudyReport,
  type StudyEntry,
  type StudyReportOptions,
  type StudyReport,
  type StudyClipOptions,
} from "./study/report.js";

// Conformance
export {
  runConformance,
  runFixture,
  type ConformanceOptions,
  type FixtureResult,
} from "./conformance/run.js";
export type { ConformanceRow, FixtureKind, FixtureContext } from "./conformance/types.js";
