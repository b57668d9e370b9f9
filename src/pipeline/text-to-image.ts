/**
 * Text-to-image with optional ControlNets: the algorithm of diffusers 0.26.3
 * StableDiffusionControlNetPipeline / StableDiffusionPipeline (src/diffusers/pipelines/controlnet/
 * pipeline_controlnet.py), as numbered steps over the component interfaces in ./types.ts. A UNet
 * with time_cond_proj_dim (LCM-distilled) runs without classifier-free guidance: the guidance scale
 * enters as `get_guidance_scale_embedding(guidance_scale - 1)` (timestep_cond), as diffusers'
 * StableDiffusionPipeline and LatentConsistencyModelPipeline do.
 */
import { InvalidArgumentError, throwIfAborted } from "../errors.js";
import type { LongTaskOptions } from "../progress.js";
import { TorchGenerator } from "../random/torch-generator.js";
import type { NoiseGenerator, Scheduler } from "../schedulers/scheduler.js";
import { shapeToString, type HostTensor } from "../tensor.js";
import { guidanceMode, predictNoise } from "./denoise.js";
import { concatBatch, scale } from "./guidance.js";
import {
  checkStrength,
  img2imgTimesteps,
  noiseLatentsTo,
  toSignedRange,
  type LatentEncoder,
} from "./img2img.js";
import { denormalize } from "./images.js";
import type { ControlNet, DenoisingUNet, LatentDecoder, PromptTokenizer, TextEncoder } from "./types.js";

export interface TextToImageComponents {
  readonly tokenizer: PromptTokenizer;
  readonly textEncoder: TextEncoder;
  readonly unet: DenoisingUNet;
  readonly vae: LatentDecoder;
  /** A fresh scheduler for this run (schedulers hold per-run state). */
  readonly scheduler: Scheduler;
  /** 2 ** (len(vae block_out_channels) - 1): 8 for SD. */
  readonly vaeScaleFactor: number;
  /** UNet in_channels (4 for SD). */
  readonly latentChannels: number;
  /** (optional) the VAE encoder; needed for img2img (`initImage`). */
  readonly encoder?: LatentEncoder;
}

/** One ControlNet with its control image and schedule. */
export interface ControlUnit {
  readonly controlnet: ControlNet;
  /** [1, 3, height, width] in [0, 1] (see images.ts imageToTensor(img, "0,1")). */
  readonly image: HostTensor<"float32">;
  /** (optional, default 1) controlnet_conditioning_scale. */
  readonly scale?: number;
  /** (optional, default 0) fraction of the steps after which the net starts acting. */
  readonly guidanceStart?: number;
  /** (optional, default 1) fraction of the steps after which it stops. */
  readonly guidanceEnd?: number;
}

export interface TextToImageOptions extends LongTaskOptions {
  readonly prompt: string;
  /** (optional, default "") the negative prompt (used when guidanceScale > 1). */
  readonly negativePrompt?: string;
  readonly width: number;
  readonly height: number;
  /** (optional, default 50) */
  readonly numInferenceSteps?: number;
  /** (optional, default 7.5) classifier-free guidance scale; <= 1 disables guidance. */
  readonly guidanceScale?: number;
  /** (optional) seed for torch-compatible noise (torch.Generator().manual_seed(seed)). */
  readonly seed?: number | bigint;
  /** (optional) a generator to draw the initial and step noise from (wins over seed). */
  readonly generator?: NoiseGenerator;
  /** (optional) initial latents [1, C, h, w] before scaling by init_noise_sigma (wins over seed). */
  readonly latents?: HostTensor<"float32">;
  /** (optional, default 0) DDIM eta. */
  readonly eta?: number;
  /** (optional) ControlNets; their residuals are summed. */
  readonly controls?: readonly ControlUnit[];
  /** (optional, default false) ControlNet guess mode: the nets see only the conditional batch. */
  readonly guessMode?: boolean;
  /** (optional) diffusers clip_skip. */
  readonly clipSkip?: number;
  /** (optional) img2img: the start image [1, 3, height, width] in [0, 1] (needs the VAE encoder). */
  readonly initImage?: HostTensor<"float32">;
  /** (optional, default 0.8) img2img strength: the fraction of the schedule that is run (diffusers). */
  readonly strength?: number;
  /** (optional) receives named intermediate tensors (prompt_embeds, stepNN.latents_out, ...). */
  readonly trace?: (name: string, value: HostTensor) => void;
  /**
   * (optional) precomputed embeddings [1, L, C] instead of encoding `prompt`/`negativePrompt` (e.g.
   * A1111 weighted prompts, ./prompt-weighting.ts); `uncond` is needed with guidance, of cond's shape.
   */
  readonly promptEmbeds?: { readonly cond: HostTensor<"float32">; readonly uncond?: HostTensor<"float32"> };
}

