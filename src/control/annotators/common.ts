/**
 * Pixel helpers shared by the annotators: the annotators' `HWC3` (gray -> RGB, RGBA composited on
 * white), HWC uint8 -> NCHW float32 with a per-channel affine map, PyTorch's bilinear
 * `interpolate(..., align_corners=False)` on one float map, and gray <-> 3-channel conversions.
 * Mirrors `annotator/util.py` (ControlNet / Uni-ControlNet).
 */
import { image, type Image } from "../../image.js";
import { type HostTensor, tensor } from "../../tensor.js";
import { checkImage } from "../validate.js";

/**
 * `HWC3`: 3-channel images as they are, gray replicated x3, RGBA composited on white
 * (`color * a + 255 (1 - a)`, truncated to uint8).
 */
export function toRgb(img: Image, name = "image"): Image {
  checkImage(name, img);
  if (img.channels === 3) return img;
  const out = new Uint8Array(img.width * img.height * 3);
  const n = img.width * img.height;
  for (let i = 0; i < n; i++) {
    if (img.channels === 1) {
      const v = img.data[i] ?? 0;
      out[3 * i] = v;
      out[3 * i + 1] = v;
      out[3 * i + 2] = v;
    } else {
      const alpha = Math.fround((img.data[4 * i + 3] ?? 0) / 255);
      for (let c = 0; c < 3; c++) {
        const y = Math.fround(
          Math.fround((img.data[4 * i + c] ?? 0) * alpha) + Math.fround(255 * Math.fround(1 - alpha)),
        );
        out[3 * i + c] = Math.min(255, Math.max(0, Math.trunc(y)));
      }
    }
  }
  return image(img.width, img.height, 3, out);
}

/** A one-channel image replicated to three channels (the annotators' `HWC3` on a 2-D map). */
export function grayToRgb(img: Image): Image {
  return img.channels === 1 ? toRgb(img) : img;
}

export interface NchwOptions {
  /** Channel order of the network: take RGB as is, or reverse it to BGR (the Caffe-trained nets). */
  readonly order?: "rgb" | "bgr";
  /** y = (x * scale - offset[c]) per channel, computed in float32 (default scale 1, offset 0). */
  readonly scale?: number;
  readonly offset?: readonly number[];
  /** Extra constant channels appended after the colour ones (M-LSD's channel of ones, before scaling). */
  readonly extraChannels?: readonly number[];
}

/** An RGB image as a `[1, C, H, W]` float32 tensor (see {@link NchwOptions}). */
export function rgbToNchw(img: Image, options: NchwOptions = {}): HostTensor<"float32"> {
  const { width, height } = img;
  const extra = options.extraChannels ?? [];
  const channels = 3 + extra.length;
  const plane = width * height;
  const out = new Float32Array(channels * plane);
  const scale = options.scale ?? 1;
  const offset = options.offset ?? [];
  for (let c = 0; c < channels; c++) {
    const src = options.order === "bgr" && c < 3 ? 2 - c : c;
    const o = offset[c] ?? 0;
    for (let i = 0; i < plane; i++) {
      const v = c < 3 ? (img.data[3 * i + src] ?? 0) : (extra[c - 3] ?? 0);
      out[c * plane + i] = Math.fround(Math.fround(v * scale) - o);
    }
  }
  return tensor("float32", [1, channels, height, width], out);
}

/**
 * `torch.nn.functional.interpolate(x, size=(outH, outW), mode="bilinear", align_corners=False)` of
 * one `[h, w]` map: source = (dst + 0.5) * in / out - 0.5, clamped at 0, edge pixels repeated.
 */
export function bilinearResizeTorch(
  data: ArrayLike<number>,
  width: number,
  height: number,
  outWidth: number,
  outHeight: number,
): Float32Array {
  const out = new Float32Array(outWidth * outHeight);
  const axis = (inSize: number, outSize: number, i: number): [number, number, number] => {
    const src = Math.max(0, ((i + 0.5) * inSize) / outSize - 0.5);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const i1 = i0 < inSize - 1 ? i0 + 1 : i0;
    return [i0, i1, src - i0];
  };
  const xs = Array.from({ length: outWidth }, (_, x) => axis(width, outWidth, x));
  for (let y = 0; y < outHeight; y++) {
    const [y0, y1, ly] = axis(height, outHeight, y);
    for (let x = 0; x < outWidth; x++) {
      const [x0, x1, lx] = xs[x] ?? [0, 0, 0];
      const a = (data[y0 * width + x0] ?? 0) * (1 - lx) + (data[y0 * width + x1] ?? 0) * lx;
      const b = (data[y1 * width + x0] ?? 0) * (1 - lx) + (data[y1 * width + x1] ?? 0) * lx;
      out[y * outWidth + x] = a * (1 - ly) + b * ly;
    }
  }
  return out;
}

export const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));

/** `(p * 255).clip(0, 255).astype(np.uint8)` of a probability map, as a one-channel image. */
export function probabilityToImage(width: number, height: number, p: ArrayLike<number>): Image {
  const out = new Uint8Array(width * height);
  for (let i = 0; i < out.length; i++) {
    const v = (p[i] ?? 0) * 255;
    out[i] = Number.isNaN(v) ? 0 : Math.trunc(Math.min(255, Math.max(0, v)));
  }
  return image(width, height, 1, out);
}
