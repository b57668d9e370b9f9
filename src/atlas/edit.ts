/**
 * Editing through the atlases of a fitted model folder (./fit.ts): export the foreground and
 * background atlases as PNGs (evaluate.py's `get_high_res_texture` over the fg crop [0, 1]² and the
 * background crop of `get_mapping_area`), read an edited PNG back as an RGBA edit layer, and render
 * every frame with only_edit.apply_edit's Eqs. 15-16 (the edit composited over the original frame
 * colours through the fitted mappings and alpha).
 *
 * An edited atlas is either RGBA (the release's edit format: colour + edit alpha, used as is) or RGB:
 * then the edit alpha is 1 exactly where the PNG differs from the exported atlas PNG, so repainting
 * a region of the exported file edits that region and nothing else.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { CorruptFileError, FileNotFoundError, InvalidArgumentError } from "../errors.js";
import { readImageFile, writePngFile } from "../control/png.js";
import type { Image } from "../image.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import { type WrittenVideo, writeVideo } from "../video/write.js";
import { type SessionTaskOptions, loadAtlasModel } from "./fit.js";
import {
  type AtlasCrop,
  type AtlasImage,
  FOREGROUND_CROP,
  type PixelMaps,
  applyEdit,
  atlasTexture,
  backgroundCrop,
  evaluatePixels,
  openRenderer,
  reconstructFromAtlases,
} from "./render.js";

export const ATLAS_FG_FILE = "atlas-fg.png";
export const ATLAS_BG_FILE = "atlas-bg.png";
export const ATLAS_INFO_FILE = "atlas.json";

/** atlas.json: resolution and crops of the exported PNGs. */
export interface AtlasExportInfo {
  readonly resolution: number;
  readonly foreground: AtlasCrop;
  readonly background: AtlasCrop;
  /** PSNR (dB) of the networks' reconstruction of every pixel of every frame. */
  readonly psnr: number;
  /** (with masks) the same inside the masks (pixels >= 128) and outside them: the object and the scene. */
  readonly psnrInsideMasks?: number;
  readonly psnrOutsideMasks?: number;
}

const threadsOf = (o: SessionTaskOptions): { threads?: number } =>
  o.threads === undefined ? {} : { threads: o.threads };

const toByte = (v: number): number => Math.max(0, Math.min(255, Math.round(v * 255)));

function imageOf(resolution: number, data: ArrayLike<number>): Image {
  return { width: resolution, height: resolution, channels: 3, data: Uint8Array.from(data, toByte) };
}

/** PSNR of a reconstruction against frames in [0, 1]. */
export function psnr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += ((a[i] ?? 0) - (b[i] ?? 0)) ** 2;
  return 10 * Math.log10(1 / (sum / Math.max(1, a.length)));
}

/**
 * PSNR of an [N, H, W, 3] reconstruction inside and outside [N, H, W] uint8 masks (>= 128 = inside);
 * NaN for a side without pixels.
 */
export function maskedPsnr(
  recon: ArrayLike<number>,
  frames: ArrayLike<number>,
  masks: ArrayLike<number>,
): { inside: number; outside: number } {
  const sums = [0, 0];
  const counts = [0, 0];
  for (let p = 0; p < masks.length; p++) {
    const k = (masks[p] ?? 0) >= 128 ? 0 : 1;
    for (let c = p * 3; c < p * 3 + 3; c++)
      sums[k] = (sums[k] ?? 0) + ((recon[c] ?? 0) - (frames[c] ?? 0)) ** 2;
    counts[k] = (counts[k] ?? 0) + 3;
  }
  const db = (k: number): number =>
    (counts[k] ?? 0) === 0 ? NaN : 10 * Math.log10(1 / ((sums[k] ?? 0) / (counts[k] ?? 1)));
  return { inside: db(0), outside: db(1) };
}

