/**
 * `readFrames(path, options)`: decodes a video file (mp4, webm, mov, gif...) or a PNG sequence into
 * RGB frames, one at a time, through `ffmpeg ... -f rawvideo -pix_fmt rgb24 pipe:1`. Memory does not
 * grow with the video's length: one frame plus the pipe buffers. The ffmpeg process is killed when
 * the consumer stops early, the AbortSignal fires or anything fails.
 */
import { InvalidArgumentError, VideoError, throwIfAborted } from "../errors.js";
import type { Image } from "../image.js";
import type { LongTaskOptions } from "../progress.js";
import { startTool, summarizeStderr, type FfmpegBinaries } from "./ffmpeg.js";
import { buildFilterChain, outputSize, type FilterOptions } from "./filters.js";
import { frameChunks } from "./frame-chunks.js";
import { probeSource, rationalValue, type VideoInfo } from "./probe.js";
import { DEFAULT_SEQUENCE_FPS, inputArgs, resolveSource } from "./source.js";

export type { ColorMatrixMode, CropRect, ResizeKernel, ResizeOptions } from "./filters.js";

/** A decoded RGB frame with its place in the (resampled) stream. */
export interface Frame extends Image {
  readonly channels: 3;
  /** Frame number in the stream after `fps` resampling (0-based; `start` and `stride` apply to it). */
  readonly index: number;
  /** `index / fps` in seconds (nominal: exact for constant-frame-rate streams). */
  readonly timestamp: number;
}

/** Largest frame (width x height) decoded unless the caller raises the limit: 8K UHD. */
export const DEFAULT_MAX_PIXELS = 7680 * 4320;

export interface ReadFramesOptions extends FilterOptions, LongTaskOptions, FfmpegBinaries {
  /** Resample to this frame rate (ffmpeg's fps filter: drops or repeats frames). Default: the stream's rate. */
  readonly fps?: number;
  /** First frame index to return (after resampling). Default 0. */
  readonly start?: number;
  /** Stop before this frame index (exclusive). Default: the end of the stream. */
  readonly end?: number;
  /** Take every `stride`-th frame from `start`. Default 1. */
  readonly stride?: number;
  /** Stop after this many frames. */
  readonly maxFrames?: number;
  /** Refuse output frames larger than this many pixels (default 8K UHD, 33.2 Mpx). */
  readonly maxPixels?: number;
  /** Frame rate given to PNG sequences, which carry none (default 24). */
  readonly sequenceFps?: number;
}

function checkOptions(o: ReadFramesOptions): void {
  const intAtLeast = (name: string, value: number | undefined, min: number): void => {
    if (value !== undefined && (!Number.isInteger(value) || value < min)) {
      throw new InvalidArgumentError(name, `an integer >= ${min}`, value);
    }
  };
  intAtLeast("start", o.start, 0);
  intAtLeast("end", o.end, 1);
  intAtLeast("stride", o.stride, 1);
  intAtLeast("maxFrames", o.maxFrames, 1);
  intAtLeast("maxPixels", o.maxPixels, 1);
  if (o.fps !== undefined && (!Number.isFinite(o.fps) || o.fps <= 0)) {
    throw new InvalidArgumentError("fps", "a positive frame rate", o.fps);
  }
  if (o.end !== undefined && o.end <= (o.start ?? 0)) {
    throw new InvalidArgumentError("end", `a frame index greater than start (${o.start ?? 0})`, o.end);
  }
}

/** How many frames the options select from `total` stream frames (undefined when unknown). */
function selectedCount(total: number | undefined, o: ReadFramesOptions): number | undefined {
  const start = o.start ?? 0;
  const stride = o.stride ?? 1;
  const stop = total === undefined ? o.end : Math.min(total, o.end ?? total);
  let count = stop === undefined ? undefined : Math.max(0, Math.ceil((stop - start) / stride));
  if (o.maxFrames !== undefined) count = count === undefined ? o.maxFrames : Math.min(count, o.maxFrames);
  return count;
}

