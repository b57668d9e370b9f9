/**
 * `steadyframe image --uni uni.ckpt ...`: Uni-ControlNet text-to-image (../../pipeline/uni-controlnet.ts)
 * with local condition maps given as images (`--local canny,depth --control a.png,b.png`, in any
 * order; stacked in the model's channel order) and an optional content image (`--global`, encoded by a
 * CLIP ViT-L/14 image encoder, `--image-encoder`). The tokenizer, text encoder and VAE come from
 * `--model` (a diffusers SD-1.5 folder) or, with `--config` instead, from the uni.ckpt itself. The
 * sampler is the original demo's (LDM DDIM). Every argument and file is checked before loading.
 */
import { stat } from "node:fs/promises";
import { basename, dirname, extname, join } from "node:path";
import { CorruptFileError, FileNotFoundError, InvalidArgumentError } from "../../errors.js";
import type { Image } from "../../image.js";
import { readImageFile, writePngFile } from "../../control/png.js";
import { resizeImage } from "../../control/resize.js";
import { imageToTensor, tensorToImages, toRGB } from "../../pipeline/images.js";
import { parseAutoencoderKLConfig } from "../../models/vae/config.js";
import { readJsonFile } from "../../config/parse.js";
import { readPipelineFolder } from "../../pipeline/components.js";
import {
  UNI_LOCAL_CONDITION_ORDER,
  type UniLocalConditionName,
  generateUni,
  stackLocalConditions,
} from "../../pipeline/uni-controlnet.js";
import { loadUniPipeline } from "../../pipeline/uni-controlnet-load.js";
import type { ProviderFailure } from "../../runtime/session.js";
import { explainFallback } from "../../runtime/session.js";
import type { HostTensor } from "../../tensor.js";
import { withAtomicFile } from "../../util/atomic-write.js";
import type { CliIO } from "../command.js";
import { checkOutputPath } from "../output-path.js";
import { progressBar } from "../progress-bar.js";
import { deviceOption } from "./cli-options.js";

/** The flags `image` adds for Uni-ControlNet (spread into its parseArgs options). */
export const UNI_IMAGE_OPTIONS = {
  uni: { type: "string" },
  local: { type: "string" },
  global: { type: "string" },
  "local-strength": { type: "string" },
  "global-strength": { type: "string" },
} as const;

/** Usage lines of those flags. */
export const UNI_IMAGE_HELP = `  --uni <uni.ckpt>          Uni-ControlNet (the original uni.ckpt or a .safetensors copy) instead of a
                            plain UNet; --model is then a diffusers SD-1.5 folder (tokenizer, text
                            encoder, VAE), or give --config alone to take those weights from the uni.ckpt.
                            Sampler: the demo's DDIM (--steps S runs ceil(1000 / (1000 // S)) steps)
  --local <names>           with --uni: the local maps given by --control, comma-separated, one image each
                            in the same order: canny, mlsd, hed, sketch, openpose (pose), midas (depth),
                            seg; absent maps are zeros. Images are the maps themselves (white edges on
                            black; sketch dark on white; depth near = bright), resized to the output size
  --global <image>          with --uni: the content image (CLIP ViT-L/14 features of it, R and B swapped
                            as the original demo feeds CLIP; needs --image-encoder <dir>:
                            openai/clip-vit-large-patch14, transformers layout)
  --local-strength <s>      with --uni: multiplies the 13 local residuals (default 1)
  --global-strength <s>     with --uni: multiplies the 4 global tokens (default 1)
`;

const ALIASES: Readonly<Record<string, UniLocalConditionName>> = {
  depth: "midas",
  pose: "openpose",
  segmentation: "seg",
  lines: "mlsd",
  softedge: "hed",
};

