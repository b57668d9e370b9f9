/**
 * Tune-A-Video's UNet3DConditionModel config (showlab/Tune-A-Video `tuneavideo/models/unet.py`,
 * diffusers 0.11.1 field names): the UNet2DConditionModel fields with `*3D` block types and
 * mid_block_type "UNetMidBlock3DCrossAttn". A plain UNet2DConditionModel config is accepted too (the
 * release's `from_pretrained_2d` route: the 2D weights, new temporal layers).
 *
 * Differences from the release, on purpose: `from_pretrained_2d` overwrites the block types with the
 * SD 4-level layout (3 CrossAttnDownBlock3D + DownBlock3D, ...), so it only loads 4-level UNets; here
 * each 2D block type maps to its 3D twin, which is the same for SD 1.x/2.x and also builds smaller
 * UNets. A 2D config naming mid_block_type "UNetMidBlock2DCrossAttn" (newer diffusers write it) is
 * accepted instead of refused.
 */
import { ConfigError } from "../../errors.js";
import { type UNet2DConditionModelConfig, parseUNet2DConditionModelConfig } from "../unet/config.js";

/** 3D block type -> the 2D block it inflates. */
const TO_2D: Readonly<Record<string, string>> = {
  CrossAttnDownBlock3D: "CrossAttnDownBlock2D",
  DownBlock3D: "DownBlock2D",
  CrossAttnUpBlock3D: "CrossAttnUpBlock2D",
  UpBlock3D: "UpBlock2D",
  UNetMidBlock3DCrossAttn: "UNetMidBlock2DCrossAttn",
};

/** 2D block type -> its 3D twin (the names Tune-A-Video's saved config.json uses). */
const TO_3D: Readonly<Record<string, string>> = Object.fromEntries(
  Object.entries(TO_2D).map(([k, v]) => [v, k]),
);

/** The class names a UNet3DConditionModel loader accepts in config.json `_class_name`. */
const CLASS_NAMES = ["UNet3DConditionModel", "UNet2DConditionModel"];

export interface UNet3DConfig {
  /** The config as a UNet2DConditionModel config (the graph reuses the 2D UNet's modules). */
  readonly config: UNet2DConditionModelConfig;
  /** True when config.json was a UNet3DConditionModel's (a tuned checkpoint: temporal weights expected). */
  readonly inflated: boolean;
  /** The config.json object as read (unknown fields kept for saving). */
  readonly raw: Readonly<Record<string, unknown>>;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function mapTypes(value: unknown, table: Readonly<Record<string, string>>): unknown {
  if (Array.isArray(value)) return value.map((t) => (typeof t === "string" ? (table[t] ?? t) : t));
  return typeof value === "string" ? (table[value] ?? value) : value;
}

/** Parses a UNet3DConditionModel (or UNet2DConditionModel) config.json object; `file` names it in errors. */
export function parseUNet3DConditionModelConfig(file: string, json: unknown): UNet3DConfig {
  if (!isRecord(json)) throw new ConfigError(file, "(root)", "a JSON object", json);
  const className = json["_class_name"];
  if (className !== undefined && !CLASS_NAMES.includes(String(className))) {
    throw new ConfigError(file, "_class_name", CLASS_NAMES.join(" or "), className, {
      hint: "give the unet/ folder of a Tune-A-Video checkpoint or of a Stable Diffusion 1.x/2.x model",
    });
  }
  const inflated = className === "UNet3DConditionModel";
  const as2d: Record<string, unknown> = { ...json, _class_name: "UNet2DConditionModel" };
  for (const key of ["down_block_types", "up_block_types", "mid_block_type"]) {
    if (key in json) as2d[key] = mapTypes(json[key], TO_2D);
  }
  const { config } = parseUNet2DConditionModelConfig(file, as2d);
  return { config, inflated, raw: json };
}

/**
 * The config.json Tune-A-Video's `UNet3DConditionModel.save_pretrained` writes for a model made from
 * `raw` (a 2D or 3D config object): `_class_name` "UNet3DConditionModel", 3D block types,
 * mid_block_type "UNetMidBlock3DCrossAttn", keys sorted as diffusers writes them.
 */
export function unet3dConfigJson(raw: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {
    ...raw,
    _class_name: "UNet3DConditionModel",
    _diffusers_version: typeof raw["_diffusers_version"] === "string" ? raw["_diffusers_version"] : "0.11.1",
    down_block_types: mapTypes(raw["down_block_types"], TO_3D),
    up_block_types: mapTypes(raw["up_block_types"], TO_3D),
    mid_block_type: "UNetMidBlock3DCrossAttn",
  };
  return Object.fromEntries(
    Object.keys(out)
      .sort()
      .map((k) => [k, out[k]]),
  );
}
