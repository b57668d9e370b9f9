/**
 * CLIPVisionModelWithProjection config: the fields of transformers' image_encoder `config.json`
 * (CLIPVisionConfig), verbatim, with the defaults of transformers 4.36
 * (src/transformers/models/clip/configuration_clip.py). A full `CLIPModel` config carries the same
 * fields under `vision_config` (and `projection_dim` at the top level): see ./validate.ts.
 */
import { field, type ConfigOf } from "../../config/parse.js";
import { configReaders } from "../config-readers.js";

export const CLIP_VISION_FIELDS = {
  hidden_size: field.int(768),
  intermediate_size: field.int(3072),
  projection_dim: field.int(512),
  num_hidden_layers: field.int(12),
  num_attention_heads: field.int(12),
  num_channels: field.int(3),
  image_size: field.int(224),
  patch_size: field.int(32),
  /**
   * "quick_gelu" (OpenAI ViT-L/14: x * sigmoid(1.702 x)) or "gelu" (erf; OpenCLIP ViT-H/14, IP-Adapter);
   * transformers' tanh approximations "gelu_new" / "gelu_pytorch_tanh" and "silu" / "swish" too.
   */
  hidden_act: field.oneOf(
    ["quick_gelu", "gelu", "gelu_new", "gelu_pytorch_tanh", "silu", "swish"],
    "quick_gelu",
  ),
  layer_norm_eps: field.number(1e-5),
  attention_dropout: field.number(0),
  initializer_range: field.number(0.02),
  initializer_factor: field.number(1),
} as const;

/** transformers bookkeeping fields that carry no model semantics. */
const IGNORED = ["architectures", "model_type", "torch_dtype", "transformers_version", "dropout"];

export type CLIPVisionConfig = ConfigOf<typeof CLIP_VISION_FIELDS>;

const CLIP_VISION_CONFIG = configReaders(CLIP_VISION_FIELDS, IGNORED);

/** Parses a CLIPVisionConfig object (`file` names it in errors). */
export const parseCLIPVisionConfig = CLIP_VISION_CONFIG.parse;
