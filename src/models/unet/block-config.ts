/**
 * Resolves a UNet2DConditionModel / ControlNetModel config into per-block settings, exactly as
 * diffusers 0.26.3 `UNet2DConditionModel.__init__` and `ControlNetModel.__init__` broadcast their
 * `int | tuple` fields (src/diffusers/models/unets/unet_2d_condition.py, models/controlnet.py), and
 * refuses every config field the graph builder does not implement with an UnsupportedError naming it.
 *
 * diffusers quirk: `attention_head_dim` is the NUMBER of heads unless `num_attention_heads` is set
 * (`num_attention_heads = num_attention_heads or attention_head_dim`); head dim = channels / heads.
 * `resnet_skip_time_act`, `resnet_out_scale_factor`, `cross_attention_norm` and
 * `mid_block_only_cross_attention` only reach block types we do not build (ResnetDownsampleBlock2D,
 * SimpleCrossAttn...), so diffusers ignores them for the blocks below, and so do we.
 */
import { ConfigError, UnsupportedError } from "../../errors.js";
import type { UNetModuleHooks } from "./layer-hook.js";

export type DownBlockType = "CrossAttnDownBlock2D" | "DownBlock2D";
export type UpBlockType = "CrossAttnUpBlock2D" | "UpBlock2D";

/** The config fields shared by the UNet and the ControlNet encoder half (config.json names). */
export interface EncoderConfigFields {
  readonly in_channels: number;
  readonly flip_sin_to_cos: boolean;
  readonly freq_shift: number;
  readonly down_block_types: readonly string[];
  readonly mid_block_type: string | null;
  readonly only_cross_attention: boolean | readonly boolean[];
  readonly block_out_channels: readonly number[];
  readonly layers_per_block: number | readonly number[];
  readonly downsample_padding: number;
  readonly mid_block_scale_factor: number;
  readonly act_fn: string;
  readonly norm_num_groups: number | null;
  readonly norm_eps: number;
  readonly cross_attention_dim: number | readonly number[];
  readonly transformer_layers_per_block: unknown;
  readonly encoder_hid_dim: number | null;
  readonly encoder_hid_dim_type: string | null;
  readonly attention_head_dim: number | readonly number[];
  readonly num_attention_heads: number | readonly number[] | null;
  readonly use_linear_projection: boolean;
  readonly class_embed_type: string | null;
  readonly addition_embed_type: string | null;
  readonly num_class_embeds: number | null;
  readonly upcast_attention: boolean | null;
  readonly resnet_time_scale_shift: string;
}

/** Settings every ResNet / transformer block of one model shares. */
export interface SharedBlockSettings {
  readonly resnetEps: number;
  readonly resnetGroups: number;
  readonly actFn: string;
  readonly tembChannels: number;
  readonly useLinearProjection: boolean;
  readonly upcastAttention: boolean;
  /** resnet_time_scale_shift: every block ResnetBlock2D's time_embedding_norm (absent = "default"). */
  readonly resnetTimeScaleShift?: "default" | "scale_shift";
  /** (optional) video UNet hooks (see layer-hook.ts). */
  readonly hooks?: UNetModuleHooks;
}

/** The transformer settings of a block (see block-layers.ts: blockAttentions). */
export interface BlockAttentionSpec {
  readonly numHeads: number;
  /** Transformer depth per layer (cross-attention blocks; 1 where the list is short). */
  readonly transformerLayers: readonly number[];
  readonly crossAttentionDim: number;
  /** diffusers only_cross_attention (left to the Transformer2DModel default when absent). */
  readonly onlyCrossAttention?: boolean;
}

/** What the down and up blocks' specs share. */
export interface BlockLayersSpec extends BlockAttentionSpec {
  readonly outChannels: number;
  readonly numLayers: number;
  readonly onlyCrossAttention: boolean;
}

export interface DownBlockSpec extends BlockLayersSpec {
  readonly type: DownBlockType;
  readonly inChannels: number;
  readonly addDownsample: boolean;
  readonly downsamplePadding: number;
}

export interface MidBlockSpec extends BlockAttentionSpec {
  readonly channels: number;
  readonly outputScaleFactor: number;
}

