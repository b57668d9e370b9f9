/**
 * Parsing of CLI option values shared by the video commands (`controls`, `metrics`); every bad value
 * is an InvalidArgumentError naming the flag.
 */
import { InvalidArgumentError } from "../../errors.js";

export function intOption(name: string, text: string | undefined, min: number): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min) {
    throw new InvalidArgumentError(name, `an integer >= ${min}`, text);
  }
  return n;
}

/** "256" -> 256x256, "512x288" -> 512x288. */
export function parseSize(text: string): { width: number; height: number } {
  const m = /^(\d+)(?:x(\d+))?$/.exec(text);
  const width = Number(m?.[1]);
  const height = Number(m?.[2] ?? m?.[1]);
  if (!m || !(width > 0) || !(height > 0) || width > 8192 || height > 8192) {
    throw new InvalidArgumentError(
      "--size",
      "N or WxH with sides from 1 to 8192 (e.g. 512 or 768x432)",
      text,
    );
  }
  return { width, height };
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
