/**
 * MotionAdapter config: the fields of a diffusers `motion_adapter/config.json`, verbatim, with the
 * defaults of `MotionAdapter.__init__` in diffusers 0.26.3 (src/diffusers/models/unets/
 * unet_motion_model.py). The defaults describe AnimateDiff v2 (`mm_sd_v15_v2`): SD-1.5 channels, a
 * mid-block module, 32 positions.
 */
import { field, parseConfig, type ConfigOf } from "../../config/parse.js";
import { configReaders } from "../config-readers.js";

export const MOTION_ADAPTER_FIELDS = {
  block_out_channels: field.list(field.int(0), [320, 640, 1280, 1280]),
  motion_layers_per_block: field.int(2),
  motion_mid_block_layers_per_block: field.int(1),
  motion_num_attention_heads: field.int(8),
  /** Used by a stand-alone MotionAdapter only: inside UNetMotionModel the UNet's norm_num_groups applies. */
  motion_norm_num_groups: field.int(32),
  motion_max_seq_length: field.int(32),
  use_motion_mid_block: field.bool(true),
  /** PIA's extra conv_in (not implemented: must be null). */
  conv_in_channels: field.nullable(field.int(0)),
} as const;

export type MotionAdapterConfig = ConfigOf<typeof MOTION_ADAPTER_FIELDS>;

/** The diffusers defaults (what `MotionAdapter()` builds). */
export const MOTION_ADAPTER_DEFAULTS: MotionAdapterConfig = parseConfig(
  "MotionAdapter defaults",
  {},
  MOTION_ADAPTER_FIELDS,
).config;

const MOTION_ADAPTER_CONFIG = configReaders(MOTION_ADAPTER_FIELDS);

/** Parses a MotionAdapter config.json object (`file` names it in errors). */
export const parseMotionAdapterConfig = MOTION_ADAPTER_CONFIG.parse;

/** Reads and parses a MotionAdapter config.json file. */
export const readMotionAdapterConfig = MOTION_ADAPTER_CONFIG.read;

/** One motion module of an adapter: its key prefix and channel count. */
export interface MotionModuleSite {
  /** "down_blocks.0.motion_modules.1", "mid_block.motion_modules.0", "up_blocks.2.motion_modules.0". */
  readonly path: string;
  readonly part: "down_blocks" | "mid_block" | "up_blocks";
  readonly block: number;
  readonly layer: number;
  readonly channels: number;
}

/**
 * Every motion module a MotionAdapter config defines, in state-dict order: motion_layers_per_block
 * per down block, motion_mid_block_layers_per_block in the mid block (use_motion_mid_block), and
 * motion_layers_per_block + 1 per up block (channels reversed), as MotionAdapter.__init__ builds them.
 */
export function motionModuleSites(config: MotionAdapterConfig): MotionModuleSite[] {
  const sites: MotionModuleSite[] = [];
  const add = (part: MotionModuleSite["part"], block: number, count: number, channels: number): void => {
    const prefix = part === "mid_block" ? part : `${part}.${block}`;
    for (let layer = 0; layer < count; layer++)
      sites.push({ path: `${prefix}.motion_modules.${layer}`, part, block, layer, channels });
  };
  const channels = config.block_out_channels;
  channels.forEach((c, i) => add("down_blocks", i, config.motion_layers_per_block, c));
  if (config.use_motion_mid_block)
    add("mid_block", 0, config.motion_mid_block_layers_per_block, channels[channels.length - 1] ?? 0);
  [...channels].reverse().forEach((c, i) => add("up_blocks", i, config.motion_layers_per_block + 1, c));
  return sites;
}