/** The parsed `image` flags this command reads. */
export interface UniImageValues {
  readonly uni?: string | undefined;
  readonly model?: string | undefined;
  readonly config?: string | undefined;
  readonly prompt?: string | undefined;
  readonly "negative-prompt"?: string | undefined;
  readonly local?: string | undefined;
  readonly control?: string[] | undefined;
  readonly global?: string | undefined;
  readonly "image-encoder"?: string | undefined;
  readonly "local-strength"?: string | undefined;
  readonly "global-strength"?: string | undefined;
  readonly steps?: string | undefined;
  readonly guidance?: string | undefined;
  readonly eta?: string | undefined;
  readonly seed?: string | undefined;
  readonly "num-images"?: string | undefined;
  readonly width?: string | undefined;
  readonly height?: string | undefined;
  readonly device?: string | undefined;
  readonly "cache-dir"?: string | undefined;
  readonly threads?: string | undefined;
  readonly json?: boolean | undefined;
  readonly out?: string | undefined;
  /** Flags of `image` that do not combine with --uni (checked by name). */
  readonly [flag: string]: unknown;
}

const NOT_WITH_UNI = [
  "controlnet",
  "t2i-adapter",
  "control-scale",
  "init-image",
  "strength",
  "scheduler",
  "lora",
  "embedding",
  "latents",
  "clip-skip",
  "ip-adapter",
  "ip-image",
  "ip-scale",
  "lora-live",
] as const;

function num(
  flag: string,
  text: string | undefined,
  ok: (n: number) => boolean,
  expected: string,
): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || !ok(n))
    throw new InvalidArgumentError(flag, expected, text);
  return n;
}

const intFlag = (flag: string, text: string | undefined, min: number): number | undefined =>
  num(flag, text, (n) => Number.isSafeInteger(n) && n >= min, `an integer >= ${min}`);

async function needPath(flag: string, path: string, what: string, dir = false): Promise<void> {
  const info = await stat(path).catch(() => undefined);
  if (info === undefined) throw new FileNotFoundError(path, `${flag} ${what}`);
  if (dir !== info.isDirectory())
    throw new InvalidArgumentError(flag, dir ? "a folder" : "a file", path, { hint: what });
}

async function readRgb(flag: string, path: string): Promise<Image> {
  await needPath(flag, path, "image");
  const picture = await readImageFile(path).catch((error: unknown) => {
    if (!(error instanceof CorruptFileError)) throw error;
    throw new CorruptFileError(error.path, `${flag} image: ${error.reason}`, undefined, {
      cause: error,
      hint: "use an 8-bit PNG, JPEG or WebP file",
    });
  });
  return toRGB(picture);
}

/** `--local` names in the model's vocabulary (aliases resolved), checked for repeats. */
export function parseLocalNames(text: string | undefined): UniLocalConditionName[] {
  if (text === undefined || text.trim() === "") return [];
  const names = text.split(",").map((s) => s.trim().toLowerCase());
  const out = names.map((name) => {
    const resolved = ALIASES[name] ?? name;
    if (!(UNI_LOCAL_CONDITION_ORDER as readonly string[]).includes(resolved)) {
      throw new InvalidArgumentError(
        "--local",
        `names from ${UNI_LOCAL_CONDITION_ORDER.join(", ")} (or depth, pose)`,
        name,
      );
    }
    return resolved as UniLocalConditionName;
  });
  const repeated = out.find((n, i) => out.indexOf(n) !== i);
  if (repeated !== undefined) throw new InvalidArgumentError("--local", "each map once", repeated);
  return out;
}

/** The demo's size rule: short side -> `resolution`, both sides rounded to multiples of 64. */
export function uniSizeFor(
  width: number,
  height: number,
  resolution = 512,
): { width: number; height: number } {
  const k = resolution / Math.min(width, height);
  const round64 = (x: number): number => {
    const q = x / 64;
    const f = Math.floor(q);
    const r = q - f === 0.5 ? (f % 2 === 0 ? f : f + 1) : Math.round(q);
    return Math.max(64, r * 64);
  };
  return { width: round64(width * k), height: round64(height * k) };
}

