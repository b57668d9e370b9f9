/**
 * Every fixture kind the conformance runner knows. Add a kind by importing it and listing it here.
 */
import type { FixtureKind } from "./types.js";
// kinds: one import per line, sorted
import { clipTextEncoderKind } from "./kinds/clip-text-encoder.js";
import { controlnetKind } from "./kinds/controlnet.js";
import { crossFrameAttnKind } from "./kinds/cross-frame-attn.js";
import { ddimInversionKind } from "./kinds/ddim-inversion.js";
import { gradientsKind } from "./kinds/gradients.js";
import { loraKind } from "./kinds/lora.js";
import { opencvKind } from "./kinds/opencv.js";
import { optimizerKind } from "./kinds/optimizer.js";
import { pickleSafetyKind } from "./kinds/pickle-safety.js";
import { pipelineAnimatediffKind, pipelineAnimatediffV2vKind } from "./kinds/pipeline-animatediff.js";
import { pipelineControlnetKind } from "./kinds/pipeline-controlnet.js";
import { pipelineT2vZeroKind } from "./kinds/pipeline-t2v-zero.js";
import { pipelineVideoControlnetKind } from "./kinds/pipeline-video-controlnet.js";
import { rngKind } from "./kinds/rng.js";
import { safetensorsSafetyKind } from "./kinds/safetensors-safety.js";
import { schedulersKind } from "./kinds/schedulers.js";
import { singleFileKind } from "./kinds/single-file.js";
import { t2iAdapterKind } from "./kinds/t2i-adapter.js";
import { tokenizerKind } from "./kinds/tokenizer.js";
import { unetKind } from "./kinds/unet.js";
import { unetMotionKind } from "./kinds/unet-motion.js";
import { vaeKind } from "./kinds/vae.js";
// (end of kind imports)

export const FIXTURE_KINDS: readonly FixtureKind[] = [
  // kinds: one entry per line, sorted
  clipTextEncoderKind,
  controlnetKind,
  crossFrameAttnKind,
  ddimInversionKind,
  gradientsKind,
  loraKind,
  opencvKind,
  optimizerKind,
  pickleSafetyKind,
  pipelineAnimatediffKind,
  pipelineAnimatediffV2vKind,
  pipelineControlnetKind,
  pipelineT2vZeroKind,
  pipelineVideoControlnetKind,
  rngKind,
  safetensorsSafetyKind,
  schedulersKind,
  singleFileKind,
  t2iAdapterKind,
  tokenizerKind,
  unetKind,
  unetMotionKind,
  vaeKind,
  // (end of kind entries)
];
