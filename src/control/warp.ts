/**
 * Backward warping along a flow field with `cv2.remap` semantics:
 *
 *     out(y, x) = src(map_y(y, x), map_x(y, x)),  map_x = x + flow[y, x, 0],  map_y = y + flow[y, x, 1]
 *
 * with the maps in float32 and integer pixel coordinates (no half-pixel offset). remap quantises the
 * sub-pixel position to 1/32 px (`INTER_TAB_SIZE`) and interpolates 8-bit images in fixed point, so
 * this is not exact float64 bilinear interpolation; it matches cv2 bit-exactly on the fixtures.
 * With `flow_fw[i]` (frame i -> i+1) it warps frame i+1 onto frame i.
 */
import type { Image } from "../image.js";
import { InvalidArgumentError } from "../errors.js";
import { checkFlow, type FlowField } from "./flow.js";
import {
  floatsToMat,
  imageToMat,
  loadCv,
  matToFloats,
  matToImage,
  withMats,
  type Cv,
  type Mat,
  type Track,
} from "./opencv.js";
import { checkImage, checkOneOf } from "./validate.js";

export type RemapInterpolation = "nearest" | "linear" | "cubic" | "lanczos4";
export type BorderMode = "constant" | "replicate" | "reflect" | "reflect101" | "wrap";

export interface WarpOptions {
  /** (optional, default "linear") `cv2.INTER_LINEAR`. */
  readonly interpolation?: RemapInterpolation;
  /** (optional, default "constant") `cv2.BORDER_CONSTANT`; "replicate" = `BORDER_REPLICATE`, etc. */
  readonly borderMode?: BorderMode;
  /**
   * (optional, default 0) fill value for `borderMode: "constant"`: a number fills every channel;
   * a list (1-4 values) is the per-channel `cv::Scalar` in the data's channel order, missing
   * channels 0. Note cv2's Python binding turns a bare number into `(v, 0, 0, 0)`; pass
   * `[v]` to get that.
   */
  readonly borderValue?: number | readonly number[];
}

const INTERPOLATIONS: readonly RemapInterpolation[] = ["nearest", "linear", "cubic", "lanczos4"];
const BORDERS: readonly BorderMode[] = ["constant", "replicate", "reflect", "reflect101", "wrap"];

/** The `cv2.BORDER_*` constant of a border mode. */
export function borderFlag(cv: Cv, mode: BorderMode): number {
  const flags: Record<BorderMode, number> = {
    constant: cv.BORDER_CONSTANT,
    replicate: cv.BORDER_REPLICATE,
    reflect: cv.BORDER_REFLECT,
    reflect101: cv.BORDER_REFLECT_101,
    wrap: cv.BORDER_WRAP,
  };
  return flags[mode];
}

/**
 * The remap coordinate maps of a flow: `mapX[k] = f32(x + dx)`, `mapY[k] = f32(y + dy)` (row-major).
 */
export function flowToMaps(flow: FlowField): { mapX: Float32Array; mapY: Float32Array } {
  checkFlow("flow", flow);
  const n = flow.width * flow.height;
  const mapX = new Float32Array(n);
  const mapY = new Float32Array(n);
  const d = flow.data;
  for (let y = 0, k = 0; y < flow.height; y++) {
    for (let x = 0; x < flow.width; x++, k++) {
      mapX[k] = x + (d[2 * k] ?? 0);
      mapY[k] = y + (d[2 * k + 1] ?? 0);
    }
  }
  return { mapX, mapY };
}

/** The 4 `cv::Scalar` values of a border value (a number = all channels, a list = per channel). */
export function borderScalar(value: number | readonly number[]): [number, number, number, number] {
  const values = typeof value === "number" ? [value, value, value, value] : [...value];
  if (values.length < 1 || values.length > 4 || !values.every((v) => Number.isFinite(v)))
    throw new InvalidArgumentError("borderValue", "a finite number or a list of 1-4 finite numbers", value);
  return [values[0] ?? 0, values[1] ?? 0, values[2] ?? 0, values[3] ?? 0];
}

function remapMats(cv: Cv, track: Track, src: Mat, flow: FlowField, options: WarpOptions): Mat {
  const interpolation = options.interpolation ?? "linear";
  const borderMode = options.borderMode ?? "constant";
  checkOneOf("interpolation", interpolation, INTERPOLATIONS);
  checkOneOf("borderMode", borderMode, BORDERS);
  const scalar = borderScalar(options.borderValue ?? 0);
  const { mapX, mapY } = flowToMaps(flow);
  const mx = floatsToMat(cv, track, mapX, flow.width, flow.height, 1);
  const my = floatsToMat(cv, track, mapY, flow.width, flow.height, 1);
  const dst = track(new cv.Mat());
  const flags: Record<RemapInterpolation, number> = {
    nearest: cv.INTER_NEAREST,
    linear: cv.INTER_LINEAR,
    cubic: cv.INTER_CUBIC,
    lanczos4: cv.INTER_LANCZOS4,
  };
  cv.remap(src, dst, mx, my, flags[interpolation], borderFlag(cv, borderMode), new cv.Scalar(...scalar));
  return dst;
}

