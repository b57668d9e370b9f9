/**
 * What a video path points at and how ffmpeg should open it: a video file (mp4, webm, mov, mkv,
 * gif...), a directory of PNG frames (sorted by name), or a printf pattern such as
 * `frames/%04d.png`. Paths are made absolute so that ffmpeg never reads `a:b.mp4` as a protocol.
 */
import { readdir, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { FileNotFoundError, InvalidArgumentError, VideoError } from "../errors.js";

export type VideoSource =
  | { readonly kind: "file"; readonly path: string; readonly absolute: string; readonly bytes: number }
  | {
      readonly kind: "png-sequence";
      readonly path: string;
      /** The frame files in playback order. */
      readonly files: readonly string[];
      /** ffmpeg input options before `-i` plus the input itself (without the frame rate). */
      readonly inputArgs: readonly string[];
    };

/** Frame rate assumed for PNG sequences (they carry none), unless the caller gives one. */
export const DEFAULT_SEQUENCE_FPS = 24;

const PRINTF_RE = /%(0?\d*)d/;

function escapeGlob(path: string): string {
  return path.replace(/[\\*?[\]{}]/g, (c) => `\\${c}`);
}

function escapePercent(path: string): string {
  return path.replace(/%/g, "%%");
}

async function pngSequenceFromDir(path: string, absolute: string): Promise<VideoSource> {
  const names = (await readdir(absolute))
    .filter((n) => !n.startsWith(".") && n.toLowerCase().endsWith(".png"))
    .sort();
  if (names.length === 0) {
    throw new VideoError(path, "the directory holds no .png frames", {
      hint: "point to a video file, a directory of PNG frames, or a pattern like frames/%04d.png",
    });
  }
  return {
    kind: "png-sequence",
    path,
    files: names.map((n) => join(absolute, n)),
    inputArgs: ["-f", "image2", "-pattern_type", "glob", "-i", `${escapeGlob(absolute)}/*.[pP][nN][gG]`],
  };
}

async function pngSequenceFromPattern(path: string, absolute: string): Promise<VideoSource> {
  const dir = dirname(absolute);
  const base = basename(absolute);
  const match = PRINTF_RE.exec(base);
  if (!match || PRINTF_RE.test(base.slice(match.index + match[0].length))) {
    throw new InvalidArgumentError("path", "one %d / %0Nd placeholder in the file name", path);
  }
  const flags = match[1] ?? "";
  const width = flags ? Number.parseInt(flags, 10) : 0;
  const pad = flags.startsWith("0") ? "0" : " ";
  const head = base.slice(0, match.index);
  const tail = base.slice(match.index + match[0].length);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    throw new FileNotFoundError(dir, "frame directory", { cause: err });
  }
  const numbers = new Map<number, string>();
  for (const name of names) {
    if (!name.startsWith(head) || !name.endsWith(tail) || name.length <= head.length + tail.length) continue;
    const digits = name.slice(head.length, name.length - tail.length);
    const n = Number.parseInt(digits.trim(), 10);
    // Same file name ffmpeg's image2 demuxer formats for frame n.
    if (Number.isInteger(n) && n >= 0 && String(n).padStart(width, pad) === digits)
      numbers.set(n, join(dir, name));
  }
  if (numbers.size === 0) throw new FileNotFoundError(path, "frames matching the pattern");
  const start = Math.min(...numbers.keys());
  const files: string[] = [];
  for (let n = start; numbers.has(n); n++) files.push(numbers.get(n) ?? "");
  return {
    kind: "png-sequence",
    path,
    files,
    inputArgs: ["-f", "image2", "-start_number", String(start), "-i", join(escapePercent(dir), base)],
  };
}

/** Resolves `path` to a source; throws FileNotFoundError / VideoError for missing or empty inputs. */
export async function resolveSource(path: string): Promise<VideoSource> {
  if (typeof path !== "string" || path.length === 0)
    throw new InvalidArgumentError("path", "a video path", path);
  const absolute = resolve(path);
  const name = basename(absolute);
  if (PRINTF_RE.test(name) && /\.png$/i.test(name)) return pngSequenceFromPattern(path, absolute);
  let info;
  try {
    info = await stat(absolute);
  } catch (err) {
    throw new FileNotFoundError(path, "video", { cause: err, hint: "check the path" });
  }
  if (info.isDirectory()) return pngSequenceFromDir(path, absolute);
  if (info.size === 0) {
    throw new VideoError(path, "the file is empty (0 bytes)", { hint: "export or download the video again" });
  }
  return { kind: "file", path, absolute, bytes: info.size };
}

/** ffmpeg input arguments for a source; `sequenceFps` only applies to PNG sequences. */
export function inputArgs(source: VideoSource, sequenceFps: number): string[] {
  if (source.kind === "file") return ["-i", source.absolute];
  const args = [...source.inputArgs];
  args.splice(args.length - 2, 0, "-framerate", String(sequenceFps));
  return args;
}
