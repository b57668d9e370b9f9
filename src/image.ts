/**
 * 8-bit images as the video side passes them around: row-major, interleaved channels
 * (RGB for colour frames, one channel for gray, edges and masks). Decoded video frames,
 * control maps and PNG files all use this type.
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
