/**
 * Fixture kind `pipeline_t2v_zero`: an end-to-end diffusers `TextToVideoZeroPipeline` run
 * (src/pipeline/text2video-zero.ts) with the call arguments, scheduler, weights (`weights.unet`,
 * `weights.vae`) and prompt embeddings from the fixture. The UNet gets the cross-frame attention
 * case.json's `reference.attention_processor` names (`CrossFrameAttnProcessor(batch_size=N)`, the one
 * the pipeline installs). `output_type: "latent"` makes `frames` the final latents, as diffusers
 * returns them. Every tensor of the outputs file is compared: each random draw of the
 * seeded generator (`rng.drawNN`, in order), every step of the three denoising passes, the warp grid
 * and warped latents, the DDPM forward, the decoder input/output and the frames. An output the run
 * does not produce fails its row.
 */
import { ConfigError } from "../../errors.js";
import { AutoencoderKL } from "../../models/vae/autoencoder-kl.js";
import type { UNet2DConditionModelRunner } from "../../models/unet/runner.js";
import { UNet2DConditionModel } from "../../models/unet/unet-2d-condition.js";
import { textToVideoZero } from "../../pipeline/text2video-zero.js";
import { TorchGenerator } from "../../random/torch-generator.js";
import { fromConfig } from "../../schedulers/registry.js";
import type { NoiseGenerator } from "../../schedulers/scheduler.js";
import { toFloat32, type HostTensor } from "../../tensor.js";
import { compareTensors, failedRow } from "../compare.js";
import type { ConformanceRow, FixtureContext, FixtureKind } from "../types.js";
import { crossFrameBatchSize } from "./cross-frame-attn.js";
import {
  callNumber,
  callSeed,
  caseRecord,
  defaultSize,
  fixtureScheduler,
  isRecord,
  outputNames,
  readModelCase,
  signalOption,
  weightsPath,
} from "./model-fixture.js";

/** A generator that hands every draw to `record` as it passes through. */
function recordingGenerator(
  inner: NoiseGenerator,
  record: (index: number, value: HostTensor) => void,
): NoiseGenerator {
  let index = 0;
  return {
    randn(shape) {
      const value = inner.randn(shape);
      record(index++, value);
      return value;
    },
  };
}

export async function runPipelineT2vZeroFixture(ctx: FixtureContext): Promise<ConformanceRow[]> {
  const mc = await readModelCase(ctx, "pipeline_t2v_zero");
  const file = mc.file;
  const call = caseRecord(ctx.caseJson["call"], file, "call");
  const scheduler = await fixtureScheduler(ctx);
  const seed = callSeed(call);
  if (seed === undefined)
    throw new ConfigError(file, "call.generator_seed", "the seed of the CPU generator", call["generator"]);
  const reference = isRecord(ctx.caseJson["reference"]) ? ctx.caseJson["reference"] : {};
  const processor = reference["attention_processor"];
  const batchSize = (typeof processor === "string" ? crossFrameBatchSize(processor) : null) ?? 2;
  const perPrompt = call["num_videos_per_prompt"];
  if (perPrompt !== undefined && perPrompt !== null && perPrompt !== 1) {
    return [
      failedRow(mc.fixture, "-", `num_videos_per_prompt ${String(perPrompt)} is not supported (1 video)`),
    ];
  }
  const embeds = (name: string): HostTensor<"float32"> => {
    const t = mc.inputs.get(name);
    if (t === undefined) throw new ConfigError(file, `inputs_file.tensors.${name}`, "a tensor", undefined);
    return toFloat32(t);
  };
  const latents = call["latents"] === null || call["latents"] === undefined ? undefined : embeds("latents");
  const frameIds = call["frame_ids"];
  if (frameIds !== null && frameIds !== undefined && !Array.isArray(frameIds))
    throw new ConfigError(file, "call.frame_ids", "null or a list of frame indices", frameIds);

  const traced = new Map<string, HostTensor>();
  const generator = recordingGenerator(new TorchGenerator(seed), (i, value) =>
    traced.set(`rng.draw${String(i).padStart(2, "0")}`, value),
  );
  const vae = await AutoencoderKL.load(weightsPath(ctx, "vae", false), signalOption(ctx));
  let unet: UNet2DConditionModelRunner | undefined;
  try {
    unet = await UNet2DConditionModel.load(weightsPath(ctx, "unet", false), {
      crossFrame: { batchSize, mode: "first" },
      ...signalOption(ctx),
    });
    const result = await textToVideoZero(
      {
        unet,
        vae,
        scheduler: fromConfig(scheduler.className, scheduler.config),
        vaeScaleFactor: vae.downsampleFactor,
        latentChannels: unet.config.in_channels,
      },
      {
        promptEmbeds: embeds("prompt_embeds"),
        negativePromptEmbeds: embeds("negative_prompt_embeds"),
        videoLength: callNumber(call, file, "video_length"),
        width: callNumber(call, file, "width", defaultSize(unet, vae)),
        height: callNumber(call, file, "height", defaultSize(unet, vae)),
        numInferenceSteps: callNumber(call, file, "num_inference_steps"),
        guidanceScale: callNumber(call, file, "guidance_scale"),
        eta: callNumber(call, file, "eta", 0),
        generator,
        ...(latents === undefined ? {} : { latents }),
        motionFieldStrengthX: callNumber(call, file, "motion_field_strength_x"),
        motionFieldStrengthY: callNumber(call, file, "motion_field_strength_y"),
        t0: callNumber(call, file, "t0"),
        t1: callNumber(call, file, "t1"),
        ...(Array.isArray(frameIds) ? { frameIds: frameIds.map(Number) } : {}),
        ...signalOption(ctx),
        trace: (name, value) => traced.set(name, value),
      },
    );
    // output_type "latent": the pipeline returns the final latents [F, C, h, w] instead of the
    // decoded frames; any other value decodes to numpy [F, H, W, 3] (0.26.3's decode_latents)
    if (call["output_type"] === "latent") traced.set("frames", result.latents);
  } finally {
    await unet?.release();
    await vae.release();
  }
  return outputNames(ctx, mc.outputs).map((name) => {
    const expected = mc.outputs.get(name);
    if (expected === undefined)
      return failedRow(mc.fixture, name, "listed in case.json but not in the outputs file");
    const actual = traced.get(name);
    if (actual === undefined) return failedRow(mc.fixture, name, "not produced by the pipeline");
    const exact = expected.dtype === "int64" || expected.dtype === "int32";
    return compareTensors(mc.fixture, name, actual, expected, exact ? 0 : mc.tolerance);
  });
}

export const pipelineT2vZeroKind: FixtureKind = {
  kind: "pipeline_t2v_zero",
  description: "end-to-end TextToVideoZeroPipeline (Text2Video-Zero), compared draw by draw and step by step",
  run: (ctx) => runPipelineT2vZeroFixture(ctx),
};
