/**
 * Fixture kinds `pipeline_animatediff` (diffusers 0.26.3 AnimateDiffPipeline) and
 * `pipeline_animatediff_v2v` (AnimateDiffVideoToVideoPipeline): end-to-end runs of
 * src/pipeline/animatediff.ts on the weights case.json names (`weights.unet` a UNet2DConditionModel
 * folder, `weights.motion_adapter` a MotionAdapter folder, `weights.vae` an AutoencoderKL folder, all
 * relative to the fixture), with the scheduler of `scheduler` (`class` + `config`, or `config_dir`)
 * and the call of `call` (prompt embeddings and video frames name inputs-file tensors as
 * `inputs.<name>`). Every tensor of the outputs file (every random draw, each step's model input, UNet
 * halves and latents, the decoder input/output, the video) is compared step by step; an output the
 * pipeline does not produce fails its row.
 */
import { resolve } from "node:path";
import { ConfigError } from "../../errors.js";
import { pillowResize } from "../../image.js";
import { image } from "../../image.js";
import { UNetMotionModel } from "../../models/motion/unet-motion-model.js";
import { AutoencoderKL } from "../../models/vae/autoencoder-kl.js";
import {
  type AnimateDiffCommonOptions,
  type AnimateDiffResult,
  textToVideo,
  videoTensor,
  videoToVideo,
} from "../../pipeline/animatediff.js";
import { toChannelsLast } from "../../pipeline/images.js";
import { fromConfig } from "../../schedulers/registry.js";
import { type HostTensor, tensor, toFloat32 } from "../../tensor.js";
import { compareTensors, failedRow } from "../compare.js";
import type { ConformanceRow, FixtureContext, FixtureKind } from "../types.js";
import {
  callSeed,
  caseFile,
  defaultSize,
  errorNote,
  fixtureName,
  fixtureScheduler,
  isRecord,
  outputNames,
  readModelCase,
  refusedCallSettings,
} from "./model-fixture.js";

type Mode = "text-to-video" | "video-to-video";

function record(ctx: FixtureContext, field: string): Record<string, unknown> {
  const value = ctx.caseJson[field];
  if (!isRecord(value)) throw new ConfigError(caseFile(ctx), field, "an object", value);
  return value;
}

function path(ctx: FixtureContext, role: string): string {
  const weights = record(ctx, "weights");
  const rel = weights[role];
  if (typeof rel !== "string")
    throw new ConfigError(caseFile(ctx), `weights.${role}`, "a path relative to the fixture", rel);
  return resolve(ctx.dir, rel);
}

function num(ctx: FixtureContext, call: Record<string, unknown>, key: string, fallback?: number): number {
  const v = call[key];
  if (typeof v === "number") return v;
  if ((v === null || v === undefined) && fallback !== undefined) return fallback;
  throw new ConfigError(caseFile(ctx), `call.${key}`, "a number", v);
}

/** The inputs-file tensor a call field names ("inputs.prompt_embeds [1,77,D]"), or undefined for null. */
function namedInput(
  ctx: FixtureContext,
  call: Record<string, unknown>,
  key: string,
  inputs: ReadonlyMap<string, HostTensor>,
): HostTensor | undefined {
  const v = call[key];
  if (v === null || v === undefined) return undefined;
  const name = typeof v === "string" ? /inputs\.(\w+)/.exec(v)?.[1] : undefined;
  const t = name === undefined ? undefined : inputs.get(name);
  if (t === undefined) {
    throw new ConfigError(caseFile(ctx), `call.${key}`, "null or `inputs.<tensor of the inputs file>`", v);
  }
  return t;
}

/**
 * uint8 [F, H, W, 3] -> [F, 3, height, width] in [-1, 1]: the video pipeline's preprocessing of PIL
 * frames (VaeImageProcessor: the size rounded down to a multiple of the VAE factor, a PIL lanczos
 * resize where the frames differ from it, then [-1, 1]).
 */
function uint8Video(
  ctx: FixtureContext,
  t: HostTensor,
  width: number,
  height: number,
  vaeFactor: number,
): HostTensor<"float32"> {
  const [f = 0, h = 0, w = 0, c = 0] = t.shape;
  if (t.dtype !== "uint8" || t.shape.length !== 4 || c !== 3) {
    throw new ConfigError(caseFile(ctx), "call.video", "uint8 frames [F, H, W, 3]", t.shape);
  }
  const [tw, th] = [width - (width % vaeFactor), height - (height % vaeFactor)];
  const data = t.data as Uint8Array;
  const size = h * w * 3;
  return videoTensor(
    Array.from({ length: f }, (_, i) =>
      pillowResize(image(w, h, 3, data.slice(i * size, (i + 1) * size)), tw, th, "lanczos"),
    ),
  );
}

/** The name of the pipeline's output in the fixtures: `frames` (text-to-video), `video` (video-to-video). */
const OUTPUT_NAME: Readonly<Record<Mode, string>> = { "text-to-video": "frames", "video-to-video": "video" };

/**
 * What diffusers 0.26.3 returns as `.frames` for `output_type`: "latent" the final latents
 * [1, C, F, h, w]; "np" [1, F, H, W, 3] in [0, 1]; "pt" [1, F, 3, H, W] in [0, 1] from
 * AnimateDiffPipeline, but the decoder output [1, 3, F, H, W] as it is from the video-to-video one.
 */
function pipelineOutput(mode: Mode, outputType: "pt" | "np" | "latent", r: AnimateDiffResult): HostTensor {
  if (outputType === "latent") return r.latents;
  if (outputType === "pt") return mode === "text-to-video" ? r.frames : r.video;
  const [b = 1, f = 0, c = 0, h = 0, w = 0] = r.frames.shape;
  const hwc = toChannelsLast(tensor("float32", [b * f, c, h, w], r.frames.data));
  return tensor("float32", [b, f, h, w, c], hwc.data);
}

