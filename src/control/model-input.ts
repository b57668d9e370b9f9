/**
 * Preprocessing shared by the dense-prediction models (depth, soft edges): choosing the network
 * input size the way MiDaS / DPT / Depth-Anything do (`Resize` in their `transforms.py`), resizing
 * in float, normalising, and laying out NCHW float32.
 */
import { InvalidArgumentError } from "../errors.js";
import type { Image } from "../image.js";
import type { Cv } from "./opencv.js";
import { resizeFloatsSync, type Interpolation } from "./resize.js";
import { checkImage, checkInteger } from "./validate.js";

/**
 * How the input is scaled towards `size` x `size` (MiDaS `resize_method` names):
 * - "stretch": exactly `size` x `size`, aspect ratio not kept;
 * - "lower-bound": keep aspect ratio, both sides >= size (Depth-Anything);
 * - "upper-bound": keep aspect ratio, both sides <= size (MiDaS v2.1);
 * - "minimal": keep aspect ratio, scale as little as possible (MiDaS DPT models);
 * - "native": keep the image size (HED / PiDiNet run at image resolution).
 * Every mode except "stretch" then rounds each side to a multiple of `multipleOf`.
 */
export type ResizeMode = "stretch" | "lower-bound" | "upper-bound" | "minimal" | "native";

export interface ModelInputOptions {
  /** Target side in pixels (518 for Depth-Anything, 384 for MiDaS/DPT). Unused for "native". */
  readonly size: number;
  readonly resizeMode: ResizeMode;
  /** Sides are rounded to a multiple of this (14 for ViT-14 backbones, 32 for MiDaS/DPT). */
  readonly multipleOf: number;
  /** Multiply the [0, 1] RGB values by this before normalising (1, or 255 for HED). */
  readonly scale: number;
  /** Per-channel (R, G, B) mean subtracted after scaling: ImageNet [0.485, 0.456, 0.406] or 0.5s. */
  readonly mean: readonly [number, number, number];
  /** Per-channel (R, G, B) divisor: ImageNet [0.229, 0.224, 0.225] or 0.5s. */
  readonly std: readonly [number, number, number];
  /** Float resize interpolation (MiDaS / Depth-Anything use `cv2.INTER_CUBIC`). */
  readonly interpolation: Interpolation;
}

/** `base` (a preset) with every field the caller gives replaced. */
export function withInputOverrides(
  base: ModelInputOptions,
  overrides: Partial<ModelInputOptions>,
): ModelInputOptions {
  return {
    size: overrides.size ?? base.size,
    resizeMode: overrides.resizeMode ?? base.resizeMode,
    multipleOf: overrides.multipleOf ?? base.multipleOf,
    scale: overrides.scale ?? base.scale,
    mean: overrides.mean ?? base.mean,
    std: overrides.std ?? base.std,
    interpolation: overrides.interpolation ?? base.interpolation,
  };
}

/** The preset named `name` (InvalidArgumentError listing the known names for an unknown one). */
export function pickPreset<P extends string, T>(presets: Readonly<Record<P, T>>, name: P): T {
  const found: T | undefined = presets[name];
  if (found === undefined) {
    const names = Object.keys(presets).map((n) => `"${n}"`);
    throw new InvalidArgumentError("preset", `${names.slice(0, -1).join(", ")} or ${names.at(-1)}`, name);
  }
  return found;
}

export const IMAGENET_MEAN: readonly [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: readonly [number, number, number] = [0.229, 0.224, 0.225];
export const HALF: readonly [number, number, number] = [0.5, 0.5, 0.5];

/** Rounds half to even, like `np.round`. */
function npRound(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d !== 0.5) return Math.round(x);
  return f % 2 === 0 ? f : f + 1;
}

/**
 * MiDaS `constrain_to_multiple_of`: `round(x / m) * m`, floored if above `max`, ceiled if below `min`.
 */
export function constrainToMultipleOf(x: number, multipleOf: number, min = 0, max?: number): number {
  let y = npRound(x / multipleOf) * multipleOf;
  if (max !== undefined && y > max) y = Math.floor(x / multipleOf) * multipleOf;
  if (y < min) y = Math.ceil(x / multipleOf) * multipleOf;
  return y;
}

/** The network input size for an image of `width` x `height` (MiDaS `Resize.get_size`). */
export function modelInputSize(
  width: number,
  height: number,
  options: Pick<ModelInputOptions, "size" | "resizeMode" | "multipleOf">,
): { width: number; height: number } {
  checkInteger("width", width, 1);
  checkInteger("height", height, 1);
  checkInteger("multipleOf", options.multipleOf, 1);
  const { size, resizeMode: mode, multipleOf: m } = options;
  if (mode === "native") {
    return {
      width: Math.max(m, constrainToMultipleOf(width, m)),
      height: Math.max(m, constrainToMultipleOf(height, m)),
    };
  }
  checkInteger("size", size, 1);
  if (mode === "stretch") return { width: size, height: size };
  let sw = size / width;
  let sh = size / height;
  if (mode === "lower-bound") sw = sh = Math.max(sw, sh);
  else if (mode === "upper-bound") sw = sh = Math.min(sw, sh);
  else if (mode === "minimal") sw = sh = Math.abs(1 - sw) < Math.abs(1 - sh) ? sw : sh;
  else
    throw new InvalidArgumentError(
      "resizeMode",
      '"stretch", "lower-bound", "upper-bound", "minimal" or "native"',
      mode,
    );
  if (mode === "lower-bound") {
    return {
      width: constrainToMultipleOf(sw * width, m, size),
      height: constrainToMultipleOf(sh * height, m, size),
    };
  }
  if (mode === "upper-bound") {
    return {
      width: constrainToMultipleOf(sw * width, m, 0, size),
      height: constrainToMultipleOf(sh * height, m, 0, size),
    };
  }
  return {
    width: Math.max(m, constrainToMultipleOf(sw * width, m)),
    height: Math.max(m, constrainToMultipleOf(sh * height, m)),
  };
}

/**
 * RGB image -> `[1, 3, height, width]` float32: `((rgb / 255) resized) * scale`, then
 * `(v - mean[c]) / std[c]` per channel. Gray images are replicated to 3 channels, alpha dropped.
 */
export function imageToNchw(
  cv: Cv,
  img: Image,
  target: { readonly width: number; readonly height: number },
  options: Omit<ModelInputOptions, "size" | "resizeMode" | "multipleOf">,
): Float32Array {
  checkImage("image", img);
  const n = img.width * img.height;
  const rgb = new Float32Array(n * 3);
  for (let k = 0; k < n; k++) {
    for (let c = 0; c < 3; c++) {
      const source = img.channels === 1 ? k : k * img.channels + c;
      rgb[3 * k + c] = (img.data[source] ?? 0) / 255;
    }
  }
  const resized = resizeFloatsSync(
    cv,
    rgb,
    { width: img.width, height: img.height, channels: 3 },
    {
      width: target.width,
      height: target.height,
      interpolation: options.interpolation,
    },
  );
  const plane = target.width * target.height;
  const out = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    const mean = options.mean[c] ?? 0;
    const std = options.std[c] ?? 1;
    for (let k = 0; k < plane; k++)
      out[c * plane + k] = ((resized[3 * k + c] ?? 0) * options.scale - mean) / std;
  }
  return out;
}
