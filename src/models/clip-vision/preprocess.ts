/**
 * CLIPImageProcessor (transformers 4.36 models/clip/image_processing_clip.py) exactly, on 8-bit
 * images: convert to RGB (PIL convert("RGB")), resize the shortest edge to `size` with the long
 * side int()-truncated (image_transforms.get_resize_output_image_size, default_to_square=False),
 * Pillow's BICUBIC resize (what image_transforms.resize runs on a uint8 array: `Image.resize((w, h),
 * BICUBIC, reducing_gap=None)`), center crop (floor offsets), rescale (uint8 * rescale_factor in
 * float64, cast to float32), normalise in float32 ((x - mean) / std), channels first.
 *
 * The resize restates Pillow 9.4's ImagingResample for 8-bit images (libImaging/Resample.c):
 * separable, the horizontal pass first (when the width changes) into an 8-bit image, then the
 * vertical pass; per output index the cubic filter (a = -0.5) is widened by the downscale factor
 * (antialias), weights are normalised, turned into 22-bit fixed point and every pass rounds to uint8.
 * Other resizers differ by up to 97 levels (shared/golden/clip_vision README); this one is bit-exact.
 */
import { ConfigError, InvalidArgumentError } from "../../errors.js";
import { type PillowFilter, pillowResize } from "../../image.js";
import { type Image, image } from "../../image.js";
import { type HostTensor, tensor } from "../../tensor.js";

export interface ClipImageProcessorConfig {
  readonly doResize: boolean;
  /** Target of the resize: the shortest edge, or an exact height x width. */
  readonly size: { readonly shortestEdge: number } | { readonly height: number; readonly width: number };
  /** (optional, default "bicubic") the Pillow filter of `resample` (PIL codes 0-5). */
  readonly resample?: PillowFilter;
  readonly doCenterCrop: boolean;
  readonly cropSize: { readonly height: number; readonly width: number };
  readonly doRescale: boolean;
  readonly rescaleFactor: number;
  readonly doNormalize: boolean;
  readonly imageMean: readonly [number, number, number];
  readonly imageStd: readonly [number, number, number];
}

/** OpenAI CLIP's mean/std (also OpenCLIP ViT-H/14's). */
export const OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

/** `CLIPImageProcessor()` with no arguments (what diffusers' load_ip_adapter uses without a feature_extractor). */
export const DEFAULT_CLIP_IMAGE_PROCESSOR: ClipImageProcessorConfig = {
  doResize: true,
  size: { shortestEdge: 224 },
  doCenterCrop: true,
  cropSize: { height: 224, width: 224 },
  doRescale: true,
  rescaleFactor: 1 / 255,
  doNormalize: true,
  imageMean: OPENAI_CLIP_MEAN,
  imageStd: OPENAI_CLIP_STD,
};

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const isPositiveInt = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v > 0;

/**
 * Parses a preprocessor_config.json object, in both forms in the wild: CLIPImageProcessor's dicts
 * (`size: {shortest_edge}`, `crop_size: {height, width}`) and old CLIPFeatureExtractor ints (int
 * `size` = shortest edge, int `crop_size` = square). Missing keys take CLIPImageProcessor's defaults.
 */