export interface TextToImageResult {
  /** [1, 3, H, W] in [0, 1]. */
  readonly image: HostTensor<"float32">;
  readonly latents: HostTensor<"float32">;
}

function checkInputs(c: TextToImageComponents, o: TextToImageOptions): void {
  for (const [name, value] of [
    ["width", o.width],
    ["height", o.height],
  ] as const) {
    // diffusers' check_inputs asks for multiples of 8 whatever the VAE (and the VAE needs its own factor).
    const step = Math.max(8, c.vaeScaleFactor);
    if (!Number.isInteger(value) || value <= 0 || value % step !== 0) {
      throw new InvalidArgumentError(name, `a positive multiple of ${step}`, value);
    }
  }
  const steps = o.numInferenceSteps ?? 50;
  if (!Number.isInteger(steps) || steps < 1)
    throw new InvalidArgumentError("numInferenceSteps", "a positive integer", steps);
  for (const [i, unit] of (o.controls ?? []).entries()) {
    const expected = [1, 3, o.height, o.width];
    if (unit.image.shape.join() !== expected.join()) {
      throw new InvalidArgumentError(
        `controls[${i}].image`,
        `shape ${shapeToString(expected)}`,
        shapeToString(unit.image.shape),
        {
          hint: "resize the control image to the output size",
        },
      );
    }
    const start = unit.guidanceStart ?? 0;
    const end = unit.guidanceEnd ?? 1;
    if (!(start >= 0 && start < end && end <= 1)) {
      throw new InvalidArgumentError(`controls[${i}].guidanceStart/End`, "0 <= start < end <= 1", [
        start,
        end,
      ]);
    }
  }
  if (o.initImage) {
    const expected = [1, 3, o.height, o.width];
    if (o.initImage.shape.join() !== expected.join()) {
      throw new InvalidArgumentError(
        "initImage",
        `shape ${shapeToString(expected)}`,
        shapeToString(o.initImage.shape),
        {
          hint: "resize the start image to the output size",
        },
      );
    }
    if (!c.encoder) throw new InvalidArgumentError("initImage", "a pipeline with a VAE encoder", "none");
    checkStrength(o.strength ?? 0.8);
  }
  const h = o.height / c.vaeScaleFactor;
  const w = o.width / c.vaeScaleFactor;
  if (o.latents && o.latents.shape.join() !== [1, c.latentChannels, h, w].join()) {
    throw new InvalidArgumentError(
      "latents",
      `shape ${shapeToString([1, c.latentChannels, h, w])}`,
      shapeToString(o.latents.shape),
    );
  }
}

/** The caller's embeddings as the UNet batch: [uncond; cond] with guidance, else cond. */
function givenEmbeds(
  e: NonNullable<TextToImageOptions["promptEmbeds"]>,
  cfg: boolean,
): HostTensor<"float32"> {
  if (!cfg) return e.cond;
  if (!e.uncond || e.uncond.shape.join() !== e.cond.shape.join()) {
    throw new InvalidArgumentError(
      "promptEmbeds.uncond",
      `unconditional embeddings of shape ${shapeToString(e.cond.shape)} (guidance > 1)`,
      e.uncond ? shapeToString(e.uncond.shape) : undefined,
    );
  }
  return concatBatch([e.uncond, e.cond]);
}

