/**
 * Argument checks shared by the control-map and metric functions (sharp's wording through
 * {@link InvalidArgumentError}).
 */
import { InvalidArgumentError } from "../errors.js";
import type { Channels, Image } from "../image.js";

/** Checks that `img` is a well-formed image, optionally with one of the allowed channel counts. */
export function checkImage(name: string, img: Image, allowed?: readonly Channels[]): void {
  if (!Number.isInteger(img.width) || img.width <= 0 || !Number.isInteger(img.height) || img.height <= 0) {
    throw new InvalidArgumentError(
      `${name} size`,
      "positive integer width and height",
      `${img.width}x${img.height}`,
    );
  }
  if (allowed !== undefined && !allowed.includes(img.channels)) {
    throw new InvalidArgumentError(`${name} channels`, allowed.join(" or "), img.channels);
  }
  if (img.data.length !== img.width * img.height * img.channels) {
    throw new InvalidArgumentError(
      `${name}.data`,
      `${img.width * img.height * img.channels} bytes for ${img.width}x${img.height}x${img.channels}`,
      `${img.data.length} bytes`,
    );
  }
}

/** Checks that two images (or an image and a flow field) have the same width and height. */
export function checkSameSize(
  nameA: string,
  a: { readonly width: number; readonly height: number },
  nameB: string,
  b: { readonly width: number; readonly height: number },
): void {
  if (a.width !== b.width || a.height !== b.height) {
    throw new InvalidArgumentError(
      `${nameB} size`,
      `${a.width}x${a.height} (the size of ${nameA})`,
      `${b.width}x${b.height}`,
    );
  }
}

export function checkInteger(name: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer in [${min}, ${max}]`;
    throw new InvalidArgumentError(name, range, value);
  }
}

/** Checks a finite number in a range; `open` excludes the bounds. */
export function checkNumber(name: string, value: number, min: number, max: number, open = false): void {
  const ok = Number.isFinite(value) && (open ? value > min && value < max : value >= min && value <= max);
  if (!ok) {
    throw new InvalidArgumentError(
      name,
      `a number in ${open ? "(" : "["}${min}, ${max}${open ? ")" : "]"}`,
      value,
    );
  }
}

export function checkOneOf<T extends string>(name: string, value: T, allowed: readonly T[]): void {
  if (!allowed.includes(value))
    throw new InvalidArgumentError(name, `one of ${allowed.map((a) => `"${a}"`).join(", ")}`, value);
}
