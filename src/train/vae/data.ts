/**
 * Training images of the VAE: frames of video clips decoded once (ffmpeg, scaled to cover a square
 * of `frameSize` and centre-cropped, area filter), then per step a seeded batch of random crops and
 * horizontal flips, as the LDM autoencoder's data pipeline augments (random crop, flip). Step k's
 * batch is drawn from one torch-compatible generator seeded from (seed, k) (src/train/loop/rng.ts),
 * so a run is reproducible and does not depend on how many steps ran before in the same process.
 */
import { InvalidArgumentError, throwIfAborted } from "../../errors.js";
import type { LongTaskOptions } from "../../progress.js";
import { type HostTensor, tensor } from "../../tensor.js";
import { readAllFrames } from "../../video/read.js";
import type { TorchGenerator } from "../../random/torch-generator.js";

/** Decoded RGB frames, all `size` x `size`. */
export interface FrameSet {
  readonly size: number;
  /** Interleaved RGB bytes of each frame. */
  readonly frames: readonly Uint8Array[];
  /** Where each frame came from. */
  readonly items: readonly { readonly clip: string; readonly frame: number }[];
}

export interface LoadFramesOptions extends LongTaskOptions {
  /** (optional) take every stride-th frame (default 1). */
  readonly stride?: number;
  /** (optional) at most this many frames per clip. */
  readonly maxFrames?: number;
}

/** Decodes every clip's frames at `size` x `size` (cover + centre crop). */
export async function loadFrames(
  clips: readonly string[],
  size: number,
  options: LoadFramesOptions = {},
): Promise<FrameSet> {
  if (clips.length === 0) throw new InvalidArgumentError("clips", "at least one video file", []);
  const frames: Uint8Array[] = [];
  const items: { clip: string; frame: number }[] = [];
  for (const clip of clips) {
    throwIfAborted(options.signal, "decoding training frames");
    const decoded = await readAllFrames(clip, {
      resize: { width: size, height: size, fit: "cover", kernel: "area" },
      ...(options.stride === undefined ? {} : { stride: options.stride }),
      ...(options.maxFrames === undefined ? {} : { maxFrames: options.maxFrames }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    for (const f of decoded) {
      frames.push(f.data);
      items.push({ clip, frame: f.index });
    }
  }
  return { size, frames, items };
}

/** One crop of a batch: frame index, top-left corner, mirrored or not. */
export interface CropChoice {
  readonly frame: number;
  readonly x: number;
  readonly y: number;
  readonly flip: boolean;
}

/** Draws `batch` crops of `crop` x `crop` (4 uniform draws each: frame, x, y, flip). */
export function drawCrops(
  set: FrameSet,
  batch: number,
  crop: number,
  generator: TorchGenerator,
): CropChoice[] {
  const room = set.size - crop + 1;
  if (room < 1) throw new InvalidArgumentError("crop", `a crop size <= the frame size ${set.size}`, crop);
  const u = generator.rand([batch, 4]).data;
  const pick = (v: number | undefined, n: number): number => Math.min(n - 1, Math.floor((v ?? 0) * n));
  return Array.from({ length: batch }, (_, i) => ({
    frame: pick(u[4 * i], set.frames.length),
    x: pick(u[4 * i + 1], room),
    y: pick(u[4 * i + 2], room),
    flip: (u[4 * i + 3] ?? 0) < 0.5,
  }));
}

/** The crops as a [B, 3, crop, crop] tensor in [-1, 1] (v / 127.5 - 1). */
export function cropBatch(set: FrameSet, crops: readonly CropChoice[], crop: number): HostTensor<"float32"> {
  const plane = crop * crop;
  const out = new Float32Array(crops.length * 3 * plane);
  crops.forEach((c, b) => {
    const src = set.frames[c.frame] ?? new Uint8Array();
    for (let y = 0; y < crop; y++) {
      for (let x = 0; x < crop; x++) {
        const sx = c.x + (c.flip ? crop - 1 - x : x);
        const s = ((c.y + y) * set.size + sx) * 3;
        for (let ch = 0; ch < 3; ch++)
          out[(b * 3 + ch) * plane + y * crop + x] = Math.fround((src[s + ch] ?? 0) / 127.5 - 1);
      }
    }
  });
  return tensor("float32", [crops.length, 3, crop, crop], out);
}