/** Default atlas image size for a model: 4x the larger frame side, at least 256, at most 1000 (the release's). */
export function defaultAtlasResolution(width: number, height: number): number {
  return Math.min(1000, Math.max(256, 4 * Math.max(width, height)));
}

/** Writes atlas-fg.png, atlas-bg.png and atlas.json into the model folder. */
export async function exportAtlases(
  dir: string,
  options: SessionTaskOptions & { readonly resolution?: number } = {},
): Promise<AtlasExportInfo> {
  const model = await loadAtlasModel(dir);
  const { info } = model;
  const r = options.resolution ?? defaultAtlasResolution(info.width, info.height);
  if (!Number.isInteger(r) || r < 2 || r > 4096)
    throw new InvalidArgumentError("--atlas-size", "an integer from 2 to 4096", r);
  const renderer = await openRenderer(info.nets, model.params, threadsOf(options));
  try {
    const maps = await evaluatePixels(renderer, info, options.signal);
    const crop = backgroundCrop(maps);
    const background: AtlasCrop = { minx: crop.minx, miny: crop.miny, edge: crop.edge };
    const fg = await atlasTexture(renderer, r, FOREGROUND_CROP);
    const bg = await atlasTexture(renderer, r, background);
    const frames = Float32Array.from(model.input.frames, (v) => v / 255);
    const masks = model.input.masks;
    const both = masks === undefined ? undefined : maskedPsnr(maps.recon, frames, masks);
    // reported when the masks have pixels on both sides
    const split = both === undefined || Number.isNaN(both.inside + both.outside) ? undefined : both;
    const result: AtlasExportInfo = {
      resolution: r,
      foreground: FOREGROUND_CROP,
      background,
      psnr: psnr(maps.recon, frames),
      ...(split === undefined ? {} : { psnrInsideMasks: split.inside, psnrOutsideMasks: split.outside }),
    };
    await writePngFile(join(dir, ATLAS_FG_FILE), imageOf(r, fg));
    await writePngFile(join(dir, ATLAS_BG_FILE), imageOf(r, bg));
    await writeFileAtomic(join(dir, ATLAS_INFO_FILE), `${JSON.stringify(result, null, 2)}\n`);
    return result;
  } finally {
    await renderer.release();
  }
}

async function readExportInfo(dir: string): Promise<AtlasExportInfo> {
  const path = join(dir, ATLAS_INFO_FILE);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (cause) {
    throw new FileNotFoundError(path, "atlas export info", {
      cause,
      hint: `run steadyframe atlas export ${dir} first`,
    });
  }
  try {
    return JSON.parse(text) as AtlasExportInfo;
  } catch (cause) {
    throw new CorruptFileError(path, "not JSON", undefined, {
      cause,
      hint: `run steadyframe atlas export ${dir} again`,
    });
  }
}

/** Reads an edited atlas PNG as an RGBA edit layer over `crop` (see the file comment). */
export async function readAtlasEdit(
  path: string,
  flag: string,
  exported: string,
  exportInfo: AtlasExportInfo,
  crop: AtlasCrop,
): Promise<AtlasImage> {
  const img = await readImageFile(path);
  const r = exportInfo.resolution;
  if (img.width !== r || img.height !== r)
    throw new InvalidArgumentError(
      flag,
      `a ${r}x${r} PNG (the exported atlas size)`,
      `${img.width}x${img.height} (${path})`,
      {
        hint: `edit the exported ${exported} without resizing it, or export again with --atlas-size ${img.width}`,
      },
    );
  const data = new Float64Array(r * r * 4);
  if (img.channels === 4) {
    for (let i = 0; i < data.length; i++) data[i] = (img.data[i] ?? 0) / 255;
  } else if (img.channels === 3) {
    const original = await readImageFile(exported);
    if (original.width !== r || original.height !== r || original.channels !== 3)
      throw new InvalidArgumentError(
        exported,
        `the exported ${r}x${r} RGB atlas`,
        `${original.width}x${original.height}`,
        {
          hint: "export the atlases again",
        },
      );
    for (let k = 0; k < r * r; k++) {
      let changed = false;
      for (let c = 0; c < 3; c++) {
        const v = img.data[k * 3 + c] ?? 0;
        data[k * 4 + c] = v / 255;
        if (v !== original.data[k * 3 + c]) changed = true;
      }
      data[k * 4 + 3] = changed ? 1 : 0;
    }
  } else {
    throw new InvalidArgumentError(flag, "an RGB or RGBA PNG", `${img.channels}-channel image (${path})`);
  }
  return { resolution: r, channels: 4, data, crop };
}