export interface EncoderSpec {
  readonly shared: SharedBlockSettings;
  readonly timeEmbedDim: number;
  readonly down: readonly DownBlockSpec[];
  /** null when mid_block_type is null. */
  readonly mid: MidBlockSpec | null;
  /** Per down block values, kept for the up path. */
  readonly perBlock: {
    readonly numHeads: readonly number[];
    readonly crossAttentionDim: readonly number[];
    readonly layersPerBlock: readonly number[];
    readonly transformerLayers: readonly (number | readonly number[])[];
    readonly onlyCrossAttention: readonly boolean[];
  };
}

const ACTIVATIONS = ["silu", "swish", "mish", "gelu", "relu"];

/** Models whose resnets are verified with resnet_time_scale_shift "scale_shift" (the rest refuse it). */
const SCALE_SHIFT_MODELS: readonly string[] = ["UNet2DConditionModel"];

/** Throws UnsupportedError naming `field` unless `ok`. */
export function requireSupported(
  ok: boolean,
  model: string,
  field: string,
  value: unknown,
  hint: string,
): void {
  if (!ok) {
    throw new UnsupportedError(`${model} config field ${field} = ${JSON.stringify(value)}`, { hint });
  }
}

/** Broadcasts an `int | list` field to one value per block, checking the list length. */
export function perBlock<T>(file: string, field: string, value: T | readonly T[], count: number): T[] {
  if (!Array.isArray(value)) return Array<T>(count).fill(value as T);
  const list = value as readonly T[];
  if (list.length !== count) {
    throw new ConfigError(file, field, `one value or a list of ${count} (one per down block)`, list);
  }
  return [...list];
}

/** `transformer_layers_per_block` entries: an int or, per layer, a list of ints. */
export function parseTransformerLayers(
  file: string,
  field: string,
  value: unknown,
  count: number,
): (number | number[])[] {
  const isDepth = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 1;
  const isEntry = (v: unknown): v is number | number[] =>
    isDepth(v) || (Array.isArray(v) && v.every(isDepth));
  if (isDepth(value)) return Array<number>(count).fill(value);
  if (Array.isArray(value) && value.length === count && value.every(isEntry))
    return value.map((v) => (Array.isArray(v) ? [...v] : v));
  throw new ConfigError(
    file,
    field,
    `a positive integer or a list of ${count} (ints or per-layer lists)`,
    value,
  );
}

/** The transformer depth of each of `numLayers` layers of a block. */
export function depthPerLayer(
  file: string,
  field: string,
  entry: number | readonly number[],
  numLayers: number,
): number[] {
  if (typeof entry === "number") return Array<number>(numLayers).fill(entry);
  if (entry.length !== numLayers)
    throw new ConfigError(file, field, `a list of ${numLayers} per-layer depths`, entry);
  return [...entry];
}

/**
 * Refuses the config fields and values the builder does not implement (shared UNet/ControlNet part);
 * `classEmbeddings` says whether the model builds class embeddings.
 */
export function checkEncoderSupported(model: string, c: EncoderConfigFields, classEmbeddings = false): void {
  const noClass = `class embeddings are not implemented in ${model}; set it to null`;
  const checks: [string, unknown, boolean, string][] = [
    ["class_embed_type", c.class_embed_type, classEmbeddings || c.class_embed_type === null, noClass],
    ["num_class_embeds", c.num_class_embeds, classEmbeddings || c.num_class_embeds === null, noClass],
    [
      "addition_embed_type",
      c.addition_embed_type,
      c.addition_embed_type === null,
      "SDXL-style added embeddings are not implemented",
    ],
    [
      "encoder_hid_dim",
      c.encoder_hid_dim,
      c.encoder_hid_dim === null,
      "encoder_hid_proj is not implemented; set it to null",
    ],
    [
      "encoder_hid_dim_type",
      c.encoder_hid_dim_type,
      c.encoder_hid_dim_type === null,
      "encoder_hid_proj is not implemented",
    ],
    [
      "resnet_time_scale_shift",
      c.resnet_time_scale_shift,
      c.resnet_time_scale_shift === "default" ||
        (c.resnet_time_scale_shift === "scale_shift" && SCALE_SHIFT_MODELS.includes(model)),
      SCALE_SHIFT_MODELS.includes(model)
        ? 'use "default" (temb added after conv1) or "scale_shift" (norm2(h) * (1 + scale) + shift)'
        : 'only "default" (temb added after conv1) is implemented for this model',
    ],
    ["act_fn", c.act_fn, ACTIVATIONS.includes(c.act_fn), `use one of ${ACTIVATIONS.join(", ")}`],
    [
      "norm_num_groups",
      c.norm_num_groups,
      c.norm_num_groups !== null,
      "the ResNet blocks need a group count",
    ],
    [
      "mid_block_type",
      c.mid_block_type,
      c.mid_block_type === null || c.mid_block_type === "UNetMidBlock2DCrossAttn",
      "only UNetMidBlock2DCrossAttn (or null) is implemented",
    ],
    ...c.down_block_types.map((t, i): [string, unknown, boolean, string] => [
      `down_block_types[${i}]`,
      t,
      t === "CrossAttnDownBlock2D" || t === "DownBlock2D",
      "use CrossAttnDownBlock2D or DownBlock2D",
    ]),
  ];
  for (const [field, value, ok, hint] of checks) requireSupported(ok, model, field, value, hint);
}

