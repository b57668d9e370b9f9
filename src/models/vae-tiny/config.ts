/**
 * AutoencoderTiny (TAESD) config: the fields of diffusers' `config.json` for a tiny autoencoder
 * (madebyollin/taesd), verbatim, with the defaults of `AutoencoderTiny.__init__` in diffusers 0.26.3
 * (src/diffusers/models/autoencoders/autoencoder_tiny.py).
 */
import { field, type ConfigOf } from "../../config/parse.js";
import { configReaders } from "../config-readers.js";

export const AUTOENCODER_TINY_FIELDS = {
  in_channels: field.int(3),
  out_channels: field.int(3),
  encoder_block_out_channels: field.list(field.int(0), [64, 64, 64, 64]),
  decoder_block_out_channels: field.list(field.int(0), [64, 64, 64, 64]),
  act_fn: field.string("relu"),
  upsample_fn: field.string("nearest"),
  latent_channels: field.int(4),
  upsampling_scaling_factor: field.int(2),
  num_encoder_blocks: field.list(field.int(0), [1, 3, 3, 3]),
  num_decoder_blocks: field.list(field.int(0), [3, 3, 3, 1]),
  latent_magnitude: field.number(3),
  latent_shift: field.number(0.5),
  force_upcast: field.bool(false),
  /** 1.0 for TAESD: it decodes the diffusion latents as the UNet sees them. */
  scaling_factor: field.number(1),
} as const;

export type AutoencoderTinyConfig = ConfigOf<typeof AUTOENCODER_TINY_FIELDS>;

const AUTOENCODER_TINY_CONFIG = configReaders(AUTOENCODER_TINY_FIELDS);

/** Parses an AutoencoderTiny config.json object (`file` names it in errors). */
export const parseAutoencoderTinyConfig = AUTOENCODER_TINY_CONFIG.parse;

/** The diffusers defaults (madebyollin/taesd's config). */
export function defaultAutoencoderTinyConfig(): AutoencoderTinyConfig {
  return parseAutoencoderTinyConfig("AutoencoderTiny defaults", {}).config;
}
