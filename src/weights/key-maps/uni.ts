/**
 * Uni-ControlNet's `uni.ckpt` (ShihaoZhaoZSH/Uni-ControlNet, `models/uni_controlnet.py`) seen as the
 * three graphs we build from it. The file is an LDM single-file checkpoint with two adapters:
 *
 * - `model.diffusion_model.*`: the SD-1.5 UNet (LDM names) -> diffusers UNet keys through the LDM
 *   key map (./ldm.ts `mapUNetKey`);
 * - `local_adapter.*`: a copy of the UNet encoder with ControlNet's `zero_convs` / `middle_block_out`
 *   (./ldm.ts `mapControlNetKey`: `down_blocks.*`, `controlnet_down_blocks.*`, `controlnet_mid_block`),
 *   plus what ControlNet lacks, kept under recognisable names: `feature_extractor.*` verbatim, and the
 *   FDN convs of the LocalResBlocks (`input_blocks.N.0.norm_{in,out}.conv_{gamma,beta}`) at
 *   `down_blocks.L.resnets.J.norm_{in,out}.*`; the result is prefixed `local_adapter.`;
 * - `global_adapter.*`: verbatim.
 *
 * `originalUniKey` inverts the renames so errors name the checkpoint's own keys. The 13 DDPM schedule
 * buffers, `first_stage_model.*` (VAE) and `cond_stage_model.*` (CLIP text) belong to no graph here.
 */
import { type LdmLayout, isIgnoredLdmKey, mapControlNetKey, mapUNetKey } from "./ldm.js";

/** The graphs a Uni-ControlNet checkpoint feeds. */
export type UniGraphPart = "unet" | "local_adapter" | "global_adapter";

export const UNI_PREFIXES: Readonly<Record<UniGraphPart, string>> = {
  unet: "model.diffusion_model.",
  local_adapter: "local_adapter.",
  global_adapter: "global_adapter.",
};

/** Bumped whenever a rule changes (cached graphs are named by it). */
export const UNI_KEY_MAP_VERSION = 1;

/** Which graph a checkpoint key belongs to, or undefined (VAE, text encoder, schedule buffers, ...). */
export function uniPartOf(key: string): UniGraphPart | undefined {
  return (Object.keys(UNI_PREFIXES) as UniGraphPart[]).find((p) => key.startsWith(UNI_PREFIXES[p]));
}

/** LDM input block `block` (>= 1) -> [level, index in level] for `layersPerBlock` resnets per level. */
function inputBlockSite(block: number, layersPerBlock: number): [number, number] {
  return [Math.floor((block - 1) / (layersPerBlock + 1)), (block - 1) % (layersPerBlock + 1)];
}

/** A `local_adapter.` key without its prefix -> the model key without prefix (undefined: no rule). */
export function mapLocalAdapterKey(rest: string, layout: LdmLayout): string | undefined {
  if (rest.startsWith("feature_extractor.")) return rest;
  const fdn = /^input_blocks\.(\d+)\.0\.(norm_in|norm_out)\.(conv_gamma|conv_beta)\.(weight|bias)$/.exec(
    rest,
  );
  if (fdn) {
    const [level, j] = inputBlockSite(Number(fdn[1]), layout.layersPerBlock);
    if (Number(fdn[1]) < 1 || j >= layout.layersPerBlock) return undefined;
    return `down_blocks.${level}.resnets.${j}.${fdn[2]}.${fdn[3]}.${fdn[4]}`;
  }
  if (rest.startsWith("input_hint_block.")) return undefined;
  return mapControlNetKey(rest, layout, 0);
}

/**
 * The model key of checkpoint key `key` for graph `part` (prefix included for the adapters), or
 * undefined when the key belongs to another graph. A key of the part that no rule maps keeps its
 * original name, so binding reports it as unexpected.
 */
export function mapUniKey(key: string, part: UniGraphPart, layout: LdmLayout): string | undefined {
  if (uniPartOf(key) !== part) return undefined;
  const rest = key.slice(UNI_PREFIXES[part].length);
  if (part === "global_adapter") return key;
  if (part === "unet") return mapUNetKey(rest, layout) ?? key;
  const mapped = mapLocalAdapterKey(rest, layout);
  return mapped === undefined ? key : `${UNI_PREFIXES.local_adapter}${mapped}`;
}