/** Decodes frames one by one. See ReadFramesOptions for selection, resizing and colour handling. */
export async function* readFrames(
  path: string,
  options: ReadFramesOptions = {},
): AsyncGenerator<Frame, void, undefined> {
  checkOptions(options);
  const { signal, onProgress } = options;
  throwIfAborted(signal, `reading ${path}`);
  const source = await resolveSource(path);
  const info: VideoInfo = await probeSource(source, options);
  const size = outputSize(info, options);
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (size.width * size.height > maxPixels) {
    throw new VideoError(
      path,
      `frames of ${size.width}x${size.height} exceed the limit of ${maxPixels} pixels`,
      {
        hint: "pass resize: {width, height} to decode smaller frames, or raise maxPixels",
      },
    );
  }
  // Without resampling the container's frame count tells how many frames to expect.
  const streamFrames = options.fps === undefined ? info.frameCount : undefined;
  if (streamFrames !== undefined && (options.start ?? 0) >= streamFrames) {
    throw new InvalidArgumentError(
      "start",
      `a frame index below the video's ${streamFrames} frames`,
      options.start,
    );
  }
  const expected = selectedCount(streamFrames, options);
  const limit = selectedCount(undefined, options);
  const fps = options.fps ?? rationalValue(info.fps);
  const args = ["-nostdin", "-hide_banner", "-v", "error"];
  args.push(
    ...inputArgs(source, options.sequenceFps ?? DEFAULT_SEQUENCE_FPS),
    "-map",
    "0:v:0",
    "-an",
    "-sn",
    "-dn",
  );
  args.push("-vf", buildFilterChain(options), "-vsync", "passthrough");
  if (limit !== undefined) args.push("-frames:v", String(limit));
  args.push("-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1");

  throwIfAborted(signal, `reading ${path}`);
  const tool = startTool(options.ffmpegPath ?? "ffmpeg", args, path, { stdin: "ignore", stdout: "pipe" });
  const onAbort = (): void => void tool.kill();
  signal?.addEventListener("abort", onAbort, { once: true });
  const task = `decode ${path}`;
  let trailing = 0;
  let delivered = 0;
  try {
    const stdout = tool.child.stdout;
    if (!stdout) throw new VideoError(path, "ffmpeg started without a stdout pipe");
    await Promise.race([tool.spawnFailed, new Promise<void>((r) => tool.child.once("spawn", () => r()))]);
    onProgress?.({ status: "start", task, ...(expected === undefined ? {} : { total: expected }) });
    const start = options.start ?? 0;
    const stride = options.stride ?? 1;
    for await (const data of frameChunks(stdout, size.width * size.height * 3, (n) => (trailing = n))) {
      const index = start + delivered * stride;
      delivered++;
      yield { width: size.width, height: size.height, channels: 3, data, index, timestamp: index / fps };
      throwIfAborted(signal, `reading ${path}`);
      onProgress?.({
        status: "progress",
        task,
        done: delivered,
        ...(expected === undefined ? {} : { total: expected }),
      });
    }
    const code = await tool.exited;
    throwIfAborted(signal, `reading ${path}`);
    const stderr = tool.stderr();
    const said = summarizeStderr(stderr);
    const hint =
      "check that the file is complete and plays in a video player; re-export or download it again";
    if (code !== 0) {
      throw new VideoError(
        path,
        `ffmpeg failed after ${delivered} frames (exit ${code})${said ? `: ${said}` : ""}`,
        { hint },
      );
    }
    if (trailing > 0 || /partial file/i.test(stderr)) {
      throw new VideoError(
        path,
        `the video is truncated: decoding stopped after ${delivered} frames (${said})`,
        { hint },
      );
    }
    if (delivered === 0) {
      throw new VideoError(path, `no frames were decoded${said ? ` (${said})` : ""}`, {
        hint: "check start/end/fps against the video's length, or that the file holds a video stream",
      });
    }
    if (expected !== undefined && delivered < expected && stderr.trim().length > 0) {
      throw new VideoError(path, `decoded ${delivered} of ${expected} frames: ${said}`, { hint });
    }
    onProgress?.({ status: "done", task });
  } finally {
    signal?.removeEventListener("abort", onAbort);
    await tool.kill();
  }
}

/** Options of readAllFrames: readFrames' plus a bound on the memory it may take. */
export interface ReadAllFramesOptions extends ReadFramesOptions {
  /** Refuse to hold more than this many bytes of frames (default 1 GiB). */
  readonly maxTotalBytes?: number;
}

/** All frames in an array: for short clips only (see maxTotalBytes). */
export async function readAllFrames(path: string, options: ReadAllFramesOptions = {}): Promise<Frame[]> {
  const maxTotalBytes = options.maxTotalBytes ?? 1024 ** 3;
  const frames: Frame[] = [];
  let bytes = 0;
  for await (const frame of readFrames(path, options)) {
    bytes += frame.data.length;
    if (bytes > maxTotalBytes) {
      throw new InvalidArgumentError(
        "maxTotalBytes",
        `room for more than ${frames.length} frames`,
        maxTotalBytes,
        {
          hint: "use readFrames to stream the video, or pass maxFrames / resize to read less",
        },
      );
    }
    frames.push(frame);
  }
  return frames;
}
