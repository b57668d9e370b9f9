/**
 * Original single-file Stable Diffusion layout (CompVis LDM / lllyasviel cldm) -> diffusers keys.
 *
 * A single-file checkpoint holds the UNet under `model.diffusion_model.`, the VAE under
 * `first_stage_model.`, the SD1 text encoder (HF CLIPTextModel keys) under `cond_stage_model.transformer.`,
 * and a ControlNet under `control_model.`. The architecture is not in the file: block indices depend on
 * `layers_per_block`, on which up blocks have attention and on the number of VAE levels, so the mapping
 * takes those from the component configs. Rules follow diffusers 0.26.3's converters
 * (src/diffusers/loaders/single_file_utils.py: convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint,
 * convert_controlnet_checkpoint), restated here as per-key rewrites.
 */

/** Bumped whenever a rule changes, so models cached from single files are rebuilt. */
export const LDM_KEY_MAP_VERSION = 2;

export type LdmComponent = "unet" | "vae" | "text_encoder" | "controlnet";

export interface KeyMapping {
  readonly source: string;
  readonly component: LdmComponent;
  readonly key: string;
  /** The VAE mid-block attention q/k/v/proj_out are 1x1 convs [C,C,1,1] in LDM and Linear [C,C] in diffusers. */
  readonly squeeze1x1?: true;
  /**
   * The target is one of `of` equal parts of the source along dim 0 (OpenCLIP's `attn.in_proj_*`
   * stacks q, k and v; diffusers keeps `q_proj`, `k_proj`, `v_proj`).
   */
  readonly rows?: { readonly part: number; readonly of: number };
}

export interface LdmLayout {
  /** UNet (and ControlNet) `layers_per_block`. */
  readonly layersPerBlock: number;
  /** For each UNet up block: does it have attentions (CrossAttnUpBlock2D)? */
  readonly upBlockHasAttention: readonly boolean[];
  /** Number of VAE levels (len(block_out_channels)). */
  readonly vaeLevels: number;
  /**
   * The text encoder's `num_hidden_layers`. SD 2.x conditions on OpenCLIP's penultimate layer, so its
   * diffusers text encoder has one layer fewer than the file's resblocks (23 of 24): resblocks at or
   * past this count are unused and skipped. Undefined: every resblock is mapped.
   */
  readonly textLayers?: number;
}

/** SD 2.x single files hold the OpenCLIP text model (open_clip's own names) under this prefix. */
export const OPEN_CLIP_PREFIX = "cond_stage_model.model.";

export const LDM_PREFIXES: Readonly<Record<LdmComponent, string>> = {
  unet: "model.diffusion_model.",
  vae: "first_stage_model.",
  text_encoder: "cond_stage_model.transformer.",
  controlnet: "control_model.",
};

/** Keys real checkpoints carry that no diffusers component uses (EMA copies, schedule buffers, ids). */
export function isIgnoredLdmKey(key: string): boolean {
  return (
    key.startsWith("model_ema.") ||
    key.endsWith("position_ids") ||
    [
      "betas",
      "alphas_cumprod",
      "alphas_cumprod_prev",
      "sqrt_alphas_cumprod",
      "sqrt_one_minus_alphas_cumprod",
      "log_one_minus_alphas_cumprod",
      "sqrt_recip_alphas_cumprod",
      "sqrt_recipm1_alphas_cumprod",
      "posterior_variance",
      "posterior_log_variance_clipped",
      "posterior_mean_coef1",
      "posterior_mean_coef2",
      "logvar",
    ].includes(key)
  );
}

const RESNET_RENAMES: readonly (readonly [string, string])[] = [
  ["in_layers.0.", "norm1."],
  ["in_layers.2.", "conv1."],
  ["emb_layers.1.", "time_emb_proj."],
  ["out_layers.0.", "norm2."],
  ["out_layers.3.", "conv2."],
  ["skip_connection.", "conv_shortcut."],
];

function renameResnet(rest: string): string | undefined {
  for (const [from, to] of RESNET_RENAMES) if (rest.startsWith(from)) return to + rest.slice(from.length);
  return undefined;
}

