/**
 * The AutoencoderKL configs Steadyframe trains, written as diffusers' `vae/config.json` (the fields
 * of `AutoencoderKL.__init__`, diffusers 0.26.3, plus `_class_name` / `_diffusers_version`), and the
 * small demo VAE of the demo model (issue 8, item 5): 128x128 frames, factor 4, 4 latent channels.
 */
import type { AutoencoderKLConfig } from "../../models/vae/config.js";
import { type VaeSpec, resolveVaeSpec } from "../../models/vae/validate.js";

/** The diffusers version whose AutoencoderKL our builder mirrors (models/vae/config.ts). */
export const VAE_DIFFUSERS_VERSION = "0.26.3";

/**
 * The demo VAE: three levels (factor 4) of 32, 64, 64 channels, one resnet per encoder level (two
 * per decoder level, as diffusers builds it), 4 latent channels: 128x128 frames -> 4x32x32 latents.
 * 0.95 M parameters (3.8 MB in float32). `scaling_factor` is a placeholder: the trainer measures
 * it (1 / std of the latents, as the LDM authors derived 0.18215) unless told otherwise.
 */
export const DEMO_VAE_CONFIG: Readonly<Record<string, unknown>> = {
  in_channels: 3,
  out_channels: 3,
  down_block_types: ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
  up_block_types: ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
  block_out_channels: [32, 64, 64],
  layers_per_block: 1,
  act_fn: "silu",
  latent_channels: 4,
  norm_num_groups: 32,
  sample_size: 128,
  scaling_factor: 1,
  force_upcast: true,
};

/** Frame size the demo VAE is trained for (square crops). */
export const DEMO_VAE_SIZE = 128;

/** Parses and validates a (partial) config object as diffusers would read it (`name` names it in errors). */
export function vaeSpecOf(config: Readonly<Record<string, unknown>>, name = "vae config"): VaeSpec {
  return resolveVaeSpec(name, config);
}

/** The config.json object diffusers' `save_pretrained` writes for `config` (every field, defaults included). */
export function vaeConfigJson(config: AutoencoderKLConfig, scalingFactor?: number): Record<string, unknown> {
  return {
    _class_name: "AutoencoderKL",
    _diffusers_version: VAE_DIFFUSERS_VERSION,
    ...config,
    ...(scalingFactor === undefined ? {} : { scaling_factor: scalingFactor }),
  };
}

/**
 * The demo VAE's training recipe (trainVae options besides clips and out): 64x64 crops of frames
 * scaled to 128x128 (the scale the demo pipeline decodes at; the VAE is convolutional, so a quarter
 * of the frame per crop costs a quarter of the compute), 4 crops per step, AdamW at 1e-3 without
 * decay, L1 reconstruction and LDM's kl_weight 1e-6.
 */
export const DEMO_VAE_TRAINING = {
  config: DEMO_VAE_CONFIG,
  size: 64,
  frameSize: DEMO_VAE_SIZE,
  batch: 4,
  lr: 1e-3,
  weightDecay: 0,
  reconstruction: "l1",
  klWeight: 1e-6,
  seed: 0n,
} as const;
