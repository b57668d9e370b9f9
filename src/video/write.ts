/**
 * `writeVideo(path, frames, options)`: encodes RGB / gray / RGBA frames into .mp4 / .mov / .mkv
 * (H.264, yuv420p), .webm (VP9 or VP8), .gif (two-pass palette) with ffmpeg fed through stdin, or
 * into a PNG sequence (a directory or `dir/%04d.png`) with sharp. Every output is atomic: it is
 * written under a temporary name next to the target and renamed only on success; on failure or
 * cancellation the temporary output is deleted.
 */
import { basename, extname } from "node:path";
import type { Writable } from "node:stream";
import { InvalidArgumentError, SteadyframeError, VideoError, throwIfAborted } from "../errors.js";
import type { Image } from "../image.js";
import type { LongTaskOptions } from "../progress.js";
import { withAtomicFile } from "../util/atomic-write.js";
import { startTool, summarizeStderr, type FfmpegBinaries, type ToolProcess } from "./ffmpeg.js";
import { checkFrame, noFramesError } from "./frame-check.js";
import { writePngSequence } from "./write-png.js";

export type VideoCodec = "h264" | "vp9" | "vp8" | "gif" | "png";
type Container = "mp4" | "mov" | "matroska" | "webm" | "gif" | "png";

export interface WriteVideoOptions extends LongTaskOptions, FfmpegBinaries {
  /** Frames per second (default 24). */
  readonly fps?: number;
  /** Default: h264 for .mp4/.mov/.mkv, vp9 for .webm, gif for .gif, png for directories. */
  readonly codec?: VideoCodec;
  /** The codec's own constant-quality value (H.264 0-51, default 18; VP9 0-63, default 31; VP8 4-63, default 10). */
  readonly crf?: number;
  /** 1 (worst) to 100 (best), mapped onto the codec's crf scale; give either this or crf. */
  readonly quality?: number;
  /** Frame count for the progress bar, when the iterable does not know it. */
  readonly totalFrames?: number;
}

export interface WrittenVideo {
  readonly path: string;
  readonly frames: number;
  readonly width: number;
  readonly height: number;
}

const CONTAINERS: Record<string, Container> = {
  ".mp4": "mp4",
  ".m4v": "mp4",
  ".mov": "mov",
  ".mkv": "matroska",
  ".webm": "webm",
  ".gif": "gif",
};
const CODECS: Record<Container, readonly VideoCodec[]> = {
  mp4: ["h264"],
  mov: ["h264"],
  matroska: ["h264", "vp9", "vp8"],
  webm: ["vp9", "vp8"],
  gif: ["gif"],
  png: ["png"],
};
const CRF: Partial<Record<VideoCodec, { min: number; max: number; default: number }>> = {
  h264: { min: 0, max: 51, default: 18 },
  vp9: { min: 0, max: 63, default: 31 },
  vp8: { min: 4, max: 63, default: 10 },
};

function containerOf(path: string): Container {
  const name = basename(path);
  if (/%0?\d*d/.test(name) && /\.png$/i.test(name)) return "png";
  const ext = extname(name).toLowerCase();
  if (ext === "" || /[/\\]$/.test(path)) return "png";
  const container = CONTAINERS[ext];
  if (!container) {
    throw new InvalidArgumentError(
      "path",
      "a .mp4, .mov, .mkv, .webm or .gif file, a directory, or dir/%04d.png",
      path,
    );
  }
  return container;
}

function crfFor(codec: VideoCodec, options: WriteVideoOptions): number | undefined {
  const range = CRF[codec];
  if (!range) return undefined;
  if (options.crf !== undefined && options.quality !== undefined) {
    throw new InvalidArgumentError("quality", "to be left out when crf is given", options.quality);
  }
  if (options.quality !== undefined) {
    const q = options.quality;
    if (!Number.isFinite(q) || q < 1 || q > 100)
      throw new InvalidArgumentError("quality", "a number from 1 to 100", q);
    return Math.max(range.min, Math.round((range.max * (100 - q)) / 100));
  }
  const crf = options.crf ?? range.default;
  if (!Number.isInteger(crf) || crf < range.min || crf > range.max) {
    throw new InvalidArgumentError("crf", `an integer from ${range.min} to ${range.max} for ${codec}`, crf);
  }
  return crf;
}

/** ffmpeg output arguments (after the rawvideo input) for one container/codec. */
function encoderArgs(
  container: Container,
  codec: VideoCodec,
  crf: number | undefined,
  frame: Image,
): string[] {
  if (codec === "gif") {
    return [
      "-vf",
      "split[a][b];[a]palettegen=stats_mode=full[p];[b][p]paletteuse",
      "-loop",
      "0",
      "-f",
      "gif",
    ];
  }
  // yuv420p needs even sizes: pad odd ones with one black row/column. RGB -> YUV with BT.601,
  // tagged as such, so every decoder (ffmpeg's "auto" and OpenCV alike) converts it back the same way.
  const pad = frame.width % 2 !== 0 || frame.height % 2 !== 0 ? "pad=ceil(iw/2)*2:ceil(ih/2)*2," : "";
  const args = ["-vf", `${pad}scale=out_color_matrix=bt601:out_range=tv,format=yuv420p`];
  args.push("-colorspace", "smpte170m", "-color_range", "tv");
  if (codec === "h264") args.push("-c:v", "libx264", "-preset", "medium", "-crf", String(crf));
  if (codec === "vp9") args.push("-c:v", "libvpx-vp9", "-crf", String(crf), "-b:v", "0", "-row-mt", "1");
  if (codec === "vp8") args.push("-c:v", "libvpx", "-crf", String(crf), "-b:v", "10M");
  if (container === "mp4" || container === "mov") args.push("-movflags", "+faststart");
  args.push("-f", container);
  return args;
}

