/**
 * Dense optical flow with Gunnar Farneback's algorithm (`cv2.calcOpticalFlowFarneback`).
 *
 * Convention (the opencv fixture's): `flow(prev, next)[y, x] = (dx, dy)` with
 * `prev(y, x) ~ next(y + dy, x + dx)`; the backward flow of a pair is `flow(next, prev)`.
 * OpenCV.js (scalar wasm, OpenCV 4.13) matches cv2 4.6 (x86 SIMD) within ~2e-5 px on the fixtures.
 */
import { InvalidArgumentError } from "../errors.js";
import type { Image } from "../image.js";
import type { LongTaskOptions } from "../progress.js";
import { throwIfAborted } from "../errors.js";
import { floatsToMat, imageToMat, loadCv, matToFloats, withMats, type Cv } from "./opencv.js";
import { toGraySync } from "./gray.js";
import { checkImage, checkInteger, checkNumber, checkSameSize } from "./validate.js";

/** A dense flow field: `data` is `[height, width, 2]` float32, (dx, dy) per pixel. */
export interface FlowField {
  readonly width: number;
  readonly height: number;
  readonly data: Float32Array;
}

/** `cv2.OPTFLOW_USE_INITIAL_FLOW`: start from `initialFlow` instead of zero. */
export const OPTFLOW_USE_INITIAL_FLOW = 4;
/** `cv2.OPTFLOW_FARNEBACK_GAUSSIAN`: Gaussian instead of box window for the flow estimate. */
export const OPTFLOW_FARNEBACK_GAUSSIAN = 256;

/**
 * Farneback parameters, named after the cv2 arguments (camelCase). Defaults are the common
 * `0.5, 3, 15, 3, 5, 1.2, 0` (the opencv fixtures' values).
 */
export interface FarnebackOptions {
  /** (optional, default 0.5) `pyr_scale`: scale between pyramid levels, in (0, 1). */
  readonly pyrScale?: number;
  /** (optional, default 3) `levels`: number of pyramid levels (0 = only the original image). */
  readonly levels?: number;
  /** (optional, default 15) `winsize`: averaging window size. */
  readonly winsize?: number;
  /** (optional, default 3) `iterations` per pyramid level. */
  readonly iterations?: number;
  /** (optional, default 5) `poly_n`: pixel neighbourhood of the polynomial expansion, 5 or 7. */
  readonly polyN?: 5 | 7;
  /** (optional, default 1.2) `poly_sigma`: Gaussian sigma of the polynomial expansion. */
  readonly polySigma?: number;
  /** (optional, default 0) `flags`: OR of {@link OPTFLOW_USE_INITIAL_FLOW}, {@link OPTFLOW_FARNEBACK_GAUSSIAN}. */
  readonly flags?: number;
  /** Required with OPTFLOW_USE_INITIAL_FLOW: the starting estimate (same size as the images). */
  readonly initialFlow?: FlowField;
}

type ResolvedFarneback = Required<Omit<FarnebackOptions, "initialFlow" | "polyN">> & { polyN: number };

/** Fills defaults and validates; throws InvalidArgumentError naming the bad parameter. */
export function resolveFarneback(options: FarnebackOptions = {}): ResolvedFarneback {
  const r = {
    pyrScale: options.pyrScale ?? 0.5,
    levels: options.levels ?? 3,
    winsize: options.winsize ?? 15,
    iterations: options.iterations ?? 3,
    polyN: options.polyN ?? 5,
    polySigma: options.polySigma ?? 1.2,
    flags: options.flags ?? 0,
  };
  checkNumber("pyrScale", r.pyrScale, 0, 1, true);
  checkInteger("levels", r.levels, 0, 64);
  checkInteger("winsize", r.winsize, 1);
  checkInteger("iterations", r.iterations, 1);
  if (r.polyN !== 5 && r.polyN !== 7) throw new InvalidArgumentError("polyN", "5 or 7", r.polyN);
  checkNumber("polySigma", r.polySigma, 0, Number.MAX_VALUE, true);
  if (
    !Number.isInteger(r.flags) ||
    (r.flags & ~(OPTFLOW_USE_INITIAL_FLOW | OPTFLOW_FARNEBACK_GAUSSIAN)) !== 0
  ) {
    throw new InvalidArgumentError(
      "flags",
      "a combination of OPTFLOW_USE_INITIAL_FLOW (4) and OPTFLOW_FARNEBACK_GAUSSIAN (256)",
      r.flags,
    );
  }
  if ((r.flags & OPTFLOW_USE_INITIAL_FLOW) !== 0 && options.initialFlow === undefined) {
    throw new InvalidArgumentError(
      "initialFlow",
      "a flow field when flags include OPTFLOW_USE_INITIAL_FLOW",
      undefined,
    );
  }
  return r;
}

