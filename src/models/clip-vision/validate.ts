/**
 * Checks a CLIP vision config before building: what the builder cannot honour throws here, naming
 * the field (UnsupportedError for architectures without the projection, ConfigError for
 * inconsistent values). Accepts an image_encoder `config.json` (CLIPVisionModelWithProjection) and a
 * full `CLIPModel` config (its `vision_config` plus the top-level `projection_dim`).
 */
import { ConfigError, UnsupportedError } from "../../errors.js";
import type { ActivationName } from "../../nn/activations.js";
import type { ClipLayerSpec } from "../clip/text-transformer.js";
import { type CLIPVisionConfig, parseCLIPVisionConfig } from "./config.js";

export interface ClipVisionSpec extends ClipLayerSpec {
  readonly config: CLIPVisionConfig;
  readonly act: ActivationName;
  readonly headDim: number;
  /** Patches per side: image_size / patch_size. */
  readonly grid: number;
  /** Sequence length: grid^2 patches + the class token. */
  readonly tokens: number;
  /** True for a full CLIPModel checkpoint (its text_model.* keys are ignored). */
  readonly fullClipModel: boolean;
  readonly warnings: readonly string[];
}

/** Architectures whose weights include vision_model.* and visual_projection.weight. */
const SUPPORTED_ARCHITECTURES = ["CLIPVisionModelWithProjection", "CLIPModel"];

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Parses and validates an image encoder config.json object (`file` names it in errors). */
export function resolveClipVisionSpec(file: string, json: unknown): ClipVisionSpec {
  const raw = isRecord(json) ? json : {};
  const architectures = raw["architectures"];
  if (
    Array.isArray(architectures) &&
    !architectures.some((a) => SUPPORTED_ARCHITECTURES.includes(String(a)))
  ) {
    throw new UnsupportedError(`image encoder architectures ${JSON.stringify(architectures)} (${file})`, {
      hint: "use a CLIPVisionModelWithProjection image_encoder folder (it has visual_projection), e.g. IP-Adapter's models/image_encoder",
    });
  }
  const nested = raw["vision_config"];
  const fullClipModel = isRecord(nested);
  const body = fullClipModel
    ? { ...nested, ...(raw["projection_dim"] === undefined ? {} : { projection_dim: raw["projection_dim"] }) }
    : json;
  const { config: c, warnings } = parseCLIPVisionConfig(
    fullClipModel ? `${file} (vision_config)` : file,
    body,
  );
  for (const [name, value] of [
    ["hidden_size", c.hidden_size],
    ["intermediate_size", c.intermediate_size],
    ["num_hidden_layers", c.num_hidden_layers],
    ["num_attention_heads", c.num_attention_heads],
    ["image_size", c.image_size],
    ["patch_size", c.patch_size],
    ["projection_dim", c.projection_dim],
  ] as const) {
    if (value < 1) throw new ConfigError(file, name, "a positive integer", value);
  }
  if (c.num_channels !== 3) throw new ConfigError(file, "num_channels", "3 (RGB)", c.num_channels);
  if (c.hidden_size % c.num_attention_heads !== 0) {
    throw new ConfigError(
      file,
      "num_attention_heads",
      `a divisor of hidden_size (${c.hidden_size})`,
      c.num_attention_heads,
    );
  }
  if (c.image_size % c.patch_size !== 0) {
    throw new ConfigError(file, "patch_size", `a divisor of image_size (${c.image_size})`, c.patch_size);
  }
  const grid = c.image_size / c.patch_size;
  const act: ActivationName =
    c.hidden_act === "gelu_new" || c.hidden_act === "gelu_pytorch_tanh" ? "gelu_tanh" : c.hidden_act;
  return {
    config: c,
    act,
    headDim: c.hidden_size / c.num_attention_heads,
    grid,
    tokens: grid * grid + 1,
    fullClipModel,
    warnings,
  };
}