export interface RenderAtlasOptions extends SessionTaskOptions {
  /** (optional) edited background atlas PNG. */
  readonly background?: string;
  /** (optional) edited foreground atlas PNG. */
  readonly foreground?: string;
  /** (optional, default 10, the release's) frames per second of the video. */
  readonly fps?: number;
}

/** Rendered frames in [0, 1] ([N, H, W, 3]): the edit propagated, or the reconstruction from the atlas images. */
export async function renderAtlasFrames(
  dir: string,
  options: RenderAtlasOptions = {},
): Promise<{ frames: Float64Array; maps: PixelMaps }> {
  const model = await loadAtlasModel(dir);
  const exportInfo = await readExportInfo(dir);
  const fgEdit =
    options.foreground === undefined
      ? undefined
      : await readAtlasEdit(
          options.foreground,
          "--atlas-fg",
          join(dir, ATLAS_FG_FILE),
          exportInfo,
          FOREGROUND_CROP,
        );
  const bgEdit =
    options.background === undefined
      ? undefined
      : await readAtlasEdit(
          options.background,
          "--atlas",
          join(dir, ATLAS_BG_FILE),
          exportInfo,
          exportInfo.background,
        );
  const renderer = await openRenderer(model.info.nets, model.params, threadsOf(options));
  try {
    const maps = await evaluatePixels(renderer, model.info, options.signal);
    const original = Float32Array.from(model.input.frames, (v) => v / 255);
    if (fgEdit || bgEdit) return { frames: applyEdit(maps, original, fgEdit, bgEdit), maps };
    const fg = await readImageFile(join(dir, ATLAS_FG_FILE));
    const bg = await readImageFile(join(dir, ATLAS_BG_FILE));
    const asAtlas = (img: Image, crop: AtlasCrop): AtlasImage => ({
      resolution: exportInfo.resolution,
      channels: img.channels,
      data: Float64Array.from(img.data, (v) => v / 255),
      crop,
    });
    const rec = reconstructFromAtlases(
      maps,
      asAtlas(fg, FOREGROUND_CROP),
      asAtlas(bg, exportInfo.background),
    );
    // pixels that map outside both crops keep the networks' colour
    for (let k = 0; k < maps.alpha.length; k++)
      if (!rec.relevantFg[k] && !rec.relevantBg[k])
        for (let c = 0; c < 3; c++) rec.rgb[k * 3 + c] = maps.recon[k * 3 + c] ?? 0;
    return { frames: rec.rgb, maps };
  } finally {
    await renderer.release();
  }
}

/** Renders the model folder's video with the given edits into `out` (a video file or PNG folder). */
export async function renderAtlasVideo(
  dir: string,
  out: string,
  options: RenderAtlasOptions = {},
): Promise<WrittenVideo> {
  const { frames, maps } = await renderAtlasFrames(dir, options);
  const px = maps.width * maps.height * 3;
  const images: Image[] = Array.from({ length: maps.frames }, (_, f) => ({
    width: maps.width,
    height: maps.height,
    channels: 3,
    data: Uint8Array.from(frames.subarray(f * px, (f + 1) * px), toByte),
  }));
  return writeVideo(out, images, {
    fps: options.fps ?? 10,
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
}
