/**
 * LoRA files as people download them, read into one list of modules (a down/up pair and an optional
 * alpha each) whatever the key format. The formats are those diffusers 0.26.3's
 * `LoraLoaderMixin.lora_state_dict` / `UNet2DConditionLoadersMixin.load_attn_procs` accept:
 *
 * - kohya sd-scripts / A1111: `lora_unet_<module path with "_">.lora_down.weight`, `.lora_up.weight`,
 *   `.alpha` (and `lora_te_` / `lora_te1_` / `lora_te2_` for the text encoders). The module path is
 *   resolved against the model's own keys later (./key-map.ts): "_" is ambiguous.
 * - diffusers: `unet.<module>.lora.down.weight` / `.lora.up.weight` (text encoder:
 *   `text_encoder.<module>.lora_linear_layer.down.weight`), optional `<prefix>.<module>.alpha`.
 * - PEFT: `unet.<module>.lora_A.weight` (down) / `.lora_B.weight` (up).
 * - the old attention-processor format (diffusers <= 0.20 `save_attn_procs`):
 *   `<block>.attn1.processor.to_q_lora.down.weight` (`to_out_lora` = module `to_out.0`), and the old
 *   text-encoder form `text_encoder.<...>.self_attn.to_q_lora.down.weight` (= `q_proj`).
 *
 * Keys that fit none of these (LyCORIS LoHa/LoKr, DoRA scales, a down without its up) are returned as
 * problems, never dropped. Tensors stay on disk: only the 0-dim alphas are read here.
 */
import { stat } from "node:fs/promises";
import { FileNotFoundError } from "../../errors.js";
import type { WeightStore } from "../../nn/weight-store.js";
import { type Shape, elementAsNumber, numel, shapeToString } from "../../tensor.js";
import { openCheckpointStore } from "../single-file.js";

/** The models a LoRA can target (`text_encoder_2`: SDXL's second encoder, reported when absent). */
export type LoraModel = "unet" | "text_encoder" | "text_encoder_2";

/** The key formats above. */
export type LoraFormat = "kohya" | "diffusers" | "peft" | "attn_procs";

/** One LoRA module of a file: where it goes (as the file names it) and its tensors. */
export interface LoraFileModule {
  readonly format: LoraFormat;
  readonly model: LoraModel;
  /**
   * kohya: the module path with "_" for "." (`down_blocks_0_resnets_0_conv1`), resolved against the
   * model's keys later; other formats: the diffusers/transformers module path itself.
   */
  readonly name: string;
  /** kohya: the key prefix (`lora_unet_down_blocks_0_resnets_0_conv1`); else the module path as in the file. */
  readonly fileName: string;
  readonly downKey: string;
  readonly upKey: string;
  readonly alphaKey?: string;
  readonly downShape: Shape;
  readonly upShape: Shape;
  /** `down.shape[0]`. */
  readonly rank: number;
  /** The stored alpha (kohya `network_alpha`), or undefined: then alpha / rank = 1. */
  readonly alpha?: number;
}

/** A key that could not be placed, and why. */
export interface LoraKeyProblem {
  readonly file: string;
  readonly key: string;
  readonly reason: string;
}

export interface LoraFile {
  readonly path: string;
  /** "path:size:mtime" (part of the fused model's cache identity). */
  readonly identity: string;
  readonly store: WeightStore;
  readonly modules: readonly LoraFileModule[];
  readonly problems: readonly LoraKeyProblem[];
}

type Part = "down" | "up" | "alpha";

interface ParsedKey {
  readonly format: LoraFormat;
  readonly model: LoraModel;
  readonly name: string;
  readonly fileName: string;
  readonly part: Part;
}

const KOHYA = /^(lora_unet|lora_te[12]?)_([^.]+)\.(lora_down\.weight|lora_up\.weight|alpha)$/;
const KOHYA_MODEL: Readonly<Record<string, LoraModel>> = {
  lora_unet: "unet",
  lora_te: "text_encoder",
  lora_te1: "text_encoder",
  lora_te2: "text_encoder_2",
};
const PREFIXED = /^(unet|text_encoder|text_encoder_2)\.(.+)$/;
const DIFFUSERS = /^(.+)\.(?:lora|lora_linear_layer)\.(down|up)\.weight$/;
const PEFT = /^(.+)\.lora_([AB])\.weight$/;
const ATTN_PROCS = /^(.+)\.processor\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$/;
const OLD_TEXT = /^(.+\.self_attn)\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$/;
const ALPHA = /^(.+)\.alpha$/;

const ATTN_MODULE: Readonly<Record<string, string>> = {
  to_q: "to_q",
  to_k: "to_k",
  to_v: "to_v",
  to_out: "to_out.0",
};
const TEXT_ATTN_MODULE: Readonly<Record<string, string>> = {
  to_q: "q_proj",
  to_k: "k_proj",
  to_v: "v_proj",
  to_out: "out_proj",
};