/** Keys of a full uni.ckpt that no graph of ours uses (schedule buffers, VAE, text encoder, EMA). */
export function isOutsideUniGraphs(key: string): boolean {
  return (
    isIgnoredLdmKey(key) ||
    key.startsWith("first_stage_model.") ||
    key.startsWith("cond_stage_model.") ||
    key === "lvlb_weights"
  );
}

const RESNET_NAMES: readonly (readonly [string, string])[] = [
  ["norm1.", "in_layers.0."],
  ["conv1.", "in_layers.2."],
  ["time_emb_proj.", "emb_layers.1."],
  ["norm2.", "out_layers.0."],
  ["conv2.", "out_layers.3."],
  ["conv_shortcut.", "skip_connection."],
  ["norm_in.", "norm_in."],
  ["norm_out.", "norm_out."],
];

function originalResnet(rest: string): string {
  for (const [from, to] of RESNET_NAMES) if (rest.startsWith(from)) return to + rest.slice(from.length);
  return rest;
}

/** diffusers encoder/decoder key (no prefix) -> LDM key, for error messages; unknown keys pass through. */
function originalEncoderKey(key: string, layout: LdmLayout): string {
  const L = layout.layersPerBlock;
  let m = /^time_embedding\.linear_(1|2)\.(.+)$/.exec(key);
  if (m) return `time_embed.${m[1] === "1" ? 0 : 2}.${m[2]}`;
  if (key.startsWith("conv_in.")) return `input_blocks.0.0.${key.slice(8)}`;
  if (key.startsWith("conv_norm_out.")) return `out.0.${key.slice(14)}`;
  if (key.startsWith("conv_out.")) return `out.2.${key.slice(9)}`;
  m = /^down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)$/.exec(key);
  if (m) {
    const block = 1 + Number(m[1]) * (L + 1) + Number(m[3]);
    const rest = m[4] ?? "";
    return m[2] === "resnets"
      ? `input_blocks.${block}.0.${originalResnet(rest)}`
      : `input_blocks.${block}.1.${rest}`;
  }
  m = /^down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)$/.exec(key);
  if (m) return `input_blocks.${(Number(m[1]) + 1) * (L + 1)}.0.op.${m[2]}`;
  m = /^mid_block\.(resnets|attentions)\.(\d+)\.(.+)$/.exec(key);
  if (m) {
    if (m[1] === "attentions") return `middle_block.1.${m[3]}`;
    return `middle_block.${m[2] === "0" ? 0 : 2}.${originalResnet(m[3] ?? "")}`;
  }
  m = /^up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)$/.exec(key);
  if (m) {
    const block = Number(m[1]) * (L + 1) + Number(m[3]);
    const rest = m[4] ?? "";
    return m[2] === "resnets"
      ? `output_blocks.${block}.0.${originalResnet(rest)}`
      : `output_blocks.${block}.1.${rest}`;
  }
  m = /^up_blocks\.(\d+)\.upsamplers\.0\.(.+)$/.exec(key);
  if (m) {
    const level = Number(m[1]);
    const layer = layout.upBlockHasAttention[level] === true ? 2 : 1;
    return `output_blocks.${level * (L + 1) + L}.${layer}.${m[2]}`;
  }
  m = /^controlnet_down_blocks\.(\d+)\.(.+)$/.exec(key);
  if (m) return `zero_convs.${m[1]}.0.${m[2]}`;
  if (key.startsWith("controlnet_mid_block.")) return `middle_block_out.0.${key.slice(21)}`;
  return key;
}

/** The checkpoint key a model key of graph `part` comes from (inverse of `mapUniKey`, for messages). */
export function originalUniKey(modelKey: string, part: UniGraphPart, layout: LdmLayout): string {
  if (part === "global_adapter" || modelKey.startsWith(UNI_PREFIXES.unet)) return modelKey;
  if (part === "unet") return `${UNI_PREFIXES.unet}${originalEncoderKey(modelKey, layout)}`;
  const prefix = UNI_PREFIXES.local_adapter;
  const rest = modelKey.startsWith(prefix) ? modelKey.slice(prefix.length) : modelKey;
  if (rest.startsWith("feature_extractor.")) return modelKey;
  return `${prefix}${originalEncoderKey(rest, layout)}`;
}
