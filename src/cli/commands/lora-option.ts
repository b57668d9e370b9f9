/**
 * `--lora FILE[:SCALE]` (repeatable) of the `image` and `video` commands: a LoRA file fused into the
 * UNet and text encoder at load, with its scale (default 1, as A1111's `<lora:name:1>`).
 */
import { stat } from "node:fs/promises";
import { FileNotFoundError, InvalidArgumentError } from "../../errors.js";
import type { LoraSetting } from "../../weights/lora/index.js";

/** The --help line(s) of the flag. */
export const LORA_HELP =
  "  --lora <file[:scale]>     a LoRA (kohya/A1111, diffusers or PEFT .safetensors) fused into the UNet\n" +
  "                            and text encoder at that scale (default 1; repeatable, the LoRAs add up)\n" +
  "  --lora-live               keep the LoRAs unfused, their scales live model inputs: one compiled\n" +
  "                            model for every scale (slower steps than the default fused weights)\n";

/** The --help lines of `--tiny-vae` (image and video). */
export const TINY_VAE_HELP =
  "  --tiny-vae <dir|file>     decode (and encode img2img starts) with a Tiny AutoEncoder (TAESD: a\n" +
  "                            diffusers AutoencoderTiny folder or taesd_decoder/_encoder files):\n" +
  "                            much faster than the model's VAE, slightly less detailed\n";

/** --lora-live needs a --lora. */
export function checkLoraLive(live: boolean | undefined, loras: readonly LoraSetting[]): boolean {
  if (live === true && loras.length === 0)
    throw new InvalidArgumentError("--lora-live", "at least one --lora", "none", {
      hint: "add --lora FILE[:SCALE], or drop --lora-live",
    });
  return live === true;
}

/**
 * "style.safetensors:0.8" -> { path, scale: 0.8 }; "style.safetensors" -> scale 1. The scale is the
 * text after the last ":" when it is a number (so "C:\\loras\\a.safetensors" stays a path).
 */
export function parseLoraFlag(text: string): LoraSetting {
  const colon = text.lastIndexOf(":");
  const tail = colon > 0 ? text.slice(colon + 1) : undefined;
  const isNumber = tail !== undefined && /^\s*[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?\s*$/i.test(tail);
  const path = isNumber ? text.slice(0, colon) : text;
  const scale = isNumber ? Number(tail) : 1;
  if (path === "") throw new InvalidArgumentError("--lora", "a LoRA file path, optionally with :scale", text);
  if (!Number.isFinite(scale))
    throw new InvalidArgumentError("--lora", "a finite scale after the last ':'", text);
  return { path, scale };
}

/** Every --lora value parsed, each file checked to exist (before any model loads). */
export async function loraOption(values: readonly string[] | undefined): Promise<LoraSetting[]> {
  const loras = (values ?? []).map(parseLoraFlag);
  for (const lora of loras) {
    const info = await stat(lora.path).catch(() => undefined);
    if (!info?.isFile()) {
      throw new FileNotFoundError(lora.path, "--lora file", {
        hint: "pass a LoRA .safetensors file, optionally followed by :scale (e.g. style.safetensors:0.8)",
      });
    }
  }
  return loras;
}
