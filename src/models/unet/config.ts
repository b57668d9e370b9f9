/**
 * UNet2DConditionModel config: the fields of diffusers' `unet/config.json`, verbatim, with the defaults
 * of `UNet2DConditionModel.__init__` in diffusers 0.26.3
 * (src/diffusers/models/unets/unet_2d_condition.py). Fields the model builder does not implement are
 * still parsed, so the builder can refuse them by name.
 */
import { field, type ConfigOf } from "../../config/parse.js";
import { configReaders } from "../config-readers.js";

export const UNET_DOWN_BLOCK_TYPES = ["CrossAttnDownBlock2D", "DownBlock2D"] as const;
export const UNET_UP_BLOCK_TYPES = ["CrossAttnUpBlock2D", "UpBlock2D"] as const;

const nullableInt = field.nullable(field.int(0));
const nullableString = field.nullable(field.string(""));

export const UNET_2D_CONDITION_FIELDS = {
  sample_size: field.nullable(field.oneOrList(field.int(64), 64)),
  in_channels: field.int(4),
  out_channels: field.int(4),
  center_input_sample: field.bool(false),
  flip_sin_to_cos: field.bool(true),
  freq_shift: field.int(0),
  down_block_types: field.list(field.string(""), [
    "CrossAttnDownBlock2D",
    "CrossAttnDownBlock2D",
    "CrossAttnDownBlock2D",
    "DownBlock2D",
  ]),
  mid_block_type: field.nullable(field.string(""), "UNetMidBlock2DCrossAttn"),
  up_block_types: field.list(field.string(""), [
    "UpBlock2D",
    "CrossAttnUpBlock2D",
    "CrossAttnUpBlock2D",
    "CrossAttnUpBlock2D",
  ]),
  only_cross_attention: field.oneOrList(field.bool(false), false),
  block_out_channels: field.list(field.int(0), [320, 640, 1280, 1280]),
  layers_per_block: field.oneOrList(field.int(2), 2),
  downsample_padding: field.int(1),
  mid_block_scale_factor: field.number(1),
  dropout: field.number(0),
  act_fn: field.string("silu"),
  norm_num_groups: field.nullable(field.int(32), 32),
  norm_eps: field.number(1e-5),
  cross_attention_dim: field.oneOrList(field.int(1280), 1280),
  transformer_layers_per_block: field.oneOrList(field.any(1), 1),
  reverse_transformer_layers_per_block: field.any(null),
  encoder_hid_dim: nullableInt,
  encoder_hid_dim_type: nullableString,
  /** Number of heads per block unless num_attention_heads is set (a diffusers naming quirk). */
  attention_head_dim: field.oneOrList(field.int(8), 8),
  num_attention_heads: field.nullable(field.oneOrList(field.int(8), 8)),
  dual_cross_attention: field.bool(false),
  use_linear_projection: field.bool(false),
  class_embed_type: nullableString,
  addition_embed_type: nullableString,
  addition_time_embed_dim: nullableInt,
  num_class_embeds: nullableInt,
  upcast_attention: field.nullable(field.bool(false), false),
  resnet_time_scale_shift: field.oneOf(["default", "scale_shift"], "default"),
  resnet_skip_time_act: field.bool(false),
  resnet_out_scale_factor: field.number(1),
  time_embedding_type: field.oneOf(["positional", "fourier"], "positional"),
  time_embedding_dim: nullableInt,
  time_embedding_act_fn: nullableString,
  timestep_post_act: nullableString,
  time_cond_proj_dim: nullableInt,
  conv_in_kernel: field.int(3),
  conv_out_kernel: field.int(3),
  projection_class_embeddings_input_dim: nullableInt,
  attention_type: field.string("default"),
  class_embeddings_concat: field.bool(false),
  mid_block_only_cross_attention: field.nullable(field.bool(false)),
  cross_attention_norm: nullableString,
  addition_embed_type_num_heads: field.int(64),
} as const;

export type UNet2DConditionModelConfig = ConfigOf<typeof UNET_2D_CONDITION_FIELDS>;

const UNET_2D_CONDITION_CONFIG = configReaders(UNET_2D_CONDITION_FIELDS);

/** Parses a UNet2DConditionModel config.json object (`file` names it in errors). */
export const parseUNet2DConditionModelConfig = UNET_2D_CONDITION_CONFIG.parse;

/** Reads and parses a UNet2DConditionModel config.json file. */
export const readUNet2DConditionModelConfig = UNET_2D_CONDITION_CONFIG.read;
