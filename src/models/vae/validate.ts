/**
 * Checks an AutoencoderKL config before building: everything the builder cannot honour throws here,
 * naming the field (UnsupportedError for features, ConfigError for inconsistent values).
 */
import { ConfigError, UnsupportedError } from "../../errors.js";
import type { ParseOptions } from "../../config/parse.js";
import { type VaeActivation, VAE_ACTIVATIONS } from "./blocks.js";
import { type AutoencoderKLConfig, parseAutoencoderKLConfig } from "./config.js";

export interface VaeSpec {
  readonly config: AutoencoderKLConfig;
  readonly act: VaeActivation;
  /** Spatial factor between image and latents: 2 ** (len(block_out_channels) - 1). */
  readonly downsampleFactor: number;
  /** Notes about ignored unknown config keys. */
  readonly warnings: readonly string[];
}

/**
 * Fields of later diffusers versions that change the computation when not at their default; the
 * 0.26.3 model this builder mirrors has none of them.
 */
const LATER_FIELDS: readonly { field: string; isDefault: (v: unknown) => boolean }[] = [
  { field: "use_quant_conv", isDefault: (v) => v === true },
  { field: "use_post_quant_conv", isDefault: (v) => v === true },
  { field: "mid_block_add_attention", isDefault: (v) => v === true },
  { field: "shift_factor", isDefault: (v) => v === null || v === 0 },
];

const isActivation = (v: string): v is VaeActivation => (VAE_ACTIVATIONS as readonly string[]).includes(v);

/** Parses and validates a vae/config.json object (`file` names it in errors). */
export function resolveVaeSpec(file: string, json: unknown, options: ParseOptions = {}): VaeSpec {
  const { config: c, warnings } = parseAutoencoderKLConfig(file, json, options);
  const raw = json as Readonly<Record<string, unknown>>;
  for (const { field, isDefault } of LATER_FIELDS) {
    if (field in raw && !isDefault(raw[field])) {
      throw new UnsupportedError(
        `AutoencoderKL config field "${field}" = ${JSON.stringify(raw[field])} (${file})`,
        {
          hint: "this builder follows diffusers 0.26.3, whose AutoencoderKL has no such option; use a VAE without it",
        },
      );
    }
  }
  if (!isActivation(c.act_fn)) {
    throw new UnsupportedError(`act_fn "${c.act_fn}" in ${file}`, {
      hint: `use one of ${VAE_ACTIVATIONS.join(", ")}`,
    });
  }
  const n = c.block_out_channels.length;
  if (n === 0) throw new ConfigError(file, "block_out_channels", "a non-empty list", c.block_out_channels);
  for (const [name, types] of [
    ["down_block_types", c.down_block_types],
    ["up_block_types", c.up_block_types],
  ] as const) {
    if (types.length !== n) {
      throw new ConfigError(
        file,
        name,
        `a list of ${n} block types (one per block_out_channels entry)`,
        types,
      );
    }
  }
  for (const [name, value] of [
    ["in_channels", c.in_channels],
    ["out_channels", c.out_channels],
    ["latent_channels", c.latent_channels],
    ["layers_per_block", c.layers_per_block],
    ["norm_num_groups", c.norm_num_groups],
  ] as const) {
    if (value < 1) throw new ConfigError(file, name, "a positive integer", value);
  }
  c.block_out_channels.forEach((ch, i) => {
    if (ch < 1 || ch % c.norm_num_groups !== 0) {
      throw new ConfigError(
        file,
        `block_out_channels[${i}]`,
        `a positive multiple of norm_num_groups (${c.norm_num_groups})`,
        ch,
      );
    }
  });
  if (!(c.scaling_factor > 0))
    throw new ConfigError(file, "scaling_factor", "a positive number", c.scaling_factor);
  return { config: c, act: c.act_fn, downsampleFactor: 2 ** (n - 1), warnings };
}
