/**
 * Writes frames as a PNG sequence with sharp: into a directory (`frame_000000.png`, ...) or after a
 * printf pattern (`out/%04d.png`). Built in a temporary sibling directory and moved into place.
 */
import { readdir, stat } from "node:fs/promises";
import { basename, dirname, extname, join } from "node:path";
import sharp from "sharp";
import { VideoError, throwIfAborted } from "../errors.js";
import type { Image } from "../image.js";
import type { LongTaskOptions } from "../progress.js";
import { withAtomicDir } from "../util/atomic-write.js";
import { checkFrame, noFramesError } from "./frame-check.js";

export interface PngSequenceTarget {
  /** The directory that will hold the frames. */
  readonly dir: string;
  /** File name of frame n (0-based). */
  readonly name: (n: number) => string;
}

/** `out/%04d.png` -> {dir: "out", name: n => "0000.png"...}; a plain directory -> frame_000000.png. */
export function pngTarget(path: string): PngSequenceTarget {
  const base = basename(path);
  const m = /%(0?)(\d*)d/.exec(base);
  if (!m) return { dir: path, name: (n) => `frame_${String(n).padStart(6, "0")}.png` };
  const pad = m[1] === "0" ? "0" : " ";
  const width = m[2] ? Number.parseInt(m[2], 10) : 0;
  const head = base.slice(0, m.index);
  const tail = base.slice(m.index + m[0].length);
  return { dir: dirname(path), name: (n) => `${head}${String(n).padStart(width, pad)}${tail}` };
}

/** Writes every frame as PNG; returns the frame count and size. */
export async function writePngSequence(
  path: string,
  frames: AsyncIterable<Image> | Iterable<Image>,
  options: LongTaskOptions & { totalFrames?: number } = {},
): Promise<{ frames: number; width: number; height: number }> {
  const target = pngTarget(path);
  const task = `write ${path}`;
  let first: Image | undefined;
  let count = 0;
  const build = async (temp: string): Promise<void> => {
    options.onProgress?.({
      status: "start",
      task,
      ...(options.totalFrames ? { total: options.totalFrames } : {}),
    });
    for await (const frame of frames) {
      throwIfAborted(options.signal, task);
      first ??= frame;
      checkFrame(frame, first, count, path);
      const raw = sharp(frame.data, {
        raw: { width: frame.width, height: frame.height, channels: frame.channels },
      });
      // sharp would store one-channel input as RGB; keep gray frames gray.
      await (frame.channels === 1 ? raw.toColourspace("b-w") : raw)
        .png()
        .toFile(join(temp, target.name(count)));
      count++;
      options.onProgress?.({
        status: "progress",
        task,
        done: count,
        ...(options.totalFrames ? { total: options.totalFrames } : {}),
      });
    }
    throwIfAborted(options.signal, task);
    if (!first) throw noFramesError(path);
  };
  // Frame files are not fsynced one by one (thousands of flushes); the folder appears complete or not at all.
  await withAtomicDir(target.dir, build, {
    durable: false,
    canReplace: (existing) => onlyFilesOfType(existing, [".png"]),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  options.onProgress?.({ status: "done", task });
  return { frames: count, width: first?.width ?? 0, height: first?.height ?? 0 };
}

/**
 * Allows replacing `existing` only when it is a folder that is empty or holds nothing but files with
 * one of `replaceable` extensions (an earlier output of the same kind), so a mistyped path never
 * deletes unrelated files.
 */
async function onlyFilesOfType(existing: string, replaceable: readonly string[]): Promise<void> {
  const info = await stat(existing);
  const entries = info.isDirectory() ? await readdir(existing, { withFileTypes: true }) : [];
  const foreign = entries.find((e) => !e.isFile() || !replaceable.includes(extname(e.name).toLowerCase()));
  if (!info.isDirectory() || foreign) {
    throw new VideoError(
      existing,
      info.isDirectory()
        ? `refusing to replace this directory: it holds ${foreign?.name ?? "other files"}, not only ${replaceable.join("/")} files`
        : "refusing to replace this file with a frame directory",
      { hint: "choose a new output path or remove the old one first" },
    );
  }
}