/**
 * Warps `src` backward along `flow` (output has the flow's size; `src` may differ in size).
 *
 * OpenCV: `cv2.remap(src, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)`
 * with `map = grid + flow` (float32), or the given interpolation / border.
 */
export async function warpImage(src: Image, flow: FlowField, options: WarpOptions = {}): Promise<Image> {
  return warpImageSync(await loadCv(), src, flow, options);
}

/** {@link warpImage} with an already loaded OpenCV module. */
export function warpImageSync(cv: Cv, src: Image, flow: FlowField, options: WarpOptions = {}): Image {
  checkImage("src", src);
  checkFlow("flow", flow);
  return withMats(cv, "remap", (track) =>
    matToImage(remapMats(cv, track, imageToMat(cv, track, src), flow, options)),
  );
}

/**
 * Warps interleaved float32 data `[height, width, channels]` (1-4 channels, e.g. a flow field or a
 * latent) the same way, in float arithmetic. Returns `[flow.height, flow.width, channels]`.
 *
 * OpenCV: `cv2.remap(data, map_x, map_y, ...)` on CV_32FC{channels}.
 */
export function warpFloatsSync(
  cv: Cv,
  data: Float32Array,
  size: { readonly width: number; readonly height: number; readonly channels: number },
  flow: FlowField,
  options: WarpOptions = {},
): Float32Array {
  checkFlow("flow", flow);
  return withMats(cv, "remap", (track) =>
    matToFloats(
      remapMats(
        cv,
        track,
        floatsToMat(cv, track, data, size.width, size.height, size.channels),
        flow,
        options,
      ),
    ),
  );
}

/** Async {@link warpFloatsSync}. */
export async function warpFloats(
  data: Float32Array,
  size: { readonly width: number; readonly height: number; readonly channels: number },
  flow: FlowField,
  options: WarpOptions = {},
): Promise<Float32Array> {
  return warpFloatsSync(await loadCv(), data, size, flow, options);
}

/** A float image (values on the 0..255 scale), e.g. an exact, unrounded warp. */
export interface FloatImage {
  readonly width: number;
  readonly height: number;
  readonly channels: number;
  readonly data: Float64Array;
}

/**
 * Exact bilinear backward warp in float64, without remap's 1/32 px quantisation and without
 * rounding to 8 bits: at `(mx, my) = (f32(x + dx), f32(y + dy))`,
 * `out = Σ w_ab · src(y0 + b, x0 + a)` with `x0 = floor(mx)`, `w` the bilinear weights; taps outside
 * the image read 0 ("constant") or the nearest edge pixel ("replicate"). The opencv fixture's
 * `primary_mask_exact_float64_bilinear` warp error uses this.
 */
export function warpBilinearExact(
  src: Image,
  flow: FlowField,
  borderMode: "constant" | "replicate" = "constant",
): FloatImage {
  checkImage("src", src);
  checkFlow("flow", flow);
  checkOneOf("borderMode", borderMode, ["constant", "replicate"]);
  const { mapX, mapY } = flowToMaps(flow);
  const c = src.channels;
  const out = new Float64Array(flow.width * flow.height * c);
  const tap = (x: number, y: number, ch: number): number => {
    if (borderMode === "replicate") {
      x = Math.min(src.width - 1, Math.max(0, x));
      y = Math.min(src.height - 1, Math.max(0, y));
    } else if (x < 0 || y < 0 || x >= src.width || y >= src.height) return 0;
    return src.data[(y * src.width + x) * c + ch] ?? 0;
  };
  for (let k = 0; k < mapX.length; k++) {
    const mx = mapX[k] ?? 0;
    const my = mapY[k] ?? 0;
    const x0 = Math.floor(mx);
    const y0 = Math.floor(my);
    const ax = mx - x0;
    const ay = my - y0;
    for (let ch = 0; ch < c; ch++) {
      out[k * c + ch] =
        (1 - ax) * (1 - ay) * tap(x0, y0, ch) +
        ax * (1 - ay) * tap(x0 + 1, y0, ch) +
        (1 - ax) * ay * tap(x0, y0 + 1, ch) +
        ax * ay * tap(x0 + 1, y0 + 1, ch);
    }
  }
  return { width: flow.width, height: flow.height, channels: c, data: out };
}