/** Splits "12.0.in_layers.0.weight" into [12, 0, "in_layers.0.weight"]. */
function indices(rest: string): [number, number, string] | undefined {
  const m = /^(\d+)\.(\d+)\.(.+)$/.exec(rest);
  return m ? [Number(m[1]), Number(m[2]), m[3] ?? ""] : undefined;
}

/** The UNet-shaped part shared by the UNet and the ControlNet (time embedding, conv_in, down and mid blocks). */
function mapUNetEncoderKey(key: string, layout: LdmLayout): string | undefined {
  const L = layout.layersPerBlock;
  const timeEmbed = /^time_embed\.(0|2)\.(.+)$/.exec(key);
  if (timeEmbed) return `time_embedding.linear_${timeEmbed[1] === "0" ? 1 : 2}.${timeEmbed[2]}`;
  if (key.startsWith("input_blocks.0.0.")) return `conv_in.${key.slice("input_blocks.0.0.".length)}`;
  if (key.startsWith("input_blocks.")) {
    const parsed = indices(key.slice("input_blocks.".length));
    if (parsed === undefined) return undefined;
    const [block, layer, rest] = parsed;
    const level = Math.floor((block - 1) / (L + 1));
    const j = (block - 1) % (L + 1);
    if (j === L) {
      // the downsampler closes the level: input_blocks.{(L+1)(i+1)}.0.op
      return rest.startsWith("op.") && layer === 0
        ? `down_blocks.${level}.downsamplers.0.conv.${rest.slice(3)}`
        : undefined;
    }
    if (layer === 0) {
      const r = renameResnet(rest);
      return r === undefined ? undefined : `down_blocks.${level}.resnets.${j}.${r}`;
    }
    return layer === 1 ? `down_blocks.${level}.attentions.${j}.${rest}` : undefined;
  }
  const mid = /^middle_block\.(\d)\.(.+)$/.exec(key);
  if (mid) {
    const rest = mid[2] ?? "";
    if (mid[1] === "1") return `mid_block.attentions.0.${rest}`;
    const r = renameResnet(rest);
    return r === undefined ? undefined : `mid_block.resnets.${mid[1] === "0" ? 0 : 1}.${r}`;
  }
  return undefined;
}

export function mapUNetKey(key: string, layout: LdmLayout): string | undefined {
  const L = layout.layersPerBlock;
  if (key.startsWith("out.0.")) return `conv_norm_out.${key.slice(6)}`;
  if (key.startsWith("out.2.")) return `conv_out.${key.slice(6)}`;
  if (key.startsWith("output_blocks.")) {
    const parsed = indices(key.slice("output_blocks.".length));
    if (parsed === undefined) return undefined;
    const [block, layer, rest] = parsed;
    const level = Math.floor(block / (L + 1));
    const j = block % (L + 1);
    if (layer === 0) {
      const r = renameResnet(rest);
      return r === undefined ? undefined : `up_blocks.${level}.resnets.${j}.${r}`;
    }
    const hasAttention = layout.upBlockHasAttention[level] === true;
    const upsamplerLayer = hasAttention ? 2 : 1;
    if (j === L && layer === upsamplerLayer && rest.startsWith("conv.")) {
      return `up_blocks.${level}.upsamplers.0.${rest}`;
    }
    return hasAttention && layer === 1 ? `up_blocks.${level}.attentions.${j}.${rest}` : undefined;
  }
  return mapUNetEncoderKey(key, layout);
}

export function mapControlNetKey(key: string, layout: LdmLayout, hintConvs: number): string | undefined {
  const hint = /^input_hint_block\.(\d+)\.(.+)$/.exec(key);
  if (hint) {
    const index = Number(hint[1]);
    const rest = hint[2] ?? "";
    if (index % 2 !== 0) return undefined;
    if (index === 0) return `controlnet_cond_embedding.conv_in.${rest}`;
    if (index === 2 * (hintConvs + 1)) return `controlnet_cond_embedding.conv_out.${rest}`;
    return `controlnet_cond_embedding.blocks.${index / 2 - 1}.${rest}`;
  }
  const zero = /^zero_convs\.(\d+)\.0\.(.+)$/.exec(key);
  if (zero) return `controlnet_down_blocks.${zero[1]}.${zero[2]}`;
  if (key.startsWith("middle_block_out.0."))
    return `controlnet_mid_block.${key.slice("middle_block_out.0.".length)}`;
  return mapUNetEncoderKey(key, layout);
}