/** The down path and mid block of a UNet / ControlNet config (diffusers broadcasting rules). */
export function resolveEncoder(
  model: string,
  file: string,
  c: EncoderConfigFields,
  timeEmbedDim?: number,
  /** (default false) the model builds class embeddings (UNet2DConditionModel: class-embedding.ts). */
  classEmbeddings = false,
): EncoderSpec {
  checkEncoderSupported(model, c, classEmbeddings);
  const n = c.down_block_types.length;
  if (c.block_out_channels.length !== n) {
    throw new ConfigError(
      file,
      "block_out_channels",
      `a list of ${n} (one per down_block_types entry)`,
      c.block_out_channels,
    );
  }
  const headsField = c.num_attention_heads === null ? "attention_head_dim" : "num_attention_heads";
  const numHeads = perBlock(file, headsField, c.num_attention_heads ?? c.attention_head_dim, n);
  const crossAttentionDim = perBlock(file, "cross_attention_dim", c.cross_attention_dim, n);
  const layersPerBlock = perBlock(file, "layers_per_block", c.layers_per_block, n);
  const onlyCrossAttention = perBlock(file, "only_cross_attention", c.only_cross_attention, n);
  const transformerLayers = parseTransformerLayers(
    file,
    "transformer_layers_per_block",
    c.transformer_layers_per_block,
    n,
  );
  const groups = c.norm_num_groups ?? 32;
  const shared: SharedBlockSettings = {
    resnetEps: c.norm_eps,
    resnetGroups: groups,
    actFn: c.act_fn,
    tembChannels: timeEmbedDim ?? (c.block_out_channels[0] ?? 0) * 4,
    useLinearProjection: c.use_linear_projection,
    upcastAttention: c.upcast_attention ?? false,
    ...(c.resnet_time_scale_shift === "scale_shift" ? { resnetTimeScaleShift: "scale_shift" as const } : {}),
  };
  const down: DownBlockSpec[] = [];
  let outChannels = c.block_out_channels[0] ?? 0;
  for (let i = 0; i < n; i++) {
    const inChannels = outChannels;
    outChannels = c.block_out_channels[i] ?? 0;
    const numLayers = layersPerBlock[i] ?? 1;
    const type = c.down_block_types[i] as DownBlockType;
    down.push({
      type,
      inChannels,
      outChannels,
      numLayers,
      transformerLayers: depthPerLayer(
        file,
        `transformer_layers_per_block[${i}]`,
        transformerLayers[i] ?? 1,
        numLayers,
      ),
      crossAttentionDim: crossAttentionDim[i] ?? 0,
      numHeads: numHeads[i] ?? 1,
      onlyCrossAttention: onlyCrossAttention[i] ?? false,
      addDownsample: i < n - 1,
      downsamplePadding: c.downsample_padding,
    });
  }
  const last = c.block_out_channels[n - 1] ?? 0;
  const midEntry = transformerLayers[n - 1] ?? 1;
  // UNetMidBlock2DCrossAttn has one transformer; a per-layer list contributes its first depth.
  const midDepth = typeof midEntry === "number" ? midEntry : (midEntry[0] ?? 1);
  const mid: MidBlockSpec | null =
    c.mid_block_type === null
      ? null
      : {
          channels: last,
          transformerLayers: [midDepth],
          crossAttentionDim: crossAttentionDim[n - 1] ?? 0,
          numHeads: numHeads[n - 1] ?? 1,
          outputScaleFactor: c.mid_block_scale_factor,
        };
  return {
    shared,
    timeEmbedDim: shared.tembChannels,
    down,
    mid,
    perBlock: { numHeads, crossAttentionDim, layersPerBlock, transformerLayers, onlyCrossAttention },
  };
}
