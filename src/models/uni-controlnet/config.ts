/**
 * Uni-ControlNet configuration: the `params` of `local_control_config` (LocalAdapter), which are also
 * the UNet's (`unet_config`, LocalControlUNetModel), and of `global_control_config` (GlobalAdapter) in
 * the repository's `configs/uni_v15.yaml`, under their yaml names. The released model is
 * `UNI_V15_CONFIG`; `inferUniConfig` reads every size from a checkpoint's shapes (the heads, which no
 * shape holds, default to uni_v15's 8). `uniUNetConfig` / `uniEncoderConfig` translate the LDM fields
 * into the diffusers UNet2DConditionModel config our UNet graph takes.
 */
import { ConfigError, UnsupportedError } from "../../errors.js";
import { type FieldSpec, type Parsed, field, parseConfig } from "../../config/parse.js";
import type { WeightStore } from "../../nn/weight-store.js";
import type { LdmLayout } from "../../weights/key-maps/ldm.js";
import { type UNet2DConditionModelConfig, parseUNet2DConditionModelConfig } from "../unet/config.js";

export interface GlobalAdapterConfig {
  /** CLIP image-embedding width = token width = the UNet's context_dim (768 real). */
  readonly in_dim: number;
  /** [mult1, mult2]: FF widths in_dim*mult1, in_dim*mult2; the tokens are mult2 (= K) rows of in_dim. */
  readonly channel_mult: readonly number[];
}

const globalAdapterField: FieldSpec<GlobalAdapterConfig> = {
  default: { in_dim: 768, channel_mult: [2, 4] },
  parse(value, file, path) {
    if (typeof value !== "object" || value === null || Array.isArray(value))
      throw new ConfigError(file, path, "an object {in_dim, channel_mult}", value);
    const v = value as Record<string, unknown>;
    const inDim = field.int(768, { min: 1 }).parse(v.in_dim ?? 768, file, `${path}.in_dim`);
    const mult = field
      .list(field.int(1, { min: 1 }), [2, 4])
      .parse(v.channel_mult ?? [2, 4], file, `${path}.channel_mult`);
    if (mult.length !== 2) throw new ConfigError(file, `${path}.channel_mult`, "two multipliers", mult);
    return { in_dim: inDim, channel_mult: mult };
  },
};

export const UNI_CONTROLNET_FIELDS = {
  in_channels: field.int(4, { min: 1 }),
  out_channels: field.int(4, { min: 1 }),
  model_channels: field.int(320, { min: 1 }),
  channel_mult: field.list(field.int(1, { min: 1 }), [1, 2, 4, 4]),
  num_res_blocks: field.int(2, { min: 1 }),
  /** Downsample factors (1, 2, 4, ...) whose levels have SpatialTransformers. */
  attention_resolutions: field.list(field.int(1, { min: 1 }), [4, 2, 1]),
  num_heads: field.int(8),
  num_head_channels: field.int(-1),
  transformer_depth: field.int(1, { min: 1 }),
  context_dim: field.int(768, { min: 1 }),
  legacy: field.bool(false),
  use_linear_in_transformer: field.bool(false),
  /** Stacked local map channels (7 maps x 3). */
  local_channels: field.int(21, { min: 1 }),
  /** Feature extractor widths at H/8, H/16, H/32, H/64 (always four). */
  inject_channels: field.list(field.int(1, { min: 1 }), [192, 256, 384, 512]),
  /** LDM input block indices that are LocalResBlocks (the first block of each level). */
  inject_layers: field.list(field.int(1, { min: 1 }), [1, 4, 7, 10]),
  global_adapter: globalAdapterField,
} as const;

export interface UniControlNetConfig {
  readonly in_channels: number;
  readonly out_channels: number;
  readonly model_channels: number;
  readonly channel_mult: readonly number[];
  readonly num_res_blocks: number;
  readonly attention_resolutions: readonly number[];
  readonly num_heads: number;
  readonly num_head_channels: number;
  readonly transformer_depth: number;
  readonly context_dim: number;
  readonly legacy: boolean;
  readonly use_linear_in_transformer: boolean;
  readonly local_channels: number;
  readonly inject_channels: readonly number[];
  readonly inject_layers: readonly number[];
  readonly global_adapter: GlobalAdapterConfig;
}

/** configs/uni_v15.yaml (the released uni.ckpt). */
export const UNI_V15_CONFIG: UniControlNetConfig = {
  in_channels: 4,
  out_channels: 4,
  model_channels: 320,
  channel_mult: [1, 2, 4, 4],
  num_res_blocks: 2,
  attention_resolutions: [4, 2, 1],
  num_heads: 8,
  num_head_channels: -1,
  transformer_depth: 1,
  context_dim: 768,
  legacy: false,
  use_linear_in_transformer: false,
  local_channels: 21,
  inject_channels: [192, 256, 384, 512],
  inject_layers: [1, 4, 7, 10],
  global_adapter: { in_dim: 768, channel_mult: [2, 4] },
};