/** What a key names, or undefined for a key of no known LoRA format. */
export function parseLoraKey(key: string): ParsedKey | undefined {
  const k = KOHYA.exec(key);
  if (k) {
    const [, prefix = "", name = "", part = ""] = k;
    return {
      format: "kohya",
      model: KOHYA_MODEL[prefix] ?? "unet",
      name,
      fileName: `${prefix}_${name}`,
      part: part === "alpha" ? "alpha" : part.startsWith("lora_down") ? "down" : "up",
    };
  }
  const prefixed = PREFIXED.exec(key);
  const rest = prefixed?.[2] ?? key;
  // Unprefixed keys (old attention processors, load_attn_procs files) are the UNet's, unless they
  // spell a transformers text-model path.
  const model: LoraModel =
    (prefixed?.[1] as LoraModel | undefined) ?? (rest.startsWith("text_model.") ? "text_encoder" : "unet");
  const entry = (format: LoraFormat, name: string, part: Part): ParsedKey => ({
    format,
    model,
    name,
    fileName: name,
    part,
  });
  const procs = ATTN_PROCS.exec(rest);
  if (procs) {
    const [, block = "", proj = "", part = ""] = procs;
    return entry("attn_procs", `${block}.${ATTN_MODULE[proj] ?? proj}`, part as Part);
  }
  const oldText = model === "unet" ? null : OLD_TEXT.exec(rest);
  if (oldText) {
    const [, block = "", proj = "", part = ""] = oldText;
    return entry("attn_procs", `${block}.${TEXT_ATTN_MODULE[proj] ?? proj}`, part as Part);
  }
  const diffusers = DIFFUSERS.exec(rest);
  if (diffusers) return entry("diffusers", diffusers[1] ?? "", diffusers[2] as Part);
  const peft = PEFT.exec(rest);
  if (peft) return entry("peft", peft[1] ?? "", peft[2] === "A" ? "down" : "up");
  const alpha = ALPHA.exec(rest);
  if (alpha && prefixed) return entry("diffusers", alpha[1] ?? "", "alpha");
  return undefined;
}

/** Why a key of no known format was refused (named in the error). */
function unknownReason(key: string): string {
  if (/\.(hada_|lokr_)/.test(key))
    return "LyCORIS LoHa/LoKr key: only LoRA/LoCon (lora_down/lora_up) is supported";
  if (/\.lora_mid\./.test(key)) return "LoCon Tucker (lora_mid) key: not supported";
  if (/dora_scale/.test(key)) return "DoRA magnitude key: not supported";
  if (/^lora_/.test(key)) return "kohya-style key of an unknown model prefix or part";
  return "not a LoRA key of a known format (kohya lora_unet_*/lora_te_*, diffusers *.lora.down/up, PEFT *.lora_A/B, *.processor.to_*_lora)";
}

/** Opens a LoRA file (.safetensors, or a torch .bin/.pt/.ckpt through the safe unpickler) and groups its keys. */
export async function readLoraFile(path: string): Promise<LoraFile> {
  const info = await stat(path).catch(() => undefined);
  if (!info?.isFile())
    throw new FileNotFoundError(path, "LoRA file", { hint: "pass a .safetensors LoRA file" });
  const store = await openCheckpointStore(path);
  const problems: LoraKeyProblem[] = [];
  const groups = new Map<string, { parsed: ParsedKey; keys: Partial<Record<Part, string>> }>();
  for (const key of store.keys()) {
    const parsed = parseLoraKey(key);
    if (parsed === undefined) {
      problems.push({ file: path, key, reason: unknownReason(key) });
      continue;
    }
    const id = `${parsed.model}\0${parsed.name}`;
    const group = groups.get(id) ?? { parsed, keys: {} };
    groups.set(id, group);
    const previous = group.keys[parsed.part];
    if (previous !== undefined) {
      problems.push({ file: path, key, reason: `names the same ${parsed.part} tensor as ${previous}` });
      continue;
    }
    group.keys[parsed.part] = key;
  }
  const modules: LoraFileModule[] = [];
  for (const { parsed, keys } of groups.values()) {
    const { down, up, alpha } = keys;
    if (down === undefined || up === undefined) {
      const missing = down === undefined ? "down (lora_down / lora_A)" : "up (lora_up / lora_B)";
      for (const key of [down, up, alpha]) {
        if (key !== undefined)
          problems.push({ file: path, key, reason: `its module has no ${missing} tensor` });
      }
      continue;
    }
    const downShape = store.info(down)?.shape ?? [];
    const upShape = store.info(up)?.shape ?? [];
    const rank = downShape[0] ?? 0;
    if (![2, 4].includes(downShape.length) || upShape.length !== downShape.length || upShape[1] !== rank) {
      problems.push({
        file: path,
        key: down,
        reason: `down ${shapeToString(downShape)} and up ${shapeToString(upShape)} are not a rank-${rank} LoRA pair (down [r, in] / [r, in, kh, kw], up [out, r] / [out, r, 1, 1])`,
      });
      continue;
    }
    let alphaValue: number | undefined;
    if (alpha !== undefined) {
      const t = await store.source(alpha).load();
      if (numel(t.shape) !== 1) {
        problems.push({
          file: path,
          key: alpha,
          reason: `alpha should be one number, is ${shapeToString(t.shape)}`,
        });
        continue;
      }
      alphaValue = elementAsNumber(t, 0);
    }
    modules.push({
      format: parsed.format,
      model: parsed.model,
      name: parsed.name,
      fileName: parsed.fileName,
      downKey: down,
      upKey: up,
      ...(alpha === undefined ? {} : { alphaKey: alpha }),
      downShape,
      upShape,
      rank,
      ...(alphaValue === undefined ? {} : { alpha: alphaValue }),
    });
  }
  return { path, identity: `${path}:${info.size}:${info.mtimeMs}`, store, modules, problems };
}
