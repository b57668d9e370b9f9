/**
 * Edge fidelity: does the generated video keep the control edges? Canny is re-run on each output
 * frame and compared with the control edge map with a pixel tolerance (edges shift by a pixel or
 * two without being wrong). With P = predicted edge pixels (Canny of the output), C = control edge
 * pixels, and `near(p, S)` = some pixel of S within Euclidean distance `tolerance` of p:
 *
 *     precision = |{p ∈ P : near(p, C)}| / |P|      recall = |{c ∈ C : near(c, P)}| / |C|
 *     F1 = 2 · precision · recall / (precision + recall)
 *
 * An edge pixel is a value >= `threshold` (default 128, so blended maps count only their strong
 * edges). Empty sets: precision = 1 when P is empty, recall = 1 when C is empty; F1 = 0 when both
 * precision and recall are 0. `mse` is the plain pixel MSE of the two maps scaled to [0, 1].
 */
import { InvalidArgumentError } from "../errors.js";
import type { Image } from "../image.js";
import { cannySync, type CannyOptions } from "../control/canny.js";
import { toGraySync } from "../control/gray.js";
import { loadCv } from "../control/opencv.js";
import { checkImage, checkInteger, checkSameSize } from "../control/validate.js";

export interface EdgeF1Options {
  /** (optional, default 2) match radius in pixels (Euclidean, integer offsets). */
  readonly tolerance?: number;
  /** (optional, default 128) a pixel is an edge when its value is >= this. */
  readonly threshold?: number;
}

export interface EdgeF1 {
  readonly precision: number;
  readonly recall: number;
  readonly f1: number;
  /** Mean squared difference of the two maps, values / 255. */
  readonly mse: number;
  readonly predictedPixels: number;
  readonly controlPixels: number;
}

/** 1 where an edge pixel of `edges` lies within `radius` px (Euclidean) of the pixel. */
function dilate(edges: Uint8Array, width: number, height: number, radius: number): Uint8Array {
  const offsets: [number, number][] = [];
  for (let dy = -radius; dy <= radius; dy++)
    for (let dx = -radius; dx <= radius; dx++)
      if (dx * dx + dy * dy <= radius * radius) offsets.push([dx, dy]);
  const out = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (edges[y * width + x] !== 1) continue;
      for (const [dx, dy] of offsets) {
        const u = x + dx;
        const v = y + dy;
        if (u >= 0 && u < width && v >= 0 && v < height) out[v * width + u] = 1;
      }
    }
  }
  return out;
}

/** Tolerant precision / recall / F1 of a predicted edge map against a control edge map. */
export function edgeF1(predicted: Image, control: Image, options: EdgeF1Options = {}): EdgeF1 {
  checkImage("predicted", predicted, [1]);
  checkImage("control", control, [1]);
  checkSameSize("predicted", predicted, "control", control);
  const tolerance = options.tolerance ?? 2;
  const threshold = options.threshold ?? 128;
  checkInteger("tolerance", tolerance, 0, 64);
  if (!Number.isFinite(threshold) || threshold <= 0 || threshold > 255)
    throw new InvalidArgumentError("threshold", "a number in (0, 255]", threshold);
  const { width, height } = predicted;
  const n = width * height;
  const p = Uint8Array.from(predicted.data, (v) => (v >= threshold ? 1 : 0));
  const c = Uint8Array.from(control.data, (v) => (v >= threshold ? 1 : 0));
  const nearC = dilate(c, width, height, tolerance);
  const nearP = dilate(p, width, height, tolerance);
  let predictedPixels = 0;
  let controlPixels = 0;
  let truePredicted = 0;
  let recalled = 0;
  let sq = 0;
  for (let i = 0; i < n; i++) {
    if (p[i] === 1) {
      predictedPixels += 1;
      truePredicted += nearC[i] ?? 0;
    }
    if (c[i] === 1) {
      controlPixels += 1;
      recalled += nearP[i] ?? 0;
    }
    const d = ((predicted.data[i] ?? 0) - (control.data[i] ?? 0)) / 255;
    sq += d * d;
  }
  const precision = predictedPixels === 0 ? 1 : truePredicted / predictedPixels;
  const recall = controlPixels === 0 ? 1 : recalled / controlPixels;
  const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
  return { precision, recall, f1, mse: sq / n, predictedPixels, controlPixels };
}

export interface EdgeFidelityOptions extends EdgeF1Options {
  /** (optional) Canny parameters for the output frames; use the ones that made the control. */
  readonly canny?: CannyOptions;
}

/**
 * Edge fidelity of a clip: `Canny(gray(output_t))` against `controls[t]` for every frame, and the
 * mean F1 over frames. Output frames are converted to gray first (the fixture convention).
 */
export async function clipEdgeFidelity(
  outputs: readonly Image[],
  controls: readonly Image[],
  options: EdgeFidelityOptions = {},
): Promise<{ readonly meanF1: number; readonly frames: EdgeF1[] }> {
  if (outputs.length !== controls.length || outputs.length === 0) {
    throw new InvalidArgumentError(
      "controls",
      `${outputs.length} edge maps (one per output frame, at least 1)`,
      `${controls.length}`,
    );
  }
  const cv = await loadCv();
  const frames = outputs.map((o, t) => {
    const control = controls[t];
    if (control === undefined) throw new InvalidArgumentError(`controls[${t}]`, "an edge map", undefined);
    return edgeF1(cannySync(cv, toGraySync(cv, o), options.canny ?? {}), control, options);
  });
  return { meanF1: frames.reduce((s, f) => s + f.f1, 0) / frames.length, frames };
}
