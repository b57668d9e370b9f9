/**
 * Full-size SD-1.5 components with random weights for the pipeline benchmark: configs as in the
 * runwayml/stable-diffusion-v1-5 folders (text_encoder, vae, scheduler; the UNet is unet.ts's
 * sd15Config), wrapped so every call is timed.
 */
import { CLIPTextModel } from "../src/models/clip/clip-text-model.js";
import { loadUNet2DConditionModel } from "../src/models/unet/runner.js";
import { AutoencoderKL } from "../src/models/vae/autoencoder-kl.js";
import { randomWeights } from "../src/nn/weight-store.js";
import type { TextToImageComponents } from "../src/pipeline/text-to-image.js";
import { fromConfig } from "../src/schedulers/registry.js";
import { type HostTensor, tensor } from "../src/tensor.js";
import { parseControlNetModelConfig } from "../src/models/controlnet/index.js";
import { sd15Config } from "./unet.js";

export const SD15_TEXT_ENCODER = {
  hidden_size: 768,
  intermediate_size: 3072,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  projection_dim: 768,
  max_position_embeddings: 77,
  vocab_size: 49408,
  hidden_act: "quick_gelu",
} as const;

export const SD15_VAE = {
  block_out_channels: [128, 256, 512, 512],
  down_block_types: ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
  up_block_types: ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
  layers_per_block: 2,
  latent_channels: 4,
  sample_size: 512,
} as const;

export const SD15_SCHEDULER = {
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: "scaled_linear",
  num_train_timesteps: 1000,
  steps_offset: 1,
  clip_sample: false,
  set_alpha_to_one: false,
} as const;

/** Wall times of every call, by component. */
export type CallTimes = Record<"textEncoder" | "unet" | "vae", number[]>;

export function loadTextEncoder(threads: number): Promise<CLIPTextModel> {
  return CLIPTextModel.load(
    { config: SD15_TEXT_ENCODER, store: randomWeights({ seed: 1 }) },
    { intraOpNumThreads: threads },
  );
}

export function loadVae(threads: number): Promise<AutoencoderKL> {
  return AutoencoderKL.load(
    { config: SD15_VAE, store: randomWeights({ seed: 2 }) },
    { intraOpNumThreads: threads },
  );
}

/** Token ids of a fixed prompt (the tokenizer costs microseconds; its vocabulary files are not needed here). */
export function tokenize(prompts: readonly string[]): HostTensor<"int64"> {
  const ids = new BigInt64Array(prompts.length * 77).fill(49407n);
  for (let b = 0; b < prompts.length; b++) ids[b * 77] = 49406n;
  return tensor("int64", [prompts.length, 77], ids);
}

async function timedCall<T>(list: number[], fn: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const result = await fn();
  list.push((performance.now() - started) / 1000);
  return result;
}

/** All components (sessions open on first use), with call timing into `times`. */
export async function loadComponents(
  threads: number,
  times: CallTimes,
): Promise<TextToImageComponents & { release(): Promise<void> }> {
  const textEncoder = await loadTextEncoder(threads);
  const vae = await loadVae(threads);
  const unet = await loadUNet2DConditionModel(
    { config: sd15Config(), store: randomWeights({ seed: 0 }) },
    { intraOpNumThreads: threads },
  );
  return {
    tokenizer: { tokenize },
    textEncoder: {
      encode: (ids, o) =>
        timedCall(times.textEncoder, async () => (await textEncoder.encode(ids, o ?? {})).promptEmbeds),
    },
    unet: { forward: (inputs) => timedCall(times.unet, () => unet.forward(inputs)) },
    vae: { scalingFactor: vae.scalingFactor, decode: (z) => timedCall(times.vae, () => vae.decode(z)) },
    scheduler: fromConfig("DDIMScheduler", SD15_SCHEDULER),
    vaeScaleFactor: 8,
    latentChannels: 4,
    release: async () => {
      await unet.release();
      await textEncoder.release();
      await vae.release();
    },
  };
}

/** A ControlNet of SD-1.5's architecture (lllyasviel/sd-controlnet-canny's config). */
export function sd15ControlNetConfig(): ReturnType<typeof parseControlNetModelConfig>["config"] {
  return parseControlNetModelConfig("sd15 controlnet (diffusers defaults + cross_attention_dim 768)", {
    cross_attention_dim: 768,
  }).config;
}