/** The local condition maps in channel order (3 channels each; README "Channel order"). */
export const UNI_LOCAL_CONDITIONS = ["canny", "mlsd", "hed", "sketch", "openpose", "midas", "seg"] as const;
export type UniLocalCondition = (typeof UNI_LOCAL_CONDITIONS)[number];

/** Parses a Uni-ControlNet config object (yaml `params` names; `file` names it in errors) and checks it. */
export function parseUniControlNetConfig(file: string, json: unknown): Parsed<UniControlNetConfig> {
  const parsed = parseConfig(file, json, UNI_CONTROLNET_FIELDS, {
    owner: "UniControlNet",
    ignore: ["num_residuals", "context_tokens", "schedule", "image_size", "use_spatial_transformer"],
  });
  checkUniConfig(file, parsed.config);
  return parsed;
}

/** Refuses configurations the graphs cannot express, naming the field. */
export function checkUniConfig(file: string, c: UniControlNetConfig): void {
  if (c.inject_channels.length !== 4)
    throw new ConfigError(file, "inject_channels", "four widths (H/8 ... H/64)", c.inject_channels);
  if (c.num_heads < 1 && c.num_head_channels < 1)
    throw new ConfigError(file, "num_heads", "a positive number (or num_head_channels)", c.num_heads);
  if (c.global_adapter.in_dim !== c.context_dim) {
    throw new ConfigError(
      file,
      "global_adapter.in_dim",
      `${c.context_dim} (= context_dim)`,
      c.global_adapter.in_dim,
      {
        hint: "the global tokens are appended to the text context, so their width is context_dim",
      },
    );
  }
  const L = c.num_res_blocks;
  c.channel_mult.forEach((_, level) => {
    for (let nr = 0; nr < L; nr++) {
      // LocalAdapter builds a LocalResBlock where 1 + 3*level + nr is listed, but feeds features to
      // the block whose real index is listed: a built block that is not fed crashes the original code
      // (a fed plain ResBlock ignores its features).
      const built = c.inject_layers.includes(1 + 3 * level + nr);
      const fed = c.inject_layers.includes(1 + (L + 1) * level + nr);
      if (built && !fed) {
        throw new UnsupportedError(
          `Uni-ControlNet inject_layers ${JSON.stringify(c.inject_layers)} with num_res_blocks ${L}`,
          {
            hint: "the original LocalAdapter only works when inject_layers name the blocks 1 + 3*level + nr it builds",
          },
        );
      }
    }
  });
}

/** Heads per level (LDM: num_heads, or channels / num_head_channels). */
function headsPerLevel(c: UniControlNetConfig): number[] {
  return c.channel_mult.map((m) =>
    c.num_head_channels === -1 ? c.num_heads : Math.floor((m * c.model_channels) / c.num_head_channels),
  );
}

/** The diffusers UNet2DConditionModel config of the SD UNet of a Uni-ControlNet config. */
export function uniUNetConfig(
  c: UniControlNetConfig,
  file = "Uni-ControlNet config",
): UNet2DConditionModelConfig {
  const attention = c.channel_mult.map((_, level) => c.attention_resolutions.includes(2 ** level));
  const json = {
    in_channels: c.in_channels,
    out_channels: c.out_channels,
    block_out_channels: c.channel_mult.map((m) => m * c.model_channels),
    layers_per_block: c.num_res_blocks,
    down_block_types: attention.map((a) => (a ? "CrossAttnDownBlock2D" : "DownBlock2D")),
    up_block_types: [...attention].reverse().map((a) => (a ? "CrossAttnUpBlock2D" : "UpBlock2D")),
    mid_block_type: "UNetMidBlock2DCrossAttn",
    cross_attention_dim: c.context_dim,
    attention_head_dim: headsPerLevel(c),
    transformer_layers_per_block: c.transformer_depth,
    use_linear_projection: c.use_linear_in_transformer,
    norm_num_groups: 32,
    norm_eps: 1e-5,
    flip_sin_to_cos: true,
    freq_shift: 0,
    act_fn: "silu",
    downsample_padding: 1,
    sample_size: null,
  };
  return parseUNet2DConditionModelConfig(file, json).config;
}

/** The LDM key map's block numbering for this config (../../weights/key-maps/ldm.ts). */
export function uniLdmLayout(c: UniControlNetConfig): LdmLayout {
  const attention = c.channel_mult.map((_, level) => c.attention_resolutions.includes(2 ** level));
  return { layersPerBlock: c.num_res_blocks, upBlockHasAttention: [...attention].reverse(), vaeLevels: 1 };
}