const VAE_ATTENTION: Readonly<Record<string, string>> = {
  norm: "group_norm",
  q: "to_q",
  k: "to_k",
  v: "to_v",
  proj_out: "to_out.0",
};

export function mapVaeKey(key: string, layout: LdmLayout): { key: string; squeeze1x1?: true } | undefined {
  const resnet = (rest: string): string => rest.replace(/^nin_shortcut\./, "conv_shortcut.");
  const side = /^(encoder|decoder)\.(.+)$/.exec(key);
  if (side === null) {
    return /^(quant_conv|post_quant_conv)\./.test(key) ? { key } : undefined;
  }
  const [, part, rest = ""] = side;
  if (rest.startsWith("norm_out.")) return { key: `${part}.conv_norm_out.${rest.slice(9)}` };
  if (/^conv_(in|out)\./.test(rest)) return { key: `${part}.${rest}` };
  const midBlock = /^mid\.block_(1|2)\.(.+)$/.exec(rest);
  if (midBlock)
    return { key: `${part}.mid_block.resnets.${Number(midBlock[1]) - 1}.${resnet(midBlock[2] ?? "")}` };
  const midAttn = /^mid\.attn_1\.(norm|q|k|v|proj_out)\.(weight|bias)$/.exec(rest);
  if (midAttn) {
    const name = VAE_ATTENTION[midAttn[1] ?? ""] ?? "";
    const mapped = `${part}.mid_block.attentions.0.${name}.${midAttn[2]}`;
    return midAttn[1] !== "norm" && midAttn[2] === "weight"
      ? { key: mapped, squeeze1x1: true }
      : { key: mapped };
  }
  const level = /^(down|up)\.(\d+)\.(.+)$/.exec(rest);
  if (level === null) return undefined;
  const [, direction, n = "0", inner = ""] = level;
  if ((direction === "down") !== (part === "encoder")) return undefined;
  // Decoder levels are numbered in reverse: LDM up.{n-1-i} is diffusers up_blocks.i.
  const i = part === "encoder" ? Number(n) : layout.vaeLevels - 1 - Number(n);
  const blocks = part === "encoder" ? "down_blocks" : "up_blocks";
  const block = /^block\.(\d+)\.(.+)$/.exec(inner);
  if (block) return { key: `${part}.${blocks}.${i}.resnets.${block[1]}.${resnet(block[2] ?? "")}` };
  const sample = /^(downsample|upsample)\.conv\.(.+)$/.exec(inner);
  if (sample)
    return {
      key: `${part}.${blocks}.${i}.${part === "encoder" ? "downsamplers" : "upsamplers"}.0.conv.${sample[2]}`,
    };
  return undefined;
}

const OPEN_CLIP_BLOCK_RENAMES: readonly (readonly [string, string])[] = [
  ["ln_1.", "layer_norm1."],
  ["ln_2.", "layer_norm2."],
  ["mlp.c_fc.", "mlp.fc1."],
  ["mlp.c_proj.", "mlp.fc2."],
  ["attn.out_proj.", "self_attn.out_proj."],
];

/** OpenCLIP keys no diffusers CLIPTextModel has (the contrastive head, the causal mask buffer). */
const OPEN_CLIP_UNUSED = new Set(["text_projection", "logit_scale", "attn_mask"]);

/**
 * One OpenCLIP text-model key (after the prefix) as diffusers CLIPTextModel keys, as diffusers
 * 0.26.3's convert_open_clip_checkpoint renames them: `"ignored"` for the parts SD does not use,
 * undefined for a key no rule knows.
 */
