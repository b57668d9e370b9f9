/**
 * Small synthetic images for control-map tests: smooth textures that optical flow can track,
 * integer shifts of them, squares and lines.
 */
import { image, type Channels, type Image } from "../../src/image.js";

/** A smooth, non-periodic texture (sum of sinusoids), `channels` copies per pixel, shifted by (dx, dy). */
export function texture(
  width: number,
  height: number,
  options: { dx?: number; dy?: number; channels?: Channels } = {},
): Image {
  const { dx = 0, dy = 0, channels = 1 } = options;
  const data = new Uint8Array(width * height * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const u = x - dx;
      const v = y - dy;
      const value =
        128 +
        50 * Math.sin(u * 0.31 + v * 0.07) +
        40 * Math.cos(v * 0.27 - u * 0.11) +
        25 * Math.sin((u + 2 * v) * 0.19);
      const byte = Math.max(0, Math.min(255, Math.round(value)));
      for (let c = 0; c < channels; c++)
        data[(y * width + x) * channels + c] = c === 0 ? byte : (byte + 40 * c) % 256;
    }
  }
  return image(width, height, channels, data);
}

/** A gray image: `inside` in the axis-aligned square [x0, x0 + size) x [y0, y0 + size), `outside` elsewhere. */
export function square(
  width: number,
  height: number,
  x0: number,
  y0: number,
  size: number,
  inside = 255,
  outside = 0,
): Image {
  const data = new Uint8Array(width * height).fill(outside);
  for (let y = y0; y < y0 + size; y++)
    for (let x = x0; x < x0 + size; x++)
      if (x >= 0 && y >= 0 && x < width && y < height) data[y * width + x] = inside;
  return image(width, height, 1, data);
}

/** A one-pixel-wide vertical line (255) at column `x` on black. */
export function verticalLine(width: number, height: number, x: number): Image {
  const data = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) data[y * width + x] = 255;
  return image(width, height, 1, data);
}

/** A constant flow field of (dx, dy) everywhere. */
export function constantFlow(
  width: number,
  height: number,
  dx: number,
  dy: number,
): { width: number; height: number; data: Float32Array } {
  const data = new Float32Array(width * height * 2);
  for (let k = 0; k < width * height; k++) {
    data[2 * k] = dx;
    data[2 * k + 1] = dy;
  }
  return { width, height, data };
}

/** Values of one column range of a one-channel image, row `y`. */
export function row(img: Image, y: number): number[] {
  return Array.from(img.data.subarray(y * img.width * img.channels, (y + 1) * img.width * img.channels));
}
