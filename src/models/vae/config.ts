/**
 * AutoencoderKL config: the fields of diffusers' `vae/config.json`, verbatim, with the defaults of
 * `AutoencoderKL.__init__` in diffusers 0.26.3 (src/diffusers/models/autoencoders/autoencoder_kl.py).
 */
import { field, type ConfigOf } from "../../config/parse.js";
import { configReaders } from "../config-readers.js";

export const AUTOENCODER_KL_FIELDS = {
  in_channels: field.int(3),
  out_channels: field.int(3),
  down_block_types: field.list(field.oneOf(["DownEncoderBlock2D"], "DownEncoderBlock2D"), [
    "DownEncoderBlock2D",
  ]),
  up_block_types: field.list(field.oneOf(["UpDecoderBlock2D"], "UpDecoderBlock2D"), ["UpDecoderBlock2D"]),
  block_out_channels: field.list(field.int(0), [64]),
  layers_per_block: field.int(1),
  act_fn: field.string("silu"),
  latent_channels: field.int(4),
  norm_num_groups: field.int(32),
  sample_size: field.oneOrList(field.int(32), 32),
  /** latents = encode(x).sample * scaling_factor; decode(latents / scaling_factor). */
  scaling_factor: field.number(0.18215),
  force_upcast: field.bool(true),
  latents_mean: field.any(null),
  latents_std: field.any(null),
} as const;

export type AutoencoderKLConfig = ConfigOf<typeof AUTOENCODER_KL_FIELDS>;

const AUTOENCODER_KL_CONFIG = configReaders(AUTOENCODER_KL_FIELDS);

/** Parses an AutoencoderKL config.json object (`file` names it in errors). */
export const parseAutoencoderKLConfig = AUTOENCODER_KL_CONFIG.parse;

/** Reads and parses an AutoencoderKL config.json file. */
export const readAutoencoderKLConfig = AUTOENCODER_KL_CONFIG.read;
