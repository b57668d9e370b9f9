/**
 * `probeVideo(path)`: size, frame rate, frame count and colour tags of a video file or PNG
 * sequence, read with `ffprobe -of json`. The JSON is untrusted: every field is checked.
 */
import { InvalidArgumentError, VideoError } from "../errors.js";
import { runToText, summarizeStderr, type FfmpegBinaries } from "./ffmpeg.js";
import { DEFAULT_SEQUENCE_FPS, resolveSource, type VideoSource } from "./source.js";

/** A frame rate as ffprobe reports it (30000/1001 for NTSC). */
export interface Rational {
  readonly num: number;
  readonly den: number;
}

export type ColorMatrixTag = "bt601" | "bt709" | "unknown";

export interface VideoInfo {
  readonly path: string;
  readonly kind: "file" | "png-sequence";
  /** Display size: after the rotation ffmpeg applies when decoding. */
  readonly width: number;
  readonly height: number;
  readonly fps: Rational;
  /** Frames in the stream when the container says so (or when counted); undefined otherwise. */
  readonly frameCount: number | undefined;
  readonly durationSeconds: number | undefined;
  /** ffprobe's codec_name: "h264", "vp9", "gif", "png"... */
  readonly codec: string;
  /** ffprobe's pix_fmt: "yuv420p", "yuvj420p", "rgb24"... */
  readonly pixelFormat: string;
  readonly colorRange: "limited" | "full" | "unknown";
  /** The YUV->RGB matrix the stream is tagged with; "unknown" when untagged (ffmpeg then uses BT.601). */
  readonly colorMatrix: ColorMatrixTag;
  /** ffprobe's raw color_space tag, when present ("bt709", "smpte170m", "bt2020nc"...). */
  readonly colorSpaceTag: string | undefined;
  /** Display rotation in degrees from the stream's display matrix (0, 90, 180, 270). */
  readonly rotation: number;
  readonly hasAudio: boolean;
}

export interface ProbeOptions extends FfmpegBinaries {
  /** Frame rate assigned to PNG sequences (default 24). */
  readonly sequenceFps?: number;
  /** Decode the whole stream to count frames when the container does not store the count. */
  readonly countFrames?: boolean;
}

type Json = Record<string, unknown>;

function isJson(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function record(value: unknown): Json | undefined {
  return isJson(value) ? value : undefined;
}

function str(value: unknown): string | undefined {
  return typeof value === "string" && value.length > 0 ? value : undefined;
}

function num(value: unknown): number | undefined {
  const n = typeof value === "number" ? value : typeof value === "string" ? Number(value) : Number.NaN;
  return Number.isFinite(n) ? n : undefined;
}

export function parseRational(value: unknown): Rational | undefined {
  const text = str(value);
  const m = text === undefined ? null : /^(\d+)(?:\/(\d+))?$/.exec(text);
  if (!m) return undefined;
  const n = Number(m[1]);
  const d = m[2] === undefined ? 1 : Number(m[2]);
  return n > 0 && d > 0 ? { num: n, den: d } : undefined;
}

export function rationalValue(r: Rational): number {
  return r.num / r.den;
}

function colorMatrixOf(tag: string | undefined): ColorMatrixTag {
  if (tag === "bt709") return "bt709";
  if (tag === "bt470bg" || tag === "smpte170m" || tag === "bt601") return "bt601";
  return "unknown";
}

function rotationOf(stream: Json): number {
  let degrees = 0;
  const list = stream["side_data_list"];
  if (Array.isArray(list)) {
    for (const item of list) degrees = num(record(item)?.["rotation"]) ?? degrees;
  }
  degrees = num(record(stream["tags"])?.["rotate"]) ?? degrees;
  return (((Math.round(degrees / 90) * 90) % 360) + 360) % 360;
}

function fail(path: string, detail: string, stderr: string): VideoError {
  const said = summarizeStderr(stderr);
  return new VideoError(path, `${detail}${said ? ` (ffprobe: ${said})` : ""}`, {
    hint: "check that it is a complete video (mp4, webm, mov, gif) or a PNG sequence; re-export it if it was cut short",
  });
}

/** Probes an already resolved source (readFrames shares the resolution with this). */
export async function probeSource(source: VideoSource, options: ProbeOptions = {}): Promise<VideoInfo> {
  const ffprobe = options.ffprobePath ?? "ffprobe";
  const sequenceFps = options.sequenceFps ?? DEFAULT_SEQUENCE_FPS;
  if (!(sequenceFps > 0) || !Number.isFinite(sequenceFps)) {
    throw new InvalidArgumentError("sequenceFps", "a positive frame rate", sequenceFps);
  }
  const target = source.kind === "file" ? ["-i", source.absolute] : ["-i", source.files[0] ?? ""];
  const args = ["-v", "error", "-hide_banner", "-show_streams", "-show_format", "-of", "json"];
  if (options.countFrames && source.kind === "file") args.push("-count_frames");
  const { code, stdout, stderr } = await runToText(ffprobe, [...args, ...target], source.path);
  if (code !== 0) throw fail(source.path, "not a readable video", stderr);
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    throw fail(source.path, "ffprobe printed no valid JSON", stderr);
  }
  const root = record(parsed) ?? {};
  const streams = Array.isArray(root["streams"]) ? root["streams"].map(record) : [];
  const video = streams.find(
    (s) => s?.["codec_type"] === "video" && num(record(s["disposition"])?.["attached_pic"]) !== 1,
  );
  if (!video) throw fail(source.path, "has no video stream", stderr);
  const codedWidth = num(video["width"]);
  const codedHeight = num(video["height"]);
  if (!codedWidth || !codedHeight) throw fail(source.path, "the video stream has no frame size", stderr);
  const rotation = rotationOf(video);
  const swap = rotation === 90 || rotation === 270;
  const format = record(root["format"]) ?? {};
  const pixelFormat = str(video["pix_fmt"]) ?? "unknown";
  const range = str(video["color_range"]);
  const colorSpaceTag = str(video["color_space"]);
  const fps =
    source.kind === "png-sequence"
      ? (parseRational(String(sequenceFps)) ?? { num: Math.round(sequenceFps * 1000), den: 1000 })
      : (parseRational(video["avg_frame_rate"]) ??
        parseRational(video["r_frame_rate"]) ?? { num: 25, den: 1 });
  const frameCount =
    source.kind === "png-sequence"
      ? source.files.length
      : (num(video["nb_read_frames"]) ?? num(video["nb_frames"]));
  const duration =
    source.kind === "png-sequence"
      ? source.files.length / rationalValue(fps)
      : (num(video["duration"]) ?? num(format["duration"]));
  return {
    path: source.path,
    kind: source.kind,
    width: swap ? codedHeight : codedWidth,
    height: swap ? codedWidth : codedHeight,
    fps,
    frameCount: frameCount !== undefined && frameCount > 0 ? Math.round(frameCount) : undefined,
    durationSeconds: duration,
    codec: str(video["codec_name"]) ?? "unknown",
    pixelFormat,
    colorRange:
      range === "pc" || pixelFormat.startsWith("yuvj") ? "full" : range === "tv" ? "limited" : "unknown",
    colorMatrix: colorMatrixOf(colorSpaceTag),
    colorSpaceTag,
    rotation,
    hasAudio: streams.some((s) => s?.["codec_type"] === "audio"),
  };
}

/** Size, frame rate, frame count and colour tags of a video file or PNG sequence. */
export async function probeVideo(path: string, options: ProbeOptions = {}): Promise<VideoInfo> {
  const source = await resolveSource(path);
  return probeSource(source, options);
}
