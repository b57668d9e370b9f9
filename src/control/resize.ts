/**
 * Image resizing with OpenCV's interpolation modes (`cv2.resize`). The opencv golden fixtures were
 * made with `cv2.resize(rgb, (256, 256), interpolation=cv2.INTER_AREA)` (aspect ratio not kept).
 */
import type { Image } from "../image.js";
import type { Cv, Mat, Track } from "./opencv.js";
import { floatsToMat, imageToMat, loadCv, matToFloats, matToImage, withMats } from "./opencv.js";
import { checkImage, checkInteger, checkOneOf } from "./validate.js";

export type Interpolation = "nearest" | "linear" | "cubic" | "area" | "lanczos4";

export const INTERPOLATIONS: readonly Interpolation[] = ["nearest", "linear", "cubic", "area", "lanczos4"];

/** The `cv2.INTER_*` constant for an interpolation name. */
export function interpolationFlag(cv: Cv, interpolation: Interpolation): number {
  const flags: Record<Interpolation, number> = {
    nearest: cv.INTER_NEAREST,
    linear: cv.INTER_LINEAR,
    cubic: cv.INTER_CUBIC,
    area: cv.INTER_AREA,
    lanczos4: cv.INTER_LANCZOS4,
  };
  return flags[interpolation];
}

export interface ResizeOptions {
  /** Output width in pixels. */
  readonly width: number;
  /** Output height in pixels. */
  readonly height: number;
  /** (optional, default "area") `cv2.INTER_AREA`; "area" is the right choice for shrinking frames. */
  readonly interpolation?: Interpolation;
}

function checkResize(options: ResizeOptions): Interpolation {
  checkInteger("width", options.width, 1);
  checkInteger("height", options.height, 1);
  const interpolation = options.interpolation ?? "area";
  checkOneOf("interpolation", interpolation, INTERPOLATIONS);
  return interpolation;
}

/** `cv.resize` of the Mat `toMat` makes to options' size; `fromMat` reads the result out. */
function resizeMat<T>(
  cv: Cv,
  options: ResizeOptions,
  interpolation: Interpolation,
  toMat: (track: Track) => Mat,
  fromMat: (dst: Mat) => T,
): T {
  return withMats(cv, "resize", (track) => {
    const src = toMat(track);
    const dst = track(new cv.Mat());
    cv.resize(
      src,
      dst,
      new cv.Size(options.width, options.height),
      0,
      0,
      interpolationFlag(cv, interpolation),
    );
    return fromMat(dst);
  });
}

/**
 * Resizes an 8-bit image to exactly `width` x `height` (aspect ratio not kept).
 *
 * OpenCV: `cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)` (or the given mode).
 */
export async function resizeImage(img: Image, options: ResizeOptions): Promise<Image> {
  return resizeImageSync(await loadCv(), img, options);
}

/** {@link resizeImage} with an already loaded OpenCV module. */
export function resizeImageSync(cv: Cv, img: Image, options: ResizeOptions): Image {
  checkImage("image", img);
  const interpolation = checkResize(options);
  if (img.width === options.width && img.height === options.height) return img;
  return resizeMat(cv, options, interpolation, (track) => imageToMat(cv, track, img), matToImage);
}

/**
 * Resizes interleaved float32 data `[height, width, channels]` (1-4 channels) without rounding or
 * clipping, as MiDaS / Depth-Anything preprocessing does (`cv2.resize` on a float image).
 *
 * OpenCV: `cv2.resize(data, (options.width, options.height), interpolation=...)` on CV_32FC{n}.
 */
export function resizeFloatsSync(
  cv: Cv,
  data: Float32Array,
  size: { readonly width: number; readonly height: number; readonly channels: number },
  options: ResizeOptions,
): Float32Array {
  const interpolation = checkResize(options);
  if (size.width === options.width && size.height === options.height) return data.slice();
  return resizeMat(
    cv,
    options,
    interpolation,
    (track) => floatsToMat(cv, track, data, size.width, size.height, size.channels),
    matToFloats,
  );
}