function writeChunk(stdin: Writable, data: Uint8Array, tool: ToolProcess): Promise<void> {
  if (stdin.write(data)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (): void => {
      stdin.off("drain", done);
      resolve();
    };
    stdin.on("drain", done);
    void tool.exited.then(() => reject(new Error("ffmpeg exited while frames were still being written")));
  });
}

async function encodeWithFfmpeg(
  path: string,
  container: Container,
  codec: VideoCodec,
  frames: AsyncIterable<Image> | Iterable<Image>,
  options: WriteVideoOptions,
): Promise<WrittenVideo> {
  const fps = options.fps ?? 24;
  if (!Number.isFinite(fps) || fps <= 0) throw new InvalidArgumentError("fps", "a positive frame rate", fps);
  const crf = crfFor(codec, options);
  const task = `encode ${path}`;
  let tool: ToolProcess | undefined;
  const onAbort = (): void => void tool?.kill();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  let first: Image | undefined;
  let count = 0;
  let encoded = false;
  // Written to a hidden temporary file (same extension: ffmpeg picks the container from it).
  const encode = async (temp: string): Promise<void> => {
    for await (const frame of frames) {
      throwIfAborted(options.signal, task);
      if (!first) {
        first = frame;
        checkFrame(frame, first, 0, path);
        const pixFmt = frame.channels === 1 ? "gray" : frame.channels === 3 ? "rgb24" : "rgba";
        const args = ["-nostdin", "-hide_banner", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", pixFmt];
        args.push("-s", `${frame.width}x${frame.height}`, "-framerate", String(fps), "-i", "pipe:0");
        args.push(...encoderArgs(container, codec, crf, frame), temp);
        tool = startTool(options.ffmpegPath ?? "ffmpeg", args, path, { stdin: "pipe", stdout: "ignore" });
        await Promise.race([
          tool.spawnFailed,
          new Promise<void>((r) => tool?.child.once("spawn", () => r())),
        ]);
        tool.child.stdin?.on("error", () => undefined); // EPIPE when ffmpeg dies; its exit code reports it.
        options.onProgress?.({
          status: "start",
          task,
          ...(options.totalFrames ? { total: options.totalFrames } : {}),
        });
      }
      checkFrame(frame, first, count, path);
      const stdin = tool?.child.stdin;
      if (!tool || !stdin) throw new VideoError(path, "ffmpeg started without a stdin pipe");
      await writeChunk(stdin, frame.data, tool).catch(() => undefined);
      if (tool.child.exitCode !== null || tool.child.signalCode !== null) break;
      count++;
      options.onProgress?.({
        status: "progress",
        task,
        done: count,
        ...(options.totalFrames ? { total: options.totalFrames } : {}),
      });
    }
    throwIfAborted(options.signal, task);
    if (!tool || !first) throw noFramesError(path);
    tool.child.stdin?.end();
    const code = await tool.exited;
    throwIfAborted(options.signal, task);
    if (code !== 0) {
      const said = summarizeStderr(tool.stderr());
      throw new VideoError(
        path,
        `ffmpeg could not encode the video (exit ${code})${said ? `: ${said}` : ""}`,
        {
          hint: "check the codec options and that the output directory is writable",
        },
      );
    }
    encoded = true;
  };
  try {
    await withAtomicFile(path, encode, options.signal ? { signal: options.signal } : {});
  } catch (err) {
    await tool?.kill();
    if (encoded && !(err instanceof SteadyframeError)) {
      throw new VideoError(path, `cannot move the finished video into place (${String(err)})`, {
        cause: err,
        hint: "remove or rename what is at the output path, or choose another path",
      });
    }
    throw err;
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
  }
  if (!first) throw noFramesError(path);
  options.onProgress?.({ status: "done", task });
  return { path, frames: count, width: first.width, height: first.height };
}

/** Encodes frames into a video file or PNG sequence chosen by the path's extension (see module doc). */
export async function writeVideo(
  path: string,
  frames: AsyncIterable<Image> | Iterable<Image>,
  options: WriteVideoOptions = {},
): Promise<WrittenVideo> {
  throwIfAborted(options.signal, `writing ${path}`);
  const container = containerOf(path);
  const codec = options.codec ?? CODECS[container][0] ?? "h264";
  if (!CODECS[container].includes(codec)) {
    throw new InvalidArgumentError("codec", `one of ${CODECS[container].join(", ")} for ${path}`, codec);
  }
  if (container === "png") {
    const { frames: n, width, height } = await writePngSequence(path, frames, options);
    return { path, frames: n, width, height };
  }
  return encodeWithFfmpeg(path, container, codec, frames, options);
}
