/**
 * Parsing of CLI arguments and option values shared by the commands (`conformance`, `controls`,
 * `metrics`); every bad value is an InvalidArgumentError naming the flag.
 */
import { type ParseArgsConfig, parseArgs } from "node:util";
import type { DepthPreset } from "../../control/depth.js";
import { InvalidArgumentError } from "../../errors.js";
import { DEVICES, type Device, type ExecutionProvider, providersForDevice } from "../../runtime/session.js";

/** node:util parseArgs over a command's arguments, with positionals allowed (unknown flags throw). */
export function parseCommandArgs<const O extends NonNullable<ParseArgsConfig["options"]>>(
  args: readonly string[],
  options: O,
): ReturnType<typeof parseArgs<{ args: string[]; allowPositionals: true; options: O }>> {
  return parseArgs({ args: [...args], allowPositionals: true, options });
}

/** The parseArgs options the video commands share: --size, --frames, --depth and --depth-preset. */
export const VIDEO_OPTIONS = {
  size: { type: "string" },
  frames: { type: "string" },
  depth: { type: "string" },
  "depth-preset": { type: "string" },
} as const;

/** The one `<video>` argument of a video command (InvalidArgumentError pointing at its --help). */
export function singleVideoArg(positionals: readonly string[], command: string): string {
  const [video, ...more] = positionals;
  if (video === undefined || more.length > 0) {
    throw new InvalidArgumentError("<video>", "exactly one video path", positionals, {
      hint: `see steadyframe ${command} --help`,
    });
  }
  return video;
}

export function intOption(name: string, text: string | undefined, min: number): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min) {
    throw new InvalidArgumentError(name, `an integer >= ${min}`, text);
  }
  return n;
}

/** A parsed --size: the short side (aspect ratio kept) or an exact width and height. */
export type SizeOption = { readonly shortSide: number } | { readonly width: number; readonly height: number };

/** "512" -> short side 512 (aspect ratio kept, see {@link resolveSize}); "768x432" -> exactly 768x432. */
export function parseSize(text: string, flag = "--size"): SizeOption {
  const m = /^(\d+)(?:x(\d+))?$/.exec(text.trim());
  const width = Number(m?.[1]);
  const height = Number(m?.[2] ?? m?.[1]);
  if (!m || !(width >= 8) || !(height >= 8) || width > 8192 || height > 8192) {
    throw new InvalidArgumentError(
      flag,
      "N (the short side; the aspect ratio is kept) or WxH (exact), sides from 8 to 8192, e.g. 512 or 768x432",
      text,
    );
  }
  return m[2] === undefined ? { shortSide: width } : { width, height };
}

/**
 * The frame size for a source of `sourceWidth` x `sourceHeight`: WxH as given; N scales the short side
 * to N and the long side by the same factor, both rounded to the nearest multiple of 8 (what Stable
 * Diffusion's VAE needs; at least 8). 854x480 with 512 -> 912x512.
 */
export function resolveSize(
  size: SizeOption,
  sourceWidth: number,
  sourceHeight: number,
): { width: number; height: number } {
  if ("width" in size) return { width: size.width, height: size.height };
  const scale = size.shortSide / Math.min(sourceWidth, sourceHeight);
  const round8 = (x: number): number => Math.max(8, Math.round((x * scale) / 8) * 8);
  return { width: round8(sourceWidth), height: round8(sourceHeight) };
}

/** "100,200" -> thresholds. */
export function parseCanny(text: string): { threshold1: number; threshold2: number } {
  const parts = text.split(",").map((p) => Number(p.trim()));
  const [threshold1, threshold2] = parts;
  if (
    parts.length !== 2 ||
    threshold1 === undefined ||
    threshold2 === undefined ||
    !parts.every((p) => Number.isFinite(p) && p >= 0)
  ) {
    throw new InvalidArgumentError("--canny", "two thresholds low,high (e.g. 100,200)", text);
  }
  return { threshold1, threshold2 };
}

export function oneOf<T extends string>(
  name: string,
  value: string | undefined,
  allowed: readonly T[],
  fallback: T,
): T {
  if (value === undefined) return fallback;
  const found = allowed.find((a) => a === value);
  if (found === undefined) throw new InvalidArgumentError(name, `one of ${allowed.join(", ")}`, value);
  return found;
}

/** --depth-preset: depth-anything (default), dpt or midas. */
export function depthPresetOption(value: string | undefined): DepthPreset {
  return oneOf<DepthPreset>("--depth-preset", value, ["depth-anything", "dpt", "midas"], "depth-anything");
}

/** --device cpu|cuda|webgpu (default cpu): the ONNX Runtime execution providers to try, CPU last. */
export function deviceOption(value: string | undefined): ExecutionProvider[] {
  return providersForDevice(oneOf<Device>("--device", value, DEVICES, "cpu"));
}
