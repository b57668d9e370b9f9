/**
 * The ffmpeg filter chain behind `readFrames`: frame-rate resampling, frame selection, YUV->RGB
 * conversion with a chosen colour matrix, crop and resize. Pure functions: options in, the `-vf`
 * string and the output frame size out.
 */
import { InvalidArgumentError } from "../errors.js";

/**
 * How YUV is turned into RGB.
 * - "auto" (default): the matrix the stream is tagged with; untagged streams use BT.601. Correct colours.
 * - "opencv": what `cv2.VideoCapture` returns. OpenCV's FFmpeg backend ignores the tags and always
 *   converts with BT.601, so this equals "bt601" (bit-exact against OpenCV 4.6 on our sample clips).
 * - "bt601" / "bt709": force a matrix whatever the tags say.
 */
export type ColorMatrixMode = "auto" | "opencv" | "bt601" | "bt709";

/** Resampling kernel of ffmpeg's scale filter. */
export type ResizeKernel = "area" | "bilinear" | "bicubic" | "lanczos" | "neighbor";

export interface ResizeOptions {
  readonly width: number;
  readonly height: number;
  /**
   * "fill" (default): stretch to width x height, aspect not kept (like cv2.resize).
   * "cover": scale to cover the box, then crop the centre. "contain": scale to fit, pad with black.
   */
  readonly fit?: "fill" | "cover" | "contain";
  /** Default "area" (box average; the right choice for downscaling). */
  readonly kernel?: ResizeKernel;
}

/** A rectangle in source pixels (after rotation), applied before resizing. */
export interface CropRect {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

export interface FilterOptions {
  readonly fps?: number;
  readonly start?: number;
  readonly stride?: number;
  readonly crop?: CropRect;
  readonly resize?: ResizeOptions;
  readonly colorMatrix?: ColorMatrixMode;
}

const MATRIX: Record<ColorMatrixMode, string> = {
  auto: "auto",
  opencv: "bt601",
  bt601: "bt601",
  bt709: "bt709",
};
const KERNELS: readonly ResizeKernel[] = ["area", "bilinear", "bicubic", "lanczos", "neighbor"];
const FITS = ["fill", "cover", "contain"] as const;

function positiveInt(name: string, value: number): void {
  if (!Number.isInteger(value) || value <= 0)
    throw new InvalidArgumentError(name, "a positive integer", value);
}

function nonNegativeInt(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0) throw new InvalidArgumentError(name, "an integer >= 0", value);
}

/** Checks the crop against the source size and returns the size after crop and resize. */
export function outputSize(
  source: { width: number; height: number },
  options: FilterOptions,
): { width: number; height: number } {
  let width = source.width;
  let height = source.height;
  const crop = options.crop;
  if (crop) {
    nonNegativeInt("crop.x", crop.x);
    nonNegativeInt("crop.y", crop.y);
    positiveInt("crop.width", crop.width);
    positiveInt("crop.height", crop.height);
    if (crop.x + crop.width > width || crop.y + crop.height > height) {
      throw new InvalidArgumentError(
        "crop",
        `a rectangle inside the ${width}x${height} frame`,
        `${crop.width}x${crop.height} at (${crop.x}, ${crop.y})`,
      );
    }
    width = crop.width;
    height = crop.height;
  }
  const resize = options.resize;
  if (resize) {
    positiveInt("resize.width", resize.width);
    positiveInt("resize.height", resize.height);
    if (resize.fit !== undefined && !FITS.includes(resize.fit)) {
      throw new InvalidArgumentError("resize.fit", `one of ${FITS.join(", ")}`, resize.fit);
    }
    if (resize.kernel !== undefined && !KERNELS.includes(resize.kernel)) {
      throw new InvalidArgumentError("resize.kernel", `one of ${KERNELS.join(", ")}`, resize.kernel);
    }
    width = resize.width;
    height = resize.height;
  }
  return { width, height };
}

/** The `-vf` filter chain; output is always rgb24. */
export function buildFilterChain(options: FilterOptions): string {
  const chain: string[] = [];
  if (options.fps !== undefined) chain.push(`fps=${options.fps}`);
  const start = options.start ?? 0;
  const stride = options.stride ?? 1;
  if (start > 0 || stride > 1) chain.push(`select='gte(n,${start})*not(mod(n-${start},${stride}))'`);
  const mode = options.colorMatrix ?? "auto";
  if (!Object.hasOwn(MATRIX, mode))
    throw new InvalidArgumentError("colorMatrix", "auto, opencv, bt601 or bt709", mode);
  // Convert to full-size RGB first (what OpenCV does), so crop and resize work on RGB pixels.
  chain.push(`scale=in_color_matrix=${MATRIX[mode]}`, "format=rgb24");
  const crop = options.crop;
  if (crop) chain.push(`crop=${crop.width}:${crop.height}:${crop.x}:${crop.y}:exact=1`);
  const resize = options.resize;
  if (resize) {
    const { width: w, height: h } = resize;
    const flags = `flags=${resize.kernel ?? "area"}`;
    const fit = resize.fit ?? "fill";
    if (fit === "fill") chain.push(`scale=${w}:${h}:${flags}`);
    else if (fit === "cover")
      chain.push(`scale=${w}:${h}:force_original_aspect_ratio=increase:${flags}`, `crop=${w}:${h}`);
    else
      chain.push(
        `scale=${w}:${h}:force_original_aspect_ratio=decrease:${flags}`,
        `pad=${w}:${h}:(ow-iw)/2:(oh-ih)/2:black`,
      );
  }
  return chain.join(",");
}
