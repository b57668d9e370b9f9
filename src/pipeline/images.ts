/**
 * Conversions between 8-bit images and the tensors the models take.
 * - Control images enter a ControlNet in [0, 1] (uint8 / 255), NOT normalised to [-1, 1]
 *   (diffusers VaeImageProcessor with do_normalize=False for the control image).
 * - VAE inputs are in [-1, 1]; decoder outputs are post-processed as clamp(x / 2 + 0.5, 0, 1) and then
 *   round(x * 255) for 8-bit output.
 */
import { InvalidArgumentError } from "../errors.js";
import { image, type Image } from "../image.js";
import { tensor, type HostTensor } from "../tensor.js";
import { roundHalfEven } from "../util/round.js";

/**
 * Any 8-bit image as RGB, as PIL's `Image.convert("RGB")` does it (diffusers converts every control
 * image so, `do_convert_rgb=True`): gray is repeated in R, G and B; alpha is dropped (not blended).
 */
export function toRGB(img: Image): Image {
  const { width: w, height: h, channels: n } = img;
  if (n === 3) return img;
  const out = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) {
    for (let c = 0; c < 3; c++) out[i * 3 + c] = img.data[i * n + (n === 1 ? 0 : c)] ?? 0;
  }
  return image(w, h, 3, out);
}

/** HWC uint8 RGB -> [1, 3, H, W] float32, scaled to [0, 1] (control images) or [-1, 1] (VAE input). */
export function imageToTensor(img: Image, range: "0,1" | "-1,1"): HostTensor<"float32"> {
  if (img.channels !== 3) throw new InvalidArgumentError("image channels", "3 (RGB)", img.channels);
  const { width: w, height: h } = img;
  const out = new Float32Array(3 * h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < 3; c++) {
        const v = Math.fround((img.data[(y * w + x) * 3 + c] ?? 0) / 255);
        out[c * h * w + y * w + x] = range === "0,1" ? v : Math.fround(Math.fround(v * 2) - 1);
      }
    }
  }
  return tensor("float32", [1, 3, h, w], out);
}

/** clamp(x / 2 + 0.5, 0, 1) elementwise, as diffusers' postprocess (denormalize) does. */
export function denormalize(t: HostTensor<"float32">): HostTensor<"float32"> {
  return tensor(
    "float32",
    t.shape,
    t.data.map((x) => Math.min(1, Math.max(0, Math.fround(Math.fround(x / 2) + 0.5)))),
  );
}

/** [N, 3, H, W] in [0, 1] -> N RGB images, rounding x * 255 half to even (numpy's round). */
export function tensorToImages(t: HostTensor<"float32">): Image[] {
  const [n = 0, c = 0, h = 0, w = 0] = t.shape;
  if (t.shape.length !== 4 || c !== 3)
    throw new InvalidArgumentError("tensor shape", "[N, 3, H, W]", t.shape);
  const images: Image[] = [];
  for (let b = 0; b < n; b++) {
    const data = new Uint8Array(h * w * 3);
    for (let ch = 0; ch < 3; ch++) {
      for (let i = 0; i < h * w; i++) {
        data[i * 3 + ch] = roundHalfEven(Math.fround((t.data[(b * 3 + ch) * h * w + i] ?? 0) * 255));
      }
    }
    images.push(image(w, h, 3, data));
  }
  return images;
}

/** NCHW -> NHWC (the pipelines' numpy output layout). */
export function toChannelsLast(t: HostTensor<"float32">): HostTensor<"float32"> {
  const [n = 0, c = 0, h = 0, w = 0] = t.shape;
  const out = new Float32Array(t.data.length);
  for (let b = 0; b < n; b++)
    for (let ch = 0; ch < c; ch++)
      for (let i = 0; i < h * w; i++) out[(b * h * w + i) * c + ch] = t.data[(b * c + ch) * h * w + i] ?? 0;
  return tensor("float32", [n, h, w, c], out);
}