export function mapOpenClipKey(
  key: string,
  layout: LdmLayout,
): readonly { key: string; rows?: { part: number; of: number } }[] | "ignored" | undefined {
  if (OPEN_CLIP_UNUSED.has(key)) return "ignored";
  if (key === "token_embedding.weight") return [{ key: "text_model.embeddings.token_embedding.weight" }];
  if (key === "positional_embedding") return [{ key: "text_model.embeddings.position_embedding.weight" }];
  if (key.startsWith("ln_final.")) return [{ key: `text_model.final_layer_norm.${key.slice(9)}` }];
  const block = /^transformer\.resblocks\.(\d+)\.(.+)$/.exec(key);
  if (block === null) return undefined;
  const index = Number(block[1]);
  const rest = block[2] ?? "";
  if (layout.textLayers !== undefined && index >= layout.textLayers) return "ignored";
  const prefix = `text_model.encoder.layers.${index}.`;
  const inProj = /^attn\.in_proj_(weight|bias)$/.exec(rest);
  if (inProj) {
    return (["q_proj", "k_proj", "v_proj"] as const).map((name, part) => ({
      key: `${prefix}self_attn.${name}.${inProj[1]}`,
      rows: { part, of: 3 },
    }));
  }
  for (const [from, to] of OPEN_CLIP_BLOCK_RENAMES) {
    if (rest.startsWith(from)) return [{ key: `${prefix}${to}${rest.slice(from.length)}` }];
  }
  return undefined;
}

/** Number of hint convs between conv_in and conv_out, derived from the keys (2 in tiny, 6 in real nets). */
export function countHintConvs(keys: Iterable<string>, prefix = LDM_PREFIXES.controlnet): number {
  let last = 0;
  for (const key of keys) {
    const m = new RegExp(`^${prefix.replace(/\./g, "\\.")}input_hint_block\\.(\\d+)\\.`).exec(key);
    if (m) last = Math.max(last, Number(m[1]));
  }
  return Math.max(0, last / 2 - 1);
}

export interface LdmMappingResult {
  readonly mappings: readonly KeyMapping[];
  /** Keys under a known prefix that no rule maps (reported to the user as unexpected). */
  readonly unmapped: readonly string[];
  /** Keys deliberately skipped (EMA weights, schedule buffers, position ids, other prefixes). */
  readonly ignored: readonly string[];
}

/** Maps every key of a single-file checkpoint; nothing is dropped silently. */
export function mapLdmCheckpoint(keys: readonly string[], layout: LdmLayout): LdmMappingResult {
  const mappings: KeyMapping[] = [];
  const unmapped: string[] = [];
  const ignored: string[] = [];
  const hintConvs = countHintConvs(keys);
  for (const source of keys) {
    if (isIgnoredLdmKey(source)) {
      ignored.push(source);
      continue;
    }
    if (source.startsWith(OPEN_CLIP_PREFIX)) {
      const mapped = mapOpenClipKey(source.slice(OPEN_CLIP_PREFIX.length), layout);
      if (mapped === "ignored") ignored.push(source);
      else if (mapped === undefined) unmapped.push(source);
      else for (const m of mapped) mappings.push({ source, component: "text_encoder", ...m });
      continue;
    }
    const component = (Object.keys(LDM_PREFIXES) as LdmComponent[]).find((c) =>
      source.startsWith(LDM_PREFIXES[c]),
    );
    if (component === undefined) {
      ignored.push(source);
      continue;
    }
    const rest = source.slice(LDM_PREFIXES[component].length);
    let mapped: { key: string; squeeze1x1?: true } | undefined;
    if (component === "unet") {
      const key = mapUNetKey(rest, layout);
      mapped = key === undefined ? undefined : { key };
    } else if (component === "controlnet") {
      const key = mapControlNetKey(rest, layout, hintConvs);
      mapped = key === undefined ? undefined : { key };
    } else if (component === "vae") {
      mapped = mapVaeKey(rest, layout);
    } else {
      mapped = { key: rest };
    }
    if (mapped === undefined) unmapped.push(source);
    else mappings.push({ source, component, ...mapped });
  }
  return { mappings, unmapped, ignored };
}
