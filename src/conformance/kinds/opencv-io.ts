/**
 * File access and comparisons for the opencv conformance kind: PNG folders (pixels checked
 * against case.json's `pixels_sha256`), the flow safetensors, and image-vs-image rows.
 */
import { createHash } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { CorruptFileError, FileNotFoundError } from "../../errors.js";
import type { Image } from "../../image.js";
import type { FlowField } from "../../control/flow.js";
import { readImageFile } from "../../control/png.js";
import { openSafetensors } from "../../weights/safetensors.js";
import type { ConformanceRow } from "../types.js";

/** Decoded-pixel hash checks: how many files were verified and which did not match. */
export class PixelCheck {
  verified = 0;
  readonly mismatched: string[] = [];
  constructor(private readonly hashes: ReadonlyMap<string, string>) {}

  check(relative: string, img: Image): void {
    const expected = this.hashes.get(relative);
    if (expected === undefined) return;
    this.verified++;
    if (createHash("sha256").update(img.data).digest("hex") !== expected) this.mismatched.push(relative);
  }
}

export function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Reads the `count` PNGs of a folder (sorted by name), checking their pixel hashes. */
export async function readPngDir(
  root: string,
  dir: string,
  count: number,
  pixels: PixelCheck,
): Promise<Image[]> {
  let names: string[];
  try {
    names = (await readdir(join(root, dir))).filter((n) => n.toLowerCase().endsWith(".png")).sort();
  } catch (cause) {
    throw new FileNotFoundError(join(root, dir), "fixture folder", { cause });
  }
  if (names.length !== count) {
    throw new CorruptFileError(
      join(root, dir),
      `holds ${names.length} PNG files, case.json implies ${count}`,
    );
  }
  return readPngs(
    root,
    names.map((n) => `${dir}/${n}`),
    pixels,
  );
}

/** Reads PNGs by relative path, checking their pixel hashes. */
export async function readPngs(
  root: string,
  relatives: readonly string[],
  pixels: PixelCheck,
): Promise<Image[]> {
  const images: Image[] = [];
  for (const relative of relatives) {
    const img = await readImageFile(join(root, relative));
    pixels.check(relative, img);
    images.push(img);
  }
  return images;
}

/** Splits a `[pairs, H, W, 2]` float32 tensor of a safetensors file into flow fields. */
export async function readFlows(path: string, name: string): Promise<FlowField[]> {
  const file = await openSafetensors(path);
  const t = await file.read(name);
  const [pairs, height, width, two] = t.shape;
  if (
    t.dtype !== "float32" ||
    t.shape.length !== 4 ||
    two !== 2 ||
    pairs === undefined ||
    height === undefined ||
    width === undefined
  ) {
    throw new CorruptFileError(
      path,
      `tensor "${name}" is ${t.dtype} [${t.shape.join(", ")}], expected float32 [pairs, H, W, 2]`,
    );
  }
  const data = t.data as Float32Array;
  const size = height * width * 2;
  return Array.from({ length: pairs }, (_, i) => ({
    width,
    height,
    data: data.subarray(i * size, (i + 1) * size),
  }));
}

/** Largest absolute difference over a list of images (and how many values differ). */
export function diffImages(
  actual: readonly Image[],
  expected: readonly Image[],
): { maxAbs: number; differing: number; note?: string } {
  if (actual.length !== expected.length)
    return { maxAbs: NaN, differing: NaN, note: `${actual.length} images, expected ${expected.length}` };
  let maxAbs = 0;
  let differing = 0;
  for (const [i, a] of actual.entries()) {
    const e = expected[i];
    if (e === undefined || a.width !== e.width || a.height !== e.height || a.channels !== e.channels) {
      const got = `${a.width}x${a.height}x${a.channels}`;
      return {
        maxAbs: NaN,
        differing: NaN,
        note: `image ${i} is ${got}, expected ${e ? `${e.width}x${e.height}x${e.channels}` : "none"}`,
      };
    }
    for (let k = 0; k < a.data.length; k++) {
      const d = Math.abs((a.data[k] ?? 0) - (e.data[k] ?? 0));
      if (d > 0) differing++;
      if (d > maxAbs) maxAbs = d;
    }
  }
  return { maxAbs, differing };
}

/** A row comparing computed images with the reference PNGs. */
export function imageRow(
  fixture: string,
  tensor: string,
  actual: readonly Image[],
  expected: readonly Image[],
  tolerance: number,
  extra = "",
): ConformanceRow {
  const d = diffImages(actual, expected);
  const note = d.note ?? `${actual.length} images, ${d.differing} values differ${extra}`;
  return { fixture, tensor, maxAbsError: d.maxAbs, tolerance, pass: d.maxAbs <= tolerance, note };
}

/** A row comparing computed numbers with reference numbers (max abs difference). */
export function numbersRow(
  fixture: string,
  tensor: string,
  actual: readonly number[],
  expected: readonly number[],
  tolerance: number,
  note?: string,
): ConformanceRow {
  let maxAbs = actual.length === expected.length ? 0 : NaN;
  for (const [i, a] of actual.entries()) maxAbs = Math.max(maxAbs, Math.abs(a - (expected[i] ?? NaN)));
  return {
    fixture,
    tensor,
    maxAbsError: maxAbs,
    tolerance,
    pass: maxAbs <= tolerance,
    ...(note === undefined ? {} : { note }),
  };
}