async function runAnimateDiffFixture(ctx: FixtureContext, mode: Mode): Promise<ConformanceRow[]> {
  const mc = await readModelCase(
    ctx,
    mode === "text-to-video" ? "pipeline_animatediff" : "pipeline_animatediff_v2v",
  );
  const fixture = fixtureName(ctx, mc.fixture);
  const call = record(ctx, "call");
  // num_videos_per_prompt is not read: diffusers 0.26.3's AnimateDiff pipelines set it to 1 in
  // __call__ whatever the call passes.
  const outputType = call["output_type"] ?? "pt";
  if (outputType !== "pt" && outputType !== "np" && outputType !== "latent") {
    return [
      failedRow(
        fixture,
        "-",
        `output_type ${String(outputType)}: only "pt", "np" and "latent" give a tensor`,
      ),
    ];
  }
  const refused = refusedCallSettings(fixture, call, {
    timesteps: (v) => v === null,
    ip_adapter_image: (v) => v === null,
    cross_attention_kwargs: (v) => v === null,
  });
  if (refused.length > 0) return refused;
  const promptEmbeds = namedInput(ctx, call, "prompt_embeds", mc.inputs);
  const negativeEmbeds = namedInput(ctx, call, "negative_prompt_embeds", mc.inputs);
  const latents = namedInput(ctx, call, "latents", mc.inputs);
  const prompt = call["prompt"];
  const negativePrompt = call["negative_prompt"];
  const seed = callSeed(call);
  const { className, config } = await fixtureScheduler(ctx);

  const traced = new Map<string, HostTensor>();
  let failure: ConformanceRow | undefined;
  const loadOptions = ctx.signal ? { signal: ctx.signal } : {};
  const unet = await UNetMotionModel.load(
    { unet: path(ctx, "unet"), motionAdapter: path(ctx, "motion_adapter") },
    loadOptions,
  );
  try {
    const vae = await AutoencoderKL.load(path(ctx, "vae"), loadOptions);
    try {
      const components = {
        unet,
        vae,
        scheduler: fromConfig(className, config),
        vaeScaleFactor: vae.downsampleFactor,
        latentChannels: unet.unetConfig.in_channels,
      };
      const common: AnimateDiffCommonOptions = {
        ...(typeof prompt === "string" ? { prompt } : {}),
        ...(typeof negativePrompt === "string" ? { negativePrompt } : {}),
        ...(promptEmbeds ? { promptEmbeds: toFloat32(promptEmbeds) } : {}),
        ...(negativeEmbeds ? { negativePromptEmbeds: toFloat32(negativeEmbeds) } : {}),
        numInferenceSteps: num(ctx, call, "num_inference_steps"),
        guidanceScale: num(ctx, call, "guidance_scale"),
        eta: num(ctx, call, "eta", 0),
        ...(seed === undefined ? {} : { seed }),
        ...(ctx.signal ? { signal: ctx.signal } : {}),
        trace: (name, value) => traced.set(name, value),
      };
      // null height / width: the pipelines' unet.config.sample_size * vae_scale_factor
      const size = defaultSize({ config: unet.unetConfig }, vae);
      const width = num(ctx, call, "width", size);
      const height = num(ctx, call, "height", size);
      let result: AnimateDiffResult;
      if (mode === "text-to-video") {
        result = await textToVideo(components, {
          ...common,
          numFrames: num(ctx, call, "num_frames"),
          width,
          height,
          ...(latents ? { latents: toFloat32(latents) } : {}),
        });
      } else if (latents) {
        // Given latents are denoised as they are; the video is not read.
        result = await videoToVideo(components, {
          ...common,
          latents: toFloat32(latents),
          strength: num(ctx, call, "strength"),
        });
      } else {
        const video = namedInput(ctx, call, "video", mc.inputs);
        if (video === undefined) throw new ConfigError(caseFile(ctx), "call.video", "inputs.<frames>", video);
        result = await videoToVideo(components, {
          ...common,
          video: uint8Video(ctx, video, width, height, vae.downsampleFactor),
          strength: num(ctx, call, "strength"),
        });
      }
      traced.set(OUTPUT_NAME[mode], pipelineOutput(mode, outputType, result));
    } finally {
      await vae.release();
    }
  } catch (error) {
    // Still compare what was traced before the failure: the rows show where it stopped.
    failure = failedRow(fixture, "-", errorNote(error));
  } finally {
    await unet.release();
  }
  const rows = outputNames(ctx, mc.outputs).map((name) => {
    const expected = mc.outputs.get(name);
    const actual = traced.get(name);
    if (expected === undefined)
      return failedRow(fixture, name, "listed in case.json but not in the outputs file");
    if (actual === undefined) return failedRow(fixture, name, "not produced by the pipeline");
    const tol = expected.dtype === "int64" ? 0 : expected.dtype === "uint8" ? 1 : mc.tolerance;
    return compareTensors(fixture, name, actual, expected, tol);
  });
  return failure ? [failure, ...rows] : rows;
}

export const pipelineAnimatediffKind: FixtureKind = {
  kind: "pipeline_animatediff",
  description: "end-to-end AnimateDiffPipeline (text-to-video with motion modules), compared step by step",
  run: (ctx) => runAnimateDiffFixture(ctx, "text-to-video"),
};

export const pipelineAnimatediffV2vKind: FixtureKind = {
  kind: "pipeline_animatediff_v2v",
  description: "end-to-end AnimateDiffVideoToVideoPipeline (strength < 1), compared step by step",
  run: (ctx) => runAnimateDiffFixture(ctx, "video-to-video"),
};
