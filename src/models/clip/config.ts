/**
 * CLIPTextModel config: the fields of transformers' `text_encoder/config.json` (CLIPTextConfig), verbatim,
 * with the defaults of transformers 4.36 (src/transformers/models/clip/configuration_clip.py).
 */
import { field, type ConfigOf } from "../../config/parse.js";
import { configReaders } from "../config-readers.js";

export const CLIP_TEXT_FIELDS = {
  vocab_size: field.int(49408),
  hidden_size: field.int(512),
  intermediate_size: field.int(2048),
  projection_dim: field.int(512),
  num_hidden_layers: field.int(12),
  num_attention_heads: field.int(8),
  max_position_embeddings: field.int(77),
  /**
   * "quick_gelu" (SD1: x * sigmoid(1.702 x)), "gelu" / "gelu_python" (erf; SD2's OpenCLIP),
   * "gelu_new" / "gelu_pytorch_tanh" (tanh approximation), "silu" / "swish" (transformers ACT2FN).
   */
  hidden_act: field.oneOf(
    ["quick_gelu", "gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_python", "silu", "swish"],
    "quick_gelu",
  ),
  layer_norm_eps: field.number(1e-5),
  attention_dropout: field.number(0),
  initializer_range: field.number(0.02),
  initializer_factor: field.number(1),
  pad_token_id: field.int(1),
  bos_token_id: field.int(49406),
  eos_token_id: field.int(49407),
} as const;

/** transformers bookkeeping fields that carry no model semantics. */
const IGNORED = [
  "architectures",
  "model_type",
  "torch_dtype",
  "transformers_version",
  "dropout",
  "projection_dim",
];

export type CLIPTextConfig = ConfigOf<typeof CLIP_TEXT_FIELDS>;

const CLIP_TEXT_CONFIG = configReaders(CLIP_TEXT_FIELDS, IGNORED);

/** Parses a CLIPTextModel config.json object (`file` names it in errors). */
export const parseCLIPTextConfig = CLIP_TEXT_CONFIG.parse;

/** Reads and parses a CLIPTextModel config.json file. */
export const readCLIPTextConfig = CLIP_TEXT_CONFIG.read;