export function parseClipImageProcessorConfig(file: string, json: unknown): ClipImageProcessorConfig {
  if (!isRecord(json)) throw new ConfigError(file, "(root)", "a JSON object", json);
  const d = DEFAULT_CLIP_IMAGE_PROCESSOR;
  const bool = (key: string, fallback: boolean): boolean => {
    const v = json[key];
    if (v === undefined) return fallback;
    if (typeof v !== "boolean") throw new ConfigError(file, key, "true or false", v);
    return v;
  };
  const triple = (key: string, fallback: readonly [number, number, number]): [number, number, number] => {
    const v = json[key];
    if (v === undefined) return [...fallback];
    if (typeof v === "number") return [v, v, v];
    if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === "number" && Number.isFinite(x)))
      throw new ConfigError(file, key, "three numbers (R, G, B)", v);
    return [v[0] as number, v[1] as number, v[2] as number];
  };
  const rawSize = json["size"];
  let size: ClipImageProcessorConfig["size"] = d.size;
  if (isPositiveInt(rawSize)) size = { shortestEdge: rawSize };
  else if (isRecord(rawSize) && isPositiveInt(rawSize["shortest_edge"]))
    size = { shortestEdge: rawSize["shortest_edge"] };
  else if (isRecord(rawSize) && isPositiveInt(rawSize["height"]) && isPositiveInt(rawSize["width"]))
    size = { height: rawSize["height"], width: rawSize["width"] };
  else if (rawSize !== undefined)
    throw new ConfigError(file, "size", "an integer or {shortest_edge} or {height, width}", rawSize);
  const rawCrop = json["crop_size"];
  let cropSize = d.cropSize;
  if (isPositiveInt(rawCrop)) cropSize = { height: rawCrop, width: rawCrop };
  else if (isRecord(rawCrop) && isPositiveInt(rawCrop["height"]) && isPositiveInt(rawCrop["width"]))
    cropSize = { height: rawCrop["height"], width: rawCrop["width"] };
  else if (rawCrop !== undefined)
    throw new ConfigError(file, "crop_size", "an integer or {height, width}", rawCrop);
  const resample = parseResample(file, json["resample"]);
  const factor = json["rescale_factor"] ?? d.rescaleFactor;
  if (typeof factor !== "number" || !(factor > 0))
    throw new ConfigError(file, "rescale_factor", "a number > 0", factor);
  const std = triple("image_std", d.imageStd);
  if (std.some((s) => s === 0)) throw new ConfigError(file, "image_std", "non-zero numbers", std);
  return {
    doResize: bool("do_resize", d.doResize),
    size,
    resample,
    doCenterCrop: bool("do_center_crop", d.doCenterCrop),
    cropSize,
    doRescale: bool("do_rescale", d.doRescale),
    rescaleFactor: factor,
    doNormalize: bool("do_normalize", d.doNormalize),
    imageMean: triple("image_mean", d.imageMean),
    imageStd: std,
  };
}

/** PIL resample codes (PIL.Image.Resampling) -> the Pillow filters pillowResize implements. */
const PIL_RESAMPLE: Readonly<Record<number, PillowFilter>> = {
  0: "nearest",
  1: "lanczos",
  2: "bilinear",
  3: "bicubic",
  4: "box",
  5: "hamming",
};
/** preprocessor_config.json `resample` (a PIL code; default 3 = BICUBIC). */
function parseResample(file: string, value: unknown): PillowFilter {
  if (value === undefined) return "bicubic";
  const filter = typeof value === "number" ? PIL_RESAMPLE[value] : undefined;
  if (filter === undefined) throw new ConfigError(file, "resample", "a PIL resample code 0-5", value);
  return filter;
}

/** transformers get_resize_output_image_size(default_to_square=False): [height, width]. */
export function resizeTarget(
  height: number,
  width: number,
  size: ClipImageProcessorConfig["size"],
): [number, number] {
  if ("height" in size) return [size.height, size.width];
  const s = size.shortestEdge;
  const [short, long] = width <= height ? [width, height] : [height, width];
  const newLong = Math.trunc((s * long) / short); // Python int(): truncates, never rounds
  return width <= height ? [newLong, s] : [s, newLong];
}

/** PIL `Image.resize((width, height), Image.BICUBIC, reducing_gap=None)` of an RGB image, bit-exact. */
export function pillowBicubicResize(img: Image, width: number, height: number): Image {
  return pillowResize(img, width, height, "bicubic");
}

/**
 * transformers image_transforms.center_crop of an RGB image: offsets floor((size - crop) / 2); a crop
 * larger than the image (e.g. do_resize false, or crop_size > size) is zero-padded around the image
 * (centred, pad offsets floor((crop - size) / 2)), as transformers does.
 */
