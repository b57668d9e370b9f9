/**
 * ControlNetModel config: the fields of diffusers' `controlnet/config.json`, verbatim, with the defaults
 * of `ControlNetModel.__init__` in diffusers 0.26.3 (src/diffusers/models/controlnet.py).
 */
import { field, type ConfigOf } from "../../config/parse.js";
import { configReaders } from "../config-readers.js";
import { UNET_2D_CONDITION_FIELDS as U } from "../unet/config.js";

export const CONTROLNET_FIELDS = {
  in_channels: U.in_channels,
  conditioning_channels: field.int(3),
  flip_sin_to_cos: U.flip_sin_to_cos,
  freq_shift: U.freq_shift,
  down_block_types: U.down_block_types,
  mid_block_type: U.mid_block_type,
  only_cross_attention: U.only_cross_attention,
  block_out_channels: U.block_out_channels,
  layers_per_block: field.int(2),
  downsample_padding: U.downsample_padding,
  mid_block_scale_factor: U.mid_block_scale_factor,
  act_fn: U.act_fn,
  norm_num_groups: U.norm_num_groups,
  norm_eps: U.norm_eps,
  cross_attention_dim: field.int(1280),
  transformer_layers_per_block: U.transformer_layers_per_block,
  encoder_hid_dim: U.encoder_hid_dim,
  encoder_hid_dim_type: U.encoder_hid_dim_type,
  attention_head_dim: U.attention_head_dim,
  num_attention_heads: U.num_attention_heads,
  use_linear_projection: U.use_linear_projection,
  class_embed_type: U.class_embed_type,
  addition_embed_type: U.addition_embed_type,
  addition_time_embed_dim: U.addition_time_embed_dim,
  num_class_embeds: U.num_class_embeds,
  upcast_attention: U.upcast_attention,
  resnet_time_scale_shift: U.resnet_time_scale_shift,
  projection_class_embeddings_input_dim: U.projection_class_embeddings_input_dim,
  controlnet_conditioning_channel_order: field.oneOf(["rgb", "bgr"], "rgb"),
  conditioning_embedding_out_channels: field.list(field.int(0), [16, 32, 96, 256]),
  global_pool_conditions: field.bool(false),
  addition_embed_type_num_heads: U.addition_embed_type_num_heads,
} as const;

export type ControlNetModelConfig = ConfigOf<typeof CONTROLNET_FIELDS>;

const CONTROLNET_CONFIG = configReaders(CONTROLNET_FIELDS);

/** Parses a ControlNetModel config.json object (`file` names it in errors). */
export const parseControlNetModelConfig = CONTROLNET_CONFIG.parse;

/** Reads and parses a ControlNetModel config.json file. */
export const readControlNetModelConfig = CONTROLNET_CONFIG.read;

/** The config fields a ControlNet takes over from its UNet (diffusers `ControlNetModel.from_unet`). */
export const CONTROLNET_FIELDS_FROM_UNET = [
  "in_channels",
  "flip_sin_to_cos",
  "freq_shift",
  "down_block_types",
  "only_cross_attention",
  "block_out_channels",
  "layers_per_block",
  "downsample_padding",
  "mid_block_scale_factor",
  "act_fn",
  "norm_num_groups",
  "norm_eps",
  "cross_attention_dim",
  "transformer_layers_per_block",
  "attention_head_dim",
  "num_attention_heads",
  "use_linear_projection",
  "upcast_attention",
  "resnet_time_scale_shift",
] as const;