/**
 * Dense flow from `prev` to `next` (gray, or RGB/RGBA converted with `COLOR_RGB2GRAY` first).
 *
 * OpenCV: `cv2.calcOpticalFlowFarneback(prev_gray, next_gray, None, pyr_scale, levels, winsize,
 * iterations, poly_n, poly_sigma, flags)`.
 */
export async function farnebackFlow(
  prev: Image,
  next: Image,
  options: FarnebackOptions = {},
): Promise<FlowField> {
  return farnebackFlowSync(await loadCv(), prev, next, options);
}

/** {@link farnebackFlow} with an already loaded OpenCV module. */
export function farnebackFlowSync(
  cv: Cv,
  prev: Image,
  next: Image,
  options: FarnebackOptions = {},
): FlowField {
  checkImage("prev", prev);
  checkImage("next", next);
  checkSameSize("prev", prev, "next", next);
  const p = resolveFarneback(options);
  const init = options.initialFlow;
  if (init !== undefined) checkFlow("initialFlow", init, prev);
  const a = toGraySync(cv, prev);
  const b = toGraySync(cv, next);
  return withMats(cv, "calcOpticalFlowFarneback", (track) => {
    const flow =
      init !== undefined && (p.flags & OPTFLOW_USE_INITIAL_FLOW) !== 0
        ? floatsToMat(cv, track, init.data, init.width, init.height, 2)
        : track(new cv.Mat());
    const pa = imageToMat(cv, track, a);
    const pb = imageToMat(cv, track, b);
    cv.calcOpticalFlowFarneback(
      pa,
      pb,
      flow,
      p.pyrScale,
      p.levels,
      p.winsize,
      p.iterations,
      p.polyN,
      p.polySigma,
      p.flags,
    );
    return { width: prev.width, height: prev.height, data: matToFloats(flow) };
  });
}

/** Forward and backward flow of every consecutive pair: `forward[i] = flow(frames[i], frames[i+1])`. */
export interface PairFlows {
  readonly forward: FlowField[];
  readonly backward: FlowField[];
}

/**
 * Flows of all consecutive pairs of a clip (2·(n-1) Farneback calls, each frame converted to gray
 * once). Reports progress per pair and honours `signal` between pairs.
 */
export async function pairFlows(
  frames: readonly Image[],
  options: FarnebackOptions & LongTaskOptions & { readonly backward?: boolean } = {},
): Promise<PairFlows> {
  const cv = await loadCv();
  const gray = frames.map((f) => toGraySync(cv, f));
  const forward: FlowField[] = [];
  const backward: FlowField[] = [];
  const total = Math.max(0, gray.length - 1);
  options.onProgress?.({ status: "start", task: "optical flow", total });
  for (let i = 0; i + 1 < gray.length; i++) {
    throwIfAborted(options.signal, "optical flow");
    const a = gray[i];
    const b = gray[i + 1];
    if (a === undefined || b === undefined) break;
    forward.push(farnebackFlowSync(cv, a, b, options));
    if (options.backward ?? true) backward.push(farnebackFlowSync(cv, b, a, options));
    options.onProgress?.({ status: "progress", task: "optical flow", done: i + 1, total });
  }
  options.onProgress?.({ status: "done", task: "optical flow" });
  return { forward, backward };
}

/** Checks a flow field's size and data length (against `like` when given). */
export function checkFlow(
  name: string,
  flow: FlowField,
  like?: { readonly width: number; readonly height: number },
): void {
  checkInteger(`${name}.width`, flow.width, 1);
  checkInteger(`${name}.height`, flow.height, 1);
  if (flow.data.length !== flow.width * flow.height * 2) {
    throw new InvalidArgumentError(
      `${name}.data`,
      `${flow.width * flow.height * 2} floats ([${flow.height}, ${flow.width}, 2])`,
      `${flow.data.length} floats`,
    );
  }
  if (like !== undefined) checkSameSize("image", like, name, flow);
}
