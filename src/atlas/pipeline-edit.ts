/**
 * Editing an atlas with the image pipeline instead of by hand: the StableVideo route
 * (rese1f/StableVideo, app.py: the background atlas is edited once by a ControlNet-guided Stable
 * Diffusion run on the atlas image, resized back to the atlas size, and rendered through the
 * fitted UV maps). Here the exported atlas texture of one layer is the img2img start (at
 * `strength`; 1 = from noise, as StableVideo's background edit) and, with a ControlNet, its own
 * Canny edges are the control image (StableVideo's foreground key frames use Canny 100/200; its
 * background uses MiDaS depth, which `src/control/depth.ts` could give as well), so the atlas keeps
 * its structure. The result is written as an opaque RGBA PNG of the atlas's size: `atlas render
 * --atlas` (background) or `--atlas-fg` (foreground) then replaces every pixel of that layer by the
 * edited texture (./edit.ts, Eqs. 15-16 with edit alpha 1).
 *
 * Errors name the CLI flags (`steadyframe atlas edit`), as exportAtlases' --atlas-size does.
 * Everything that can be checked is checked before a model loads: the model folder holds a fitted
 * atlas, the layer, strength and sizes, the --model / --controlnet paths and the output location.
 */
import { access, stat } from "node:fs/promises";
import { join } from "node:path";
import { FileNotFoundError, InvalidArgumentError } from "../errors.js";
import type { Image } from "../image.js";
import { canny } from "../control/canny.js";
import { readImageFile, writePngFile } from "../control/png.js";
import { resizeImage } from "../control/resize.js";
import { imageToTensor, tensorToImages, toRGB } from "../pipeline/images.js";
import { StableDiffusionPipeline } from "../pipeline/stable-diffusion.js";
import type { ExecutionProvider } from "../runtime/session.js";
import { SCHEDULER_CLASS_NAMES, SCHEDULER_NAMES } from "../schedulers/registry.js";
import { withAtomicFile } from "../util/atomic-write.js";
import { ATLAS_BG_FILE, ATLAS_FG_FILE, ATLAS_INFO_FILE, exportAtlases } from "./edit.js";
import { CHECKPOINT_FILE, MODEL_FILE, type SessionTaskOptions } from "./fit.js";

/** The atlas layers an edit can target. */
export const ATLAS_LAYERS = ["background", "foreground"] as const;
export type AtlasLayer = (typeof ATLAS_LAYERS)[number];

export interface PipelineEditOptions extends SessionTaskOptions {
  /** A diffusers Stable Diffusion folder (model_index.json). */
  readonly model: string;
  /** (optional) a Canny ControlNet (diffusers folder or file): the atlas's own edges guide the edit. */
  readonly controlnet?: string;
  readonly prompt: string;
  /** (optional, default "") */
  readonly negativePrompt?: string;
  /** (optional, default "background") which exported atlas is edited. */
  readonly layer?: AtlasLayer;
  /** (optional, default 0.75) img2img strength in [0, 1]: the part of the schedule that is run. */
  readonly strength?: number;
  /** (optional, default 20, StableVideo's DDIM steps) denoising steps. */
  readonly steps?: number;
  /** (optional, default 9, StableVideo's) classifier-free guidance scale. */
  readonly guidance?: number;
  /** (optional, default 0) torch-compatible seed. */
  readonly seed?: number | bigint;
  /**
   * (optional, default the atlas size, at most 512 (StableVideo's image_resolution), rounded down to
   * the pipeline's multiple) side of the square image the pipeline works at; the result is resized
   * back to the atlas size.
   */
  readonly size?: number;
  /** (optional, default 100, 200) Canny thresholds of the control image. */
  readonly canny?: { readonly threshold1: number; readonly threshold2: number };
  /** (optional, default 1) ControlNet conditioning scale. */
  readonly controlScale?: number;
  /** (optional) scheduler name (default: the model folder's). */
  readonly scheduler?: string;
  /** (optional) ONNX Runtime execution providers (default CPU). */
  readonly executionProviders?: readonly ExecutionProvider[];
  /** (optional) compiled-model cache folder. */
  readonly cacheDir?: string;
  /** (optional) receives warnings (a prompt cut at 77 tokens). */
  readonly onWarning?: (message: string) => void;
}

