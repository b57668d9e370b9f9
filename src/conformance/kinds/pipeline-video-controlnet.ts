/**
 * Fixture kind `pipeline_video_controlnet`: Text2Video-Zero's ControlNet video recipe (diffusers
 * `StableDiffusionControlNetPipeline` with `CrossFrameAttnProcessor(batch_size=2)` on the UNet and the
 * ControlNet, one initial latent for every frame, per-frame control images) run through the video
 * engine (src/engine/generate-video.ts) with the `attention:first` method and all frames in one batch.
 * Prompt embeddings, latents and control images come from the fixture; every tensor of the outputs
 * file is compared (an output the run does not produce fails its row).
 */
import { ConfigError } from "../../errors.js";
import { generateVideo } from "../../engine/generate-video.js";
import { MemoryFrameStore } from "../../engine/frame-store.js";
import type { VideoMethod } from "../../engine/method.js";
import { firstFrameAttention } from "../../engine/methods/attention-first.js";
import { image, type Image } from "../../image.js";
import { ControlNetModel } from "../../models/controlnet/index.js";
import type { ControlNetModelRunner } from "../../models/controlnet/runner.js";
import type { UNet2DConditionModelRunner } from "../../models/unet/runner.js";
import { UNet2DConditionModel } from "../../models/unet/unet-2d-condition.js";
import { AutoencoderKL } from "../../models/vae/autoencoder-kl.js";
import { chunkBatch, concatBatch } from "../../pipeline/guidance.js";
import { toChannelsLast } from "../../pipeline/images.js";
import { TorchGenerator } from "../../random/torch-generator.js";
import { fromConfig } from "../../schedulers/registry.js";
import { tensor, toFloat32, type HostTensor } from "../../tensor.js";
import { compareTensors, failedRow } from "../compare.js";
import type { ConformanceRow, FixtureContext, FixtureKind } from "../types.js";
import { crossFrameBatchSize } from "./cross-frame-attn.js";
import {
  callNumber,
  callSeed,
  caseRecord,
  refusedCallSettings,
  fixtureScheduler,
  isRecord,
  outputNames,
  readModelCase,
  signalOption,
  weightsPath,
} from "./model-fixture.js";

/** [F, H, W, 3] uint8 -> F images. */
function uint8Frames(t: HostTensor, file: string): Image[] {
  const [f = 0, h = 0, w = 0, c = 0] = t.shape;
  if (t.dtype !== "uint8" || c !== 3 || t.shape.length !== 4)
    throw new ConfigError(file, "inputs.control_image_uint8", "uint8 [F, H, W, 3]", t.shape);
  const data = t.data as Uint8Array;
  return Array.from({ length: f }, (_, i) => image(w, h, 3, data.slice(i * h * w * 3, (i + 1) * h * w * 3)));
}

/** [F, 3, H, W] in [0, 1] -> [F, H, W, 3] uint8 as diffusers' `numpy_to_pil` rounds (x * 255).round(). */
function toUint8Hwc(t: HostTensor<"float32">): HostTensor<"uint8"> {
  const [f = 0, c = 0, h = 0, w = 0] = t.shape;
  const out = new Uint8Array(f * h * w * c);
  for (let n = 0; n < f; n++)
    for (let ch = 0; ch < c; ch++)
      for (let k = 0; k < h * w; k++)
        out[(n * h * w + k) * c + ch] = Math.round(
          Math.fround((t.data[(n * c + ch) * h * w + k] ?? 0) * 255),
        );
  return tensor("uint8", [f, h, w, c], out);
}

