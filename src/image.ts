/**
 * 8-bit images as the video side passes them around: row-major, interleaved channels
 * (RGB for colour frames, one channel for gray, edges and masks). Decoded video frames,
 * control maps and PNG files all use this type. Also Pillow's resize of such images, bit-exact
 * (`pillowResize`), for the reference pipelines that resize with PIL.
 */
import { InvalidArgumentError } from "./errors.js";

export type Channels = 1 | 3 | 4;

export interface Image {
  readonly width: number;
  readonly height: number;
  readonly channels: Channels;
  readonly data: Uint8Array;
}

export function image(width: number, height: number, channels: Channels, data?: Uint8Array): Image {
  if (!Number.isInteger(width) || width <= 0)
    throw new InvalidArgumentError("width", "a positive integer", width);
  if (!Number.isInteger(height) || height <= 0)
    throw new InvalidArgumentError("height", "a positive integer", height);
  const length = width * height * channels;
  const pixels = data ?? new Uint8Array(length);
  if (pixels.length !== length) {
    throw new InvalidArgumentError(
      "data",
      `${length} bytes for ${width}x${height}x${channels}`,
      `${pixels.length} bytes`,
    );
  }
  return { width, height, channels, data: pixels };
}

// ---------------------------------------------------------------------------------------------
// Pillow's `Image.resize` of 8-bit RGB images, bit-exact (ImagingResample: separable passes,
// horizontal then vertical, with 22-bit fixed-point weights), for the reference pipelines that
// resize with PIL: CLIPImageProcessor (bicubic by default) and diffusers' VaeImageProcessor (lanczos).
// ---------------------------------------------------------------------------------------------

/** Pillow's resampling filters this module implements (NEAREST is a scale, not a convolution). */
export type PillowFilter = "bicubic" | "lanczos" | "bilinear" | "hamming" | "box" | "nearest";

const PRECISION_BITS = 32 - 8 - 2;

/** Pillow's bicubic filter (a = -0.5). */
function bicubic(x: number): number {
  const a = -0.5;
  const t = Math.abs(x);
  if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
  return 0;
}

function sinc(x: number): number {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
}

/** Pillow's lanczos filter: sinc(x) * sinc(x / 3) on [-3, 3). */
function lanczos(x: number): number {
  return x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0;
}

/** Pillow's bilinear (triangle) filter. */
function bilinear(x: number): number {
  const t = Math.abs(x);
  return t < 1 ? 1 - t : 0;
}

/** Pillow's hamming filter: sinc(x) * (0.54 + 0.46 cos(pi x)) on (-1, 1). */
function hamming(x: number): number {
  const t = Math.abs(x);
  if (t === 0) return 1;
  if (t >= 1) return 0;
  const px = t * Math.PI;
  return (Math.sin(px) / px) * (0.54 + 0.46 * Math.cos(px));
}

/** Pillow's box filter: 1 on (-0.5, 0.5]. */
function box(x: number): number {
  return x > -0.5 && x <= 0.5 ? 1 : 0;
}

/** The convolution filters (all but NEAREST). */
type ConvolutionFilter = Exclude<PillowFilter, "nearest">;

const FILTERS: Record<ConvolutionFilter, { readonly fn: (x: number) => number; readonly support: number }> = {
  bicubic: { fn: bicubic, support: 2 },
  lanczos: { fn: lanczos, support: 3 },
  bilinear: { fn: bilinear, support: 1 },
  hamming: { fn: hamming, support: 1 },
  box: { fn: box, support: 0.5 },
};

interface Coefficients {
  /** Per output index: first input index and tap count. */
  readonly bounds: Int32Array;
  /** Per output index, `taps` fixed-point weights. */
  readonly k: Int32Array;
  readonly taps: number;
}

