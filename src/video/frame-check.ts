/**
 * Checks on the frames handed to the writers: a valid Image, and the same size and channel count as
 * the first frame (a video has one frame size).
 */
import { InvalidArgumentError } from "../errors.js";
import type { Image } from "../image.js";

export function checkFrame(frame: Image, first: Image, index: number, path: string): void {
  const where = `frames[${index}] (writing ${path})`;
  if (frame.channels !== 1 && frame.channels !== 3 && frame.channels !== 4) {
    throw new InvalidArgumentError(`${where}.channels`, "1, 3 or 4", frame.channels);
  }
  const bytes = frame.width * frame.height * frame.channels;
  if (!(frame.data instanceof Uint8Array) || frame.data.length !== bytes) {
    throw new InvalidArgumentError(`${where}.data`, `a Uint8Array of ${bytes} bytes`, frame.data?.length);
  }
  if (frame.width !== first.width || frame.height !== first.height || frame.channels !== first.channels) {
    throw new InvalidArgumentError(
      where,
      `a ${first.width}x${first.height}x${first.channels} frame like frames[0]`,
      `${frame.width}x${frame.height}x${frame.channels}`,
      { hint: "resize the frames to one size (and channel count) first" },
    );
  }
}

export function noFramesError(path: string): InvalidArgumentError {
  return new InvalidArgumentError(`frames (writing ${path})`, "at least one frame", "none");
}
