/**
 * Reading and writing 8-bit images (PNG and whatever else sharp decodes) as {@link Image}s.
 * Gray files stay one channel (sharp would otherwise expand them to RGB), RGB stays RGB, RGBA
 * stays RGBA; 16-bit files are rejected rather than silently reduced.
 */
import sharp, { type Metadata } from "sharp";
import { access } from "node:fs/promises";
import { CorruptFileError, FileNotFoundError, UnsupportedError } from "../errors.js";
import { image, type Image } from "../image.js";
import { writeFileAtomic } from "../util/atomic-write.js";

/** Decodes an image file into raw pixels: 1 (gray), 3 (RGB) or 4 (RGBA) channels, uint8. */
export async function readImageFile(path: string): Promise<Image> {
  try {
    await access(path);
  } catch (cause) {
    throw new FileNotFoundError(path, "image file", { cause });
  }
  let meta: Metadata;
  try {
    meta = await sharp(path).metadata();
  } catch (cause) {
    throw new CorruptFileError(
      path,
      `cannot decode the image (${cause instanceof Error ? cause.message : String(cause)})`,
      undefined,
      {
        cause,
        hint: "use an 8-bit PNG, JPEG or WebP file",
      },
    );
  }
  if (meta.depth !== undefined && meta.depth !== "uchar") {
    throw new UnsupportedError(`${path}: ${meta.depth} samples (only 8-bit images)`, {
      hint: "convert the image to 8 bits per channel",
    });
  }
  const gray = meta.channels === 1 || (meta.channels === 2 && meta.hasAlpha !== true);
  const pipeline = gray ? sharp(path).toColourspace("b-w") : sharp(path);
  const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
  const channels = info.channels;
  if (channels !== 1 && channels !== 3 && channels !== 4) {
    throw new UnsupportedError(`${path}: ${channels}-channel image`, {
      hint: "use a gray, RGB or RGBA image",
    });
  }
  return image(
    info.width,
    info.height,
    channels,
    new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  );
}

/**
 * Encodes an {@link Image} as a lossless PNG file, atomically (a temporary file in the same folder,
 * renamed when complete; not fsynced: callers writing thousands of frames into a folder that is
 * itself published atomically would pay a flush per frame). The folder must exist.
 */
export async function writePngFile(path: string, img: Image): Promise<void> {
  const raw = sharp(img.data, { raw: { width: img.width, height: img.height, channels: img.channels } });
  // one-channel input would otherwise be written as RGB
  const bytes = await (img.channels === 1 ? raw.toColourspace("b-w") : raw).png().toBuffer();
  await writeFileAtomic(path, bytes, { durable: false, createParents: false });
}
