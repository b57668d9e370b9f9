/**
 * Every fixture kind the conformance runner knows. Add a kind by importing it and listing it here.
 */
import type { FixtureKind } from "./types.js";
// kinds: one import per line, sorted
import { clipTextEncoderKind } from "./kinds/clip-text-encoder.js";
import { clipVisionKind } from "./kinds/clip-vision.js";
import { controlnetKind } from "./kinds/controlnet.js";
import { crossFrameAttnKind } from "./kinds/cross-frame-attn.js";
import { ddimInversionKind } from "./kinds/ddim-inversion.js";
import { gradientsKind } from "./kinds/gradients.js";
import { ipAdapterKind, ipAdapterPlusKind } from "./kinds/ip-adapter.js";
import { loraKind } from "./kinds/lora.js";
import { nlaKind } from "./kinds/nla.js";
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
import { tuneAVideoKind } from "./kinds/tune-a-video.js";
import { unetKind } from "./kinds/unet.js";
import { unetMotionKind } from "./kinds/unet-motion.js";
import { uniControlnetKind } from "./kinds/uni-controlnet.js";
import { vaeKind } from "./kinds/vae.js";
// (end of kind imports)

export const FIXTURE_KINDS: readonly FixtureKind[] = [
  // kinds: one entry per line, sorted
  clipTextEncoderKind,
  clipVisionKind,
  controlnetKind,
  crossFrameAttnKind,
  ddimInversionKind,
  gradientsKind,
  ipAdapterKind,
  ipAdapterPlusKind,
  loraKind,
  nlaKind,
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
  tuneAVideoKind,
  unetKind,
  unetMotionKind,
  uniControlnetKind,
  vaeKind,
  // (end of kind entries)
];