export function centerCrop(img: Image, height: number, width: number): Image {
  if (!(Number.isInteger(height) && height > 0 && Number.isInteger(width) && width > 0)) {
    throw new InvalidArgumentError("crop size", "positive integers", `${width}x${height}`);
  }
  // Top-left of the crop in image coordinates (negative where the crop is larger than the image).
  const top = Math.floor((img.height - height) / 2);
  const left = Math.floor((img.width - width) / 2);
  const out = new Uint8Array(width * height * 3);
  const x0 = Math.max(0, -left);
  const x1 = Math.min(width, img.width - left);
  for (let y = 0; y < height; y++) {
    const sy = top + y;
    if (sy < 0 || sy >= img.height || x1 <= x0) continue;
    const from = (sy * img.width + left + x0) * 3;
    out.set(img.data.subarray(from, from + (x1 - x0) * 3), (y * width + x0) * 3);
  }
  return image(width, height, 3, out);
}

/** PIL convert("RGB"): gray repeated in R, G and B; alpha dropped (not blended). */
function toRGB(img: Image): Image {
  const { width: w, height: h, channels: n } = img;
  if (n === 3) return img;
  const out = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) {
    for (let c = 0; c < 3; c++) out[i * 3 + c] = img.data[i * n + (n === 1 ? 0 : c)] ?? 0;
  }
  return image(w, h, 3, out);
}

/** The resize step alone (RGB, then `size` with the config's filter; unchanged when do_resize is false). */
export function clipResize(img: Image, config: ClipImageProcessorConfig): Image {
  const out = toRGB(img);
  if (!config.doResize) return out;
  const [h, w] = resizeTarget(out.height, out.width, config.size);
  return pillowResize(out, w, h, config.resample ?? "bicubic");
}

/** Resize + center crop: the uint8 image the model sees before rescale/normalise. */
export function clipResizeAndCrop(img: Image, config: ClipImageProcessorConfig): Image {
  let out = clipResize(img, config);
  if (config.doCenterCrop) out = centerCrop(out, config.cropSize.height, config.cropSize.width);
  return out;
}

/** Rescale + normalise an RGB crop to float32 [3, H, W] values (numpy's float32 order of operations). */
function pixelValuesOf(
  img: Image,
  config: ClipImageProcessorConfig,
  out: Float32Array,
  offset: number,
): void {
  const plane = img.width * img.height;
  const mean = config.imageMean.map(Math.fround);
  const std = config.imageStd.map(Math.fround);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) {
      let v = img.data[i * 3 + c] ?? 0;
      if (config.doRescale) v = Math.fround(v * config.rescaleFactor);
      if (config.doNormalize) v = Math.fround(Math.fround(v - (mean[c] ?? 0)) / (std[c] ?? 1));
      out[offset + c * plane + i] = v;
    }
  }
}

/** CLIPImageProcessor(images).pixel_values: float32 [N, 3, H, W] (every image gives the same crop size). */
export function clipPixelValues(
  images: readonly Image[],
  config: ClipImageProcessorConfig = DEFAULT_CLIP_IMAGE_PROCESSOR,
): HostTensor<"float32"> {
  const crops = images.map((img) => clipResizeAndCrop(img, config));
  const first = crops[0];
  if (first === undefined) throw new InvalidArgumentError("images", "at least one image", 0);
  const { width: w, height: h } = first;
  if (crops.some((c) => c.width !== w || c.height !== h)) {
    throw new InvalidArgumentError(
      "images",
      "images that preprocess to one size",
      crops.map((c) => `${c.width}x${c.height}`),
      {
        hint: "enable do_center_crop in the preprocessor config",
      },
    );
  }
  const out = new Float32Array(crops.length * 3 * h * w);
  crops.forEach((c, i) => pixelValuesOf(c, config, out, i * 3 * h * w));
  return tensor("float32", [crops.length, 3, h, w], out);
}
