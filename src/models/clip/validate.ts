/**
 * Checks a CLIPTextModel config before building: what the builder cannot honour throws here, naming
 * the field (UnsupportedError for features, ConfigError for inconsistent values).
 */
import { ConfigError, UnsupportedError } from "../../errors.js";
import type { ParseOptions } from "../../config/parse.js";
import type { ActivationName } from "../../nn/activations.js";
import { type CLIPTextConfig, parseCLIPTextConfig } from "./config.js";

export interface ClipSpec {
  readonly config: CLIPTextConfig;
  /** The MLP activation (`hidden_act`; transformers' "gelu_new" is the tanh approximation). */
  readonly act: ActivationName;
  readonly headDim: number;
  /** Notes about ignored unknown config keys. */
  readonly warnings: readonly string[];
}

/** transformers ACT2FN names -> the graph activation computing the same function. */
const CLIP_ACTIVATIONS: Readonly<Record<CLIPTextConfig["hidden_act"], ActivationName>> = {
  quick_gelu: "quick_gelu",
  gelu: "gelu",
  gelu_python: "gelu",
  gelu_new: "gelu_tanh",
  gelu_pytorch_tanh: "gelu_tanh",
  silu: "silu",
  swish: "silu",
};

/** Architectures whose weights are exactly CLIPTextModel's. */
const SUPPORTED_ARCHITECTURES = ["CLIPTextModel"];

/** Parses and validates a text_encoder/config.json object (`file` names it in errors). */
export function resolveClipSpec(file: string, json: unknown, options: ParseOptions = {}): ClipSpec {
  const { config: c, warnings } = parseCLIPTextConfig(file, json, options);
  const raw = json as Readonly<Record<string, unknown>>;
  const architectures = raw["architectures"];
  if (
    Array.isArray(architectures) &&
    !architectures.some((a) => SUPPORTED_ARCHITECTURES.includes(String(a)))
  ) {
    throw new UnsupportedError(`text encoder architectures ${JSON.stringify(architectures)} (${file})`, {
      hint: "only CLIPTextModel is built (no text_projection); SDXL's CLIPTextModelWithProjection is not supported yet",
    });
  }
  for (const [name, value] of [
    ["hidden_size", c.hidden_size],
    ["intermediate_size", c.intermediate_size],
    ["num_hidden_layers", c.num_hidden_layers],
    ["num_attention_heads", c.num_attention_heads],
    ["max_position_embeddings", c.max_position_embeddings],
    ["vocab_size", c.vocab_size],
  ] as const) {
    if (value < 1) throw new ConfigError(file, name, "a positive integer", value);
  }
  if (c.hidden_size % c.num_attention_heads !== 0) {
    throw new ConfigError(
      file,
      "num_attention_heads",
      `a divisor of hidden_size (${c.hidden_size})`,
      c.num_attention_heads,
    );
  }
  const act = CLIP_ACTIVATIONS[c.hidden_act];
  return { config: c, act, headDim: c.hidden_size / c.num_attention_heads, warnings };
}