export async function textToImage(
  c: TextToImageComponents,
  o: TextToImageOptions,
): Promise<TextToImageResult> {
  const task = "denoising";
  const trace = o.trace ?? (() => undefined);
  // 1. Check inputs
  checkInputs(c, o);
  const steps = o.numInferenceSteps ?? 50;
  const guidance = o.guidanceScale ?? 7.5;
  const { cfg, timestepCond } = guidanceMode(c.unet, guidance);
  const controls = o.controls ?? [];
  const guessMode = o.guessMode === true;
  const generator = o.generator ?? new TorchGenerator(o.seed ?? 0);

  // 2. Encode the prompt: [uncond, cond] for guidance (or take the caller's embeddings)
  const clip = o.clipSkip === undefined ? undefined : { clipSkip: o.clipSkip };
  const promptEmbeds = o.promptEmbeds
    ? givenEmbeds(o.promptEmbeds, cfg)
    : await c.textEncoder.encode(
        c.tokenizer.tokenize(cfg ? [o.negativePrompt ?? "", o.prompt] : [o.prompt]),
        clip,
      );
  trace("prompt_embeds", promptEmbeds);

  // 3. Timesteps (img2img keeps the last `strength` part of the schedule)
  c.scheduler.setTimesteps(steps);
  const initImage = o.initImage;
  const timesteps = initImage
    ? img2imgTimesteps(c.scheduler, steps, o.strength ?? 0.8)
    : c.scheduler.timesteps;

  // 4. Initial latents: noise, or the encoded init image noised to the first kept timestep
  const h = o.height / c.vaeScaleFactor;
  const w = o.width / c.vaeScaleFactor;
  let latents: HostTensor<"float32">;
  if (initImage && c.encoder) {
    const first = timesteps[0];
    const clean = await c.encoder.encode(toSignedRange(initImage), generator);
    latents = first === undefined ? clean : noiseLatentsTo(c.scheduler, clean, first, generator);
  } else {
    latents = scale(o.latents ?? generator.randn([1, c.latentChannels, h, w]), c.scheduler.initNoiseSigma);
  }

  // 5. Denoising loop
  o.onProgress?.({ status: "start", task, total: timesteps.length });
  for (const [i, t] of timesteps.entries()) {
    throwIfAborted(o.signal, task);
    const tag = `step${String(i).padStart(2, "0")}`;
    const { noisePred: guided } = await predictNoise({
      unet: c.unet,
      scheduler: c.scheduler,
      latents,
      t,
      stepIndex: i,
      numSteps: timesteps.length,
      promptEmbeds,
      guidanceScale: cfg ? guidance : 1,
      ...(timestepCond ? { timestepCond } : {}),
      controls: controls.map((u) => ({ ...u, images: u.image })),
      guessMode,
      trace,
      tag,
    });
    trace(`${tag}.latents_in`, latents);
    latents = c.scheduler.step(guided, t, latents, {
      generator,
      ...(o.eta === undefined ? {} : { eta: o.eta }),
    }).prevSample;
    trace(`${tag}.latents_out`, latents);
    o.onProgress?.({ status: "progress", task, done: i + 1, total: timesteps.length });
  }
  o.onProgress?.({ status: "done", task });

  // 6. Decode
  throwIfAborted(o.signal, task);
  trace("final_latents", latents);
  const decoderInput = scale(latents, 1 / c.vae.scalingFactor);
  trace("vae_decode.input", decoderInput);
  const raw = await c.vae.decode(decoderInput);
  trace("vae_decode.output", raw);
  const image = denormalize(raw);
  trace("image", image);
  return { image, latents };
}