/** Runs `image --uni`; `v` are the parsed `image` flags. */
export async function runUniImage(v: UniImageValues, io: CliIO): Promise<number> {
  const started = performance.now();
  const warn = (message: string): void => void io.stderr.write(`warning: ${message}\n`);
  // 1. Arguments that need no file.
  const uni = v.uni ?? "";
  for (const flag of NOT_WITH_UNI) {
    const value = v[flag];
    if (value !== undefined && !(Array.isArray(value) && value.length === 0))
      throw new InvalidArgumentError(
        `--${flag}`,
        "nothing with --uni (Uni-ControlNet runs its own adapters and sampler)",
        value,
      );
  }
  if (v["guess-mode"] === true) throw new InvalidArgumentError("--guess-mode", "nothing with --uni", true);
  if (v["prompt-syntax"] !== undefined && v["prompt-syntax"] !== "plain")
    throw new InvalidArgumentError("--prompt-syntax", "plain with --uni", v["prompt-syntax"]);
  if (v.prompt === undefined) throw new InvalidArgumentError("--prompt", "the prompt text", undefined);
  if (v.out === undefined || !v.out.toLowerCase().endsWith(".png"))
    throw new InvalidArgumentError("--out", "a .png file path", v.out);
  if ((v.model === undefined) === (v.config === undefined)) {
    throw new InvalidArgumentError(
      "--model / --config",
      "exactly one of them with --uni",
      v.model ?? v.config,
      {
        hint: "--model <diffusers SD-1.5 folder> takes its text encoder and VAE; --config <config folder> takes them from the uni.ckpt",
      },
    );
  }
  const names = parseLocalNames(v.local);
  const controls = (v.control ?? []).flatMap((c) => c.split(",")).filter((c) => c !== "");
  if (controls.length !== names.length) {
    throw new InvalidArgumentError(
      "--control",
      `one image per --local name (${names.length})`,
      `${controls.length} image(s)`,
    );
  }
  if (v["image-encoder"] !== undefined && v.global === undefined)
    warn("--image-encoder without --global is not used");
  if (v.global !== undefined && v["image-encoder"] === undefined) {
    throw new InvalidArgumentError(
      "--image-encoder",
      "a CLIPVisionModelWithProjection folder for --global",
      undefined,
      {
        hint: "the content image is encoded by CLIP ViT-L/14 (openai/clip-vit-large-patch14, transformers layout)",
      },
    );
  }
  const steps = intFlag("--steps", v.steps, 1) ?? 50;
  const count = intFlag("--num-images", v["num-images"], 1) ?? 1;
  const seed = BigInt(intFlag("--seed", v.seed, 0) ?? 0);
  const threads = intFlag("--threads", v.threads, 1);
  const guidance = num("--guidance", v.guidance, (n) => n >= 0, "a number >= 0") ?? 7.5;
  const eta = num("--eta", v.eta, (n) => n >= 0, "a number >= 0") ?? 0;
  const localStrength = num("--local-strength", v["local-strength"], (n) => n >= 0, "a number >= 0") ?? 1;
  const globalStrength = num("--global-strength", v["global-strength"], (n) => n >= 0, "a number >= 0") ?? 1;
  const providers = deviceOption(v.device);

  // 2. Files: checkpoint, folders, images, output location.
  await needPath("--uni", uni, "checkpoint (uni.ckpt or .safetensors)");
  const folderDir = v.model ?? v.config ?? "";
  await needPath(
    v.model !== undefined ? "--model" : "--config",
    folderDir,
    "diffusers folder (model_index.json)",
    true,
  );
  const folder = await readPipelineFolder(folderDir, { requireWeights: v.model !== undefined });
  const vaeDir = folder.components.get("vae")?.dir;
  if (vaeDir === undefined)
    throw new InvalidArgumentError(folderDir, "a pipeline with a vae component", "none");
  const vaeConfig = join(vaeDir, "config.json");
  const factor =
    2 **
    (parseAutoencoderKLConfig(vaeConfig, await readJsonFile(vaeConfig)).config.block_out_channels.length - 1);
  if (v["image-encoder"] !== undefined)
    await needPath("--image-encoder", v["image-encoder"], "CLIP vision folder", true);
  const pictures: Image[] = [];
  for (const path of controls) pictures.push(await readRgb("--control", path));
  const globalImage = v.global === undefined ? undefined : await readRgb("--global", v.global);
  const first = pictures[0];
  const auto = first ? uniSizeFor(first.width, first.height) : { width: 512, height: 512 };
  // The adapter sees maps at 8x the latent size, which must be a multiple of 64 (latent multiple of 8).
  const step = factor * 8;
  const side = (flag: string, text: string | undefined, fallback: number): number => {
    const n = num(
      flag,
      text,
      (x) => Number.isSafeInteger(x) && x > 0 && x % step === 0,
      `a positive multiple of ${step}`,
    );
    return n ?? Math.max(step, Math.round(fallback / step) * step);
  };
  const width = side("--width", v.width, auto.width);
  const height = side("--height", v.height, auto.height);
  const mapWidth = (width / factor) * 8;
  const mapHeight = (height / factor) * 8;
  const outputs = Array.from({ length: count }, (_, i) => {
    const out = v.out ?? "";
    if (count === 1) return out;
    const ext = extname(out);
    return join(dirname(out), `${basename(out, ext)}-${seed + BigInt(i)}${ext}`);
  });
  for (const path of outputs) await checkOutputPath("--out", path, "file");
  const maps: Partial<Record<UniLocalConditionName, HostTensor<"float32">>> = {};
  names.forEach((name, i) => {
    const p = pictures[i];
    if (p === undefined) return;
    maps[name] = imageToTensor(p, "0,1");
  });
  for (const name of names) {
    const p = pictures[names.indexOf(name)];
    if (p !== undefined && (p.width !== mapWidth || p.height !== mapHeight))
      maps[name] = imageToTensor(
        await resizeImage(p, { width: mapWidth, height: mapHeight, interpolation: "linear" }),
        "0,1",
      );
  }
  const localConditions = stackLocalConditions(maps, { batch: 1, height: mapHeight, width: mapWidth });

  // 3. Models.
  const failed = new Set<string>();
  const onFallback = (f: ProviderFailure): void => {
    if (failed.has(f.provider)) return;
    failed.add(f.provider);
    warn(`--device ${v.device ?? "cpu"}: ${explainFallback(f)}; running on the next provider (cpu)`);
  };
  const bar = progressBar(io.stderr, io.interactive);
  const loadStarted = performance.now();
  const pipeline = await loadUniPipeline(uni, {
    ...(v.model !== undefined ? { model: v.model } : { configDir: v.config ?? "" }),
    ...(v["image-encoder"] !== undefined && globalImage !== undefined
      ? { imageEncoder: v["image-encoder"] }
      : {}),
    executionProviders: providers,
    onFallback,
    ...(threads === undefined ? {} : { intraOpNumThreads: threads }),
    ...(v["cache-dir"] === undefined ? {} : { cacheDir: v["cache-dir"] }),
  });
  const loadSeconds = (performance.now() - loadStarted) / 1000;
  const written: { path: string; seed: string; seconds: number }[] = [];
  try {
    for (const [i, path] of outputs.entries()) {
      const imageStarted = performance.now();
      const imageSeed = seed + BigInt(i);
      const result = await generateUni(pipeline.components, {
        prompt: v.prompt,
        negativePrompt: v["negative-prompt"] ?? "",
        localConditions,
        ...(globalImage === undefined ? {} : { globalImage }),
        localStrength,
        globalStrength,
        steps,
        guidanceScale: guidance,
        eta,
        seed: imageSeed,
        onProgress: bar,
        signal: io.signal,
      });
      const [picture] = tensorToImages(result.image);
      if (picture === undefined) throw new InvalidArgumentError("image", "one generated image", 0);
      await withAtomicFile(path, (temp) => writePngFile(temp, picture), { signal: io.signal });
      written.push({ path, seed: String(imageSeed), seconds: (performance.now() - imageStarted) / 1000 });
      if (v.json !== true)
        io.stdout.write(
          `written: ${path} (${picture.width}x${picture.height}, Uni-ControlNet, seed ${imageSeed})\n`,
        );
    }
  } finally {
    await pipeline.release();
  }
  if (v.json === true) {
    const totalSeconds = (performance.now() - started) / 1000;
    io.stdout.write(
      `${JSON.stringify({ images: written, width, height, steps, timings: { loadSeconds, totalSeconds } })}\n`,
    );
  }
  return 0;
}