/** Pillow precompute_coeffs + normalize_coeffs_8bpc for one axis. */
function coefficients(inSize: number, outSize: number, filter: ConvolutionFilter): Coefficients {
  const { fn, support: base } = FILTERS[filter];
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = base * filterscale;
  const taps = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const k = new Int32Array(outSize * taps);
  const ss = 1 / filterscale;
  const w = new Float64Array(taps);
  for (let j = 0; j < outSize; j++) {
    const center = (j + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const n = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let sum = 0;
    for (let t = 0; t < n; t++) {
      const v = fn((t + xmin - center + 0.5) * ss);
      w[t] = v;
      sum += v;
    }
    for (let t = 0; t < n; t++) {
      const v = sum !== 0 ? (w[t] ?? 0) / sum : (w[t] ?? 0);
      k[j * taps + t] =
        v < 0 ? Math.trunc(-0.5 + v * 2 ** PRECISION_BITS) : Math.trunc(0.5 + v * 2 ** PRECISION_BITS);
    }
    bounds[j * 2] = xmin;
    bounds[j * 2 + 1] = n;
  }
  return { bounds, k, taps };
}

const clip8 = (ss: number): number => {
  const v = Math.floor(ss / 2 ** PRECISION_BITS);
  return v < 0 ? 0 : v > 255 ? 255 : v;
};

/** One Pillow pass over RGB uint8 data along x (horizontal) or y (vertical). */
function resamplePass(src: Image, outSize: number, horizontal: boolean, filter: ConvolutionFilter): Image {
  const { width: w, height: h } = src;
  const inSize = horizontal ? w : h;
  const { bounds, k, taps } = coefficients(inSize, outSize, filter);
  const ow = horizontal ? outSize : w;
  const oh = horizontal ? h : outSize;
  const out = new Uint8Array(ow * oh * 3);
  const half = 2 ** (PRECISION_BITS - 1);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      const j = horizontal ? x : y;
      const xmin = bounds[j * 2] ?? 0;
      const n = bounds[j * 2 + 1] ?? 0;
      for (let c = 0; c < 3; c++) {
        let ss = half;
        for (let t = 0; t < n; t++) {
          const p = horizontal ? (y * w + xmin + t) * 3 + c : ((xmin + t) * w + x) * 3 + c;
          ss += (src.data[p] ?? 0) * (k[j * taps + t] ?? 0);
        }
        out[(y * ow + x) * 3 + c] = clip8(ss);
      }
    }
  }
  return image(ow, oh, 3, out);
}

/** Pixel index of a source coordinate as Pillow's affine scale takes it (negative -> -1, outside). */
const coord = (v: number): number => (v < 0 ? -1 : Math.trunc(v));

/**
 * Pillow's NEAREST resize (ImagingScaleAffine): source positions start at half a step and advance by
 * the scale, accumulated in double precision as Pillow does; each output pixel copies the pixel its
 * position falls in.
 */
function nearest(img: Image, width: number, height: number): Image {
  const index = (outSize: number, inSize: number): number[] => {
    const step = inSize / outSize;
    const table: number[] = [];
    let v = step * 0.5;
    for (let o = 0; o < outSize; o++) {
      table.push(Math.min(Math.max(coord(v), 0), inSize - 1));
      v += step;
    }
    return table;
  };
  const xs = index(width, img.width);
  const ys = index(height, img.height);
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const src = ((ys[y] ?? 0) * img.width + (xs[x] ?? 0)) * 3;
      out.set(img.data.subarray(src, src + 3), (y * width + x) * 3);
    }
  return image(width, height, 3, out);
}

/**
 * PIL `Image.resize((width, height), filter, reducing_gap=None)` of an RGB image, bit-exact. A size
 * equal to the image's is returned as it is, as Pillow does.
 */
export function pillowResize(img: Image, width: number, height: number, filter: PillowFilter): Image {
  if (img.channels !== 3) throw new InvalidArgumentError("image channels", "3 (RGB)", img.channels);
  if (filter === "nearest")
    return width === img.width && height === img.height ? img : nearest(img, width, height);
  let out = img;
  if (width !== img.width) out = resamplePass(out, width, true, filter);
  if (height !== img.height) out = resamplePass(out, height, false, filter);
  return out;
}