/** Number of local adapter residuals: one per UNet skip connection plus the middle block. */
export function uniResidualCount(c: UniControlNetConfig): number {
  const levels = c.channel_mult.length;
  return 1 + levels * c.num_res_blocks + (levels - 1) + 1;
}

/**
 * Reads the sizes of a Uni-ControlNet from a checkpoint's shapes (`name` names it in errors). The head
 * count is not in the weights: `numHeads` (default uni_v15's 8).
 */
export function inferUniConfig(store: WeightStore, name: string, numHeads = 8): UniControlNetConfig {
  const shape = (key: string): readonly number[] => {
    const info = store.info(key);
    if (info === undefined)
      throw new ConfigError(name, key, "a tensor (needed to read the model's sizes)", undefined);
    return info.shape;
  };
  const P = "model.diffusion_model.";
  const keys = [...store.keys()];
  const modelChannels = shape(`${P}input_blocks.0.0.weight`)[0] ?? 0;
  const inChannels = shape(`${P}input_blocks.0.0.weight`)[1] ?? 0;
  const outChannels = shape(`${P}out.2.weight`)[0] ?? 0;
  // Input blocks: resnets (`.0.in_layers.2.weight` [out, in, 3, 3]) and downsamplers (`.0.op.weight`).
  const blocks = new Map<number, { out: number; down: boolean; attn: boolean }>();
  for (const k of keys) {
    const m = /^model\.diffusion_model\.input_blocks\.(\d+)\.(\d+)\.(in_layers\.2|op|proj_in)\.weight$/.exec(
      k,
    );
    if (!m) continue;
    const b = Number(m[1]);
    const entry = blocks.get(b) ?? { out: 0, down: false, attn: false };
    if (m[3] === "in_layers.2") entry.out = store.info(k)?.shape[0] ?? 0;
    if (m[3] === "op") entry.down = true;
    if (m[3] === "proj_in") entry.attn = true;
    blocks.set(b, entry);
  }
  const order = [...blocks.keys()].sort((a, b) => a - b);
  const firstDown = order.find((b) => blocks.get(b)?.down === true);
  const numResBlocks = firstDown === undefined ? order.length : firstDown - 1;
  const channelMult: number[] = [];
  const attentionResolutions: number[] = [];
  for (let level = 0; ; level++) {
    const first = blocks.get(1 + level * (numResBlocks + 1));
    if (first === undefined || first.down) break;
    channelMult.push(first.out / modelChannels);
    if (first.attn) attentionResolutions.push(2 ** level);
  }
  const attnKey = keys.find((k) =>
    /^model\.diffusion_model\.middle_block\.1\.transformer_blocks\.0\.attn2\.to_k\.weight$/.test(k),
  );
  const contextDim = attnKey === undefined ? 768 : (shape(attnKey)[1] ?? 768);
  const depth = new Set(
    keys
      .map((k) => /^model\.diffusion_model\.middle_block\.1\.transformer_blocks\.(\d+)\./.exec(k)?.[1])
      .filter((v) => v !== undefined),
  ).size;
  const projIn = shape(`${P}middle_block.1.proj_in.weight`);
  const injectChannels = [0, 1, 2, 3].map(
    (i) => shape(`local_adapter.feature_extractor.extractors.${i}.0.weight`)[0] ?? 0,
  );
  const injectLayers = [
    ...new Set(
      keys
        .map((k) => /^local_adapter\.input_blocks\.(\d+)\.0\.norm_in\.conv_gamma\.weight$/.exec(k)?.[1])
        .filter((v) => v !== undefined)
        .map(Number),
    ),
  ].sort((a, b) => a - b);
  const inDim = shape("global_adapter.norm1.weight")[0] ?? 0;
  const config: UniControlNetConfig = {
    in_channels: inChannels,
    out_channels: outChannels,
    model_channels: modelChannels,
    channel_mult: channelMult,
    num_res_blocks: numResBlocks,
    attention_resolutions: attentionResolutions,
    num_heads: numHeads,
    num_head_channels: -1,
    transformer_depth: Math.max(1, depth),
    context_dim: contextDim,
    legacy: false,
    use_linear_in_transformer: projIn.length === 2,
    local_channels: shape("local_adapter.feature_extractor.pre_extractor.0.weight")[1] ?? 0,
    inject_channels: injectChannels,
    inject_layers: injectLayers,
    global_adapter: {
      in_dim: inDim,
      channel_mult: [
        (shape("global_adapter.norm2.weight")[0] ?? 0) / inDim,
        (shape("global_adapter.ff2.net.2.weight")[0] ?? 0) / inDim,
      ],
    },
  };
  checkUniConfig(name, config);
  return config;
}