export interface PipelineEditResult {
  readonly path: string;
  readonly layer: AtlasLayer;
  /** Side of the written atlas PNG (the exported atlas size). */
  readonly resolution: number;
  /** Side of the image the pipeline ran at. */
  readonly size: number;
  /** Whether the atlas was exported first (no atlas.json / PNG in the folder). */
  readonly exported: boolean;
  /** Mean absolute change of the atlas colours, in 8-bit levels. */
  readonly meanChange: number;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Refuses a folder without a fitted atlas model (model.json + checkpoint), naming the fix. */
export async function requireFittedAtlas(dir: string): Promise<void> {
  for (const file of [MODEL_FILE, CHECKPOINT_FILE])
    if (!(await exists(join(dir, file))))
      throw new FileNotFoundError(join(dir, file), "fitted atlas model", {
        hint: `DIR must be a folder written by steadyframe atlas fit (fit one first: steadyframe atlas fit <video> --out ${dir})`,
      });
}

/** Checks the layer name (InvalidArgumentError naming `flag`). */
export function atlasLayer(value: string | undefined, flag = "--layer"): AtlasLayer {
  if (value === undefined) return "background";
  const found = ATLAS_LAYERS.find((l) => l === value);
  if (found === undefined)
    throw new InvalidArgumentError(flag, `one of ${ATLAS_LAYERS.join(", ")}`, value, {
      hint: "background edits atlas-bg.png (render --atlas), foreground atlas-fg.png (render --atlas-fg)",
    });
  return found;
}

function checkRange(name: string, v: number, min: number, max: number): number {
  if (!Number.isFinite(v) || v < min || v > max)
    throw new InvalidArgumentError(name, `a number from ${min} to ${max}`, v);
  return v;
}

function checkInteger(name: string, v: number, min: number): number {
  if (!Number.isSafeInteger(v) || v < min) throw new InvalidArgumentError(name, `an integer >= ${min}`, v);
  return v;
}

/** The --model folder: present and a diffusers pipeline (its configs are read, nothing is loaded). */
async function checkModel(model: string, controlnet: string | undefined): Promise<number> {
  const info = await stat(model).catch(() => undefined);
  if (info === undefined || !info.isDirectory())
    throw new FileNotFoundError(model, "--model (a diffusers Stable Diffusion folder)", {
      hint: "pass the folder that holds model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/",
    });
  const summary = await StableDiffusionPipeline.inspect(model);
  if (controlnet !== undefined && (await stat(controlnet).catch(() => undefined)) === undefined)
    throw new FileNotFoundError(controlnet, "--controlnet (a Canny ControlNet folder or checkpoint file)");
  return Math.max(8, summary.vaeScaleFactor);
}

/**
 * Edits the exported `layer` atlas of the fitted model in `dir` with the image pipeline and writes
 * the edited atlas to `out` (an RGBA PNG of the atlas's size, alpha 255). Exports the atlases first
 * when the folder has none.
 */
export async function editAtlasWithPipeline(
  dir: string,
  out: string,
  options: PipelineEditOptions,
): Promise<PipelineEditResult> {
  const layer = options.layer ?? "background";
  atlasLayer(layer);
  const strength = checkRange("--strength", options.strength ?? 0.75, 0, 1);
  const steps = checkInteger("--steps", options.steps ?? 20, 1);
  const guidance = checkRange("--guidance", options.guidance ?? 9, 0, Number.MAX_VALUE);
  const controlScale = checkRange("--control-scale", options.controlScale ?? 1, 0, Number.MAX_VALUE);
  if (options.prompt.trim() === "") throw new InvalidArgumentError("--prompt", "a prompt", options.prompt);
  if (!out.toLowerCase().endsWith(".png")) throw new InvalidArgumentError("--out", "a .png file path", out);
  const scheduler = options.scheduler;
  if (
    scheduler !== undefined &&
    !Object.hasOwn(SCHEDULER_NAMES, scheduler) &&
    !(SCHEDULER_CLASS_NAMES as readonly string[]).includes(scheduler)
  )
    throw new InvalidArgumentError(
      "--scheduler",
      `one of ${Object.keys(SCHEDULER_NAMES).join(", ")}`,
      scheduler,
    );
  await requireFittedAtlas(dir);
  const multiple = await checkModel(options.model, options.controlnet);

  // the exported atlas (exported now when the folder has none)
  const atlasFile = join(dir, layer === "background" ? ATLAS_BG_FILE : ATLAS_FG_FILE);
  const exported = !(await exists(join(dir, ATLAS_INFO_FILE))) || !(await exists(atlasFile));
  if (exported)
    await exportAtlases(dir, {
      ...(options.threads === undefined ? {} : { threads: options.threads }),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  const atlas = toRGB(await readImageFile(atlasFile));
  const resolution = atlas.width;
  if (atlas.height !== resolution)
    throw new InvalidArgumentError(atlasFile, "a square exported atlas", `${atlas.width}x${atlas.height}`, {
      hint: `export the atlases again: steadyframe atlas export ${dir}`,
    });
  const size =
    options.size === undefined
      ? Math.max(multiple, Math.floor(Math.min(512, resolution) / multiple) * multiple)
      : checkInteger("--size", options.size, multiple);
  if (size % multiple !== 0)
    throw new InvalidArgumentError("--size", `a multiple of ${multiple} (the pipeline's)`, size);

  // the pipeline's input: the atlas at the working size, and its Canny edges
  const scaled = (img: Image, side: number): Promise<Image> =>
    resizeImage(img, {
      width: side,
      height: side,
      interpolation: side < img.width ? "area" : "cubic",
    });
  const start = await scaled(atlas, size);
  const controls = [];
  if (options.controlnet !== undefined) {
    const edges = await canny(start, options.canny ?? {});
    controls.push({ image: imageToTensor(toRGB(edges), "0,1"), scale: controlScale });
  }
  const pipeline = await StableDiffusionPipeline.load(options.model, {
    controlnets: options.controlnet === undefined ? [] : [options.controlnet],
    ...(options.executionProviders ? { executionProviders: options.executionProviders } : {}),
    ...(options.threads === undefined ? {} : { intraOpNumThreads: options.threads }),
    ...(options.cacheDir === undefined ? {} : { cacheDir: options.cacheDir }),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  let edited: Image;
  try {
    const result = await pipeline.generate({
      prompt: options.prompt,
      negativePrompt: options.negativePrompt ?? "",
      width: size,
      height: size,
      numInferenceSteps: steps,
      guidanceScale: guidance,
      seed: options.seed ?? 0,
      initImage: imageToTensor(start, "0,1"),
      strength,
      controls,
      ...(options.scheduler === undefined ? {} : { scheduler: options.scheduler }),
      ...(options.onWarning ? { onWarning: options.onWarning } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const [picture] = tensorToImages(result.image);
    if (picture === undefined) throw new InvalidArgumentError("image", "one generated image", 0);
    edited = await scaled(picture, resolution);
  } finally {
    await pipeline.release();
  }

  // opaque RGBA: the whole layer is the edit (an RGB file would keep the frame colour wherever a
  // pixel happens to be unchanged, see ./edit.ts)
  const rgba = new Uint8Array(resolution * resolution * 4);
  let change = 0;
  for (let k = 0; k < resolution * resolution; k++) {
    for (let c = 0; c < 3; c++) {
      const v = edited.data[k * 3 + c] ?? 0;
      rgba[k * 4 + c] = v;
      change += Math.abs(v - (atlas.data[k * 3 + c] ?? 0));
    }
    rgba[k * 4 + 3] = 255;
  }
  await withAtomicFile(
    out,
    (temp) => writePngFile(temp, { width: resolution, height: resolution, channels: 4, data: rgba }),
    options.signal ? { signal: options.signal } : {},
  );
  return {
    path: out,
    layer,
    resolution,
    size,
    exported,
    meanChange: change / (resolution * resolution * 3),
  };
}