export async function runPipelineVideoControlnetFixture(ctx: FixtureContext): Promise<ConformanceRow[]> {
  const mc = await readModelCase(ctx, "pipeline_video_controlnet");
  const file = mc.file;
  const call = caseRecord(ctx.caseJson["call"], file, "call");
  const reference = isRecord(ctx.caseJson["reference"]) ? ctx.caseJson["reference"] : {};
  const processor = reference["attention_processor"];
  const videos = (typeof processor === "string" ? crossFrameBatchSize(processor) : null) ?? 2;
  const refused = refusedCallSettings(mc.fixture, call, {
    num_images_per_prompt: (v) => v === 1,
    timesteps: (v) => v === null,
    ip_adapter_image: (v) => v === null,
    cross_attention_kwargs: (v) => v === null,
  });
  if (refused.length > 0) return refused;
  const guessMode = call["guess_mode"] === true;
  const input = (name: string): HostTensor => {
    const t = mc.inputs.get(name);
    if (t === undefined) throw new ConfigError(file, `inputs_file.tensors.${name}`, "a tensor", undefined);
    return t;
  };
  const frames = callNumber(call, file, "num_frames");
  const controls = uint8Frames(input("control_image_uint8"), file);
  const { className, config: schedulerConfig } = await fixtureScheduler(ctx);
  const eta = callNumber(call, file, "eta", 0);
  const guidance = callNumber(call, file, "guidance_scale");
  // The call's one CPU generator: the initial latents when none are given ([F, C, h, w] in one
  // draw), then every step's noise for the whole batch (eta > 0).
  const seed = callSeed(call);
  const generator = seed === undefined ? undefined : new TorchGenerator(seed);
  const latentsGiven = call["latents"] !== null && call["latents"] !== undefined;
  if (generator === undefined && (eta > 0 || !latentsGiven))
    return [
      failedRow(
        mc.fixture,
        "-",
        `${eta > 0 ? "eta > 0" : "no latents"} without call.generator: the reference drew from torch's global generator, which the fixture does not record`,
      ),
    ];
  let latents: HostTensor<"float32">[] | undefined;
  if (latentsGiven) {
    const given = toFloat32(input("latents"));
    const n = given.shape[0];
    if (n !== 1 && n !== frames)
      throw new ConfigError(file, "inputs.latents", `[1 or ${frames} (num_frames), C, h, w]`, given.shape);
    latents = n === 1 ? Array<HostTensor<"float32">>(frames).fill(given) : chunkBatch(given, frames);
  }

  // The fixture's inputs as methods: its latents (or the generator's draw) as the initial noise, its
  // control images as the maps.
  const given: VideoMethod = {
    id: "noise:given",
    role: "noise",
    initialNoise: (c, own) => {
      latents ??= chunkBatch(generator!.randn([frames, ...own.shape.slice(1)]), frames);
      return Promise.resolve(latents[c.index]!);
    },
    ...(generator ? { stepNoise: () => generator } : {}),
  };
  const givenControls: VideoMethod = {
    id: "controls:given",
    role: "controls",
    controlImages: (c) => Promise.resolve([controls[c.index]!]),
  };

  const traced = new Map<string, HostTensor>();
  const crossFrame = { batchSize: videos, mode: "first" as const };
  const vae = await AutoencoderKL.load(weightsPath(ctx, "vae", false), signalOption(ctx));
  let unet: UNet2DConditionModelRunner | undefined;
  let controlnet: ControlNetModelRunner | undefined;
  try {
    unet = await UNet2DConditionModel.load(weightsPath(ctx, "unet", false), {
      crossFrame,
      residuals: true,
      ...signalOption(ctx),
    });
    controlnet = await ControlNetModel.load(weightsPath(ctx, "controlnet", false), {
      crossFrame,
      guessMode,
      ...signalOption(ctx),
    });
    await generateVideo(
      {
        tokenizer: { tokenize: () => tensor("int64", [0, 77]) },
        textEncoder: { encode: () => Promise.reject(new Error("the fixture gives embeddings")) },
        unet,
        controlnets: [controlnet],
        vae: { scalingFactor: vae.scalingFactor, decode: (z) => vae.decode(z) },
        makeScheduler: () => fromConfig(className, schedulerConfig),
        vaeScaleFactor: vae.downsampleFactor,
        latentChannels: unet.config.in_channels,
      },
      {
        prompt: "",
        promptEmbeds: {
          cond: toFloat32(input("prompt_embeds")),
          uncond: toFloat32(input("negative_prompt_embeds")),
        },
        width: callNumber(call, file, "width"),
        height: callNumber(call, file, "height"),
        frames,
        numInferenceSteps: callNumber(call, file, "num_inference_steps"),
        guidanceScale: guidance,
        eta,
        methods: [given, givenControls, firstFrameAttention(videos)],
        guessMode,
        batch: frames,
        controls: [
          {
            scale: callNumber(call, file, "controlnet_conditioning_scale", 1),
            guidanceStart: callNumber(call, file, "control_guidance_start", 0),
            guidanceEnd: callNumber(call, file, "control_guidance_end", 1),
          },
        ],
        store: new MemoryFrameStore(),
        ...signalOption(ctx),
        trace: (name, value) => traced.set(name.replace(/^b0\./, ""), value),
      },
    );
  } finally {
    await unet?.release();
    await controlnet?.release();
    await vae.release();
  }
  // Names of the fixture: the cond half of the mid residual, the decoder tensors over all frames.
  for (const [name, value] of [...traced]) {
    const m = /^(step\d+)\.controlnet\.mid_block_res_sample$/.exec(name);
    if (m)
      traced.set(
        `${m[1]}.controlnet.mid_block_res_sample_cond`,
        guidance > 1 ? chunkBatch(value as HostTensor<"float32">, 2)[1]! : value,
      );
  }
  const stack = (part: string): HostTensor<"float32"> | undefined => {
    const parts = Array.from({ length: frames }, (_, i) => traced.get(`frame${i}.${part}`));
    return parts.every((p) => p !== undefined) ? concatBatch(parts as HostTensor<"float32">[]) : undefined;
  };
  for (const [name, part] of [
    ["vae_decode.input", "vae_decode.input"],
    ["vae_decode.output", "vae_decode.output"],
    ["image", "image"],
  ] as const) {
    const t = stack(part);
    if (t) traced.set(name, t);
  }
  const pixels = traced.get("image");
  if (pixels) traced.set("image_uint8", toUint8Hwc(pixels as HostTensor<"float32">));
  // output_type "np" / "pil": the reference's `image` is channels-last [F, H, W, 3]
  const wanted = mc.outputs.get("image");
  if (pixels && wanted?.shape.length === 4 && wanted.shape[3] === 3 && pixels.shape[1] === 3)
    traced.set("image", toChannelsLast(pixels as HostTensor<"float32">));
  // output_type "latent": the pipeline skips the decoder and returns the final latents [F, C, h, w]
  const finalLatents = stack("latents");
  if (call["output_type"] === "latent" && finalLatents) traced.set("image", finalLatents);

  return outputNames(ctx, mc.outputs).map((name) => {
    const expected = mc.outputs.get(name);
    if (expected === undefined)
      return failedRow(mc.fixture, name, "listed in case.json but not in the outputs file");
    const actual = traced.get(name);
    if (actual === undefined) return failedRow(mc.fixture, name, "not produced by the engine");
    const integer = expected.dtype === "int64" || expected.dtype === "int32";
    if (expected.dtype === "uint8")
      return compareTensors(mc.fixture, name, toFloat32(actual), toFloat32(expected), 1);
    return compareTensors(mc.fixture, name, actual, expected, integer ? 0 : mc.tolerance);
  });
}

export const pipelineVideoControlnetKind: FixtureKind = {
  kind: "pipeline_video_controlnet",
  description:
    "Text2Video-Zero ControlNet video (cross-frame attention, shared latent) through the video engine",
  run: (ctx) => runPipelineVideoControlnetFixture(ctx),
};
