/**
 * The work behind `steadyframe controls`: one streaming pass over the video that resizes each frame
 * like the opencv fixtures (OpenCV-compatible BT.601 decode, `cv2.resize(..., INTER_AREA)`) and
 * writes, as PNG sequences under `dir`, the source frames and the requested control maps: Canny
 * edges, in-between edge maps, Farneback flow (colour-coded) with consistency masks, and depth.
 * Only the previous frame is kept, except raw depth maps (normalised over the clip at the end).
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { VideoError, throwIfAborted } from "../../errors.js";
import type { Image } from "../../image.js";
import type { LongTaskOptions } from "../../progress.js";
import { cannySync } from "../../control/canny.js";
import type { DepthEstimator, DepthNormalization } from "../../control/depth.js";
import { normalizeDepthMaps } from "../../control/depth.js";
import type { FloatMap } from "../../control/dense-model.js";
import { farnebackFlowSync, type FlowField } from "../../control/flow.js";
import { flowWarpEdgeMapsSync } from "../../control/flow-warp-edges.js";
import { toGraySync } from "../../control/gray.js";
import { inBetweenTimes, interpolateEdgeMaps } from "../../control/interpolate.js";
import { consistencyMaskSync } from "../../control/occlusion.js";
import { loadCv } from "../../control/opencv.js";
import { writePngFile } from "../../control/png.js";
import { resizeImageSync } from "../../control/resize.js";
import { warpImageSync } from "../../control/warp.js";
import { meanLuminance } from "../../metrics/flicker.js";
import { pairWarpError } from "../../metrics/warp-error.js";
import { readFrames } from "../../video/read.js";
import { flowToColor, flowMagnitudes } from "./flow-color.js";

export interface ControlsSettings {
  readonly video: string;
  readonly width: number;
  readonly height: number;
  readonly maxFrames?: number;
  readonly canny?: { readonly threshold1: number; readonly threshold2: number };
  readonly flow: boolean;
  /** In-between edge maps per pair (0 = none). */
  readonly interpolate: number;
  readonly interpolateMode: "blend" | "flow";
  readonly depth?: { readonly estimator: DepthEstimator; readonly normalization: DepthNormalization };
}

/** Per-frame / per-pair numbers gathered on the way (the controls metrics.json). */
export interface ControlsStats {
  frames: number;
  meanLuminance: number[];
  edgePixelFraction: number[];
  /** Fraction of pixels whose edge value changes between consecutive Canny maps. */
  edgeChangeFraction: number[];
  flowMeanMagnitude: number[];
  flowMaxMagnitude: number[];
  consistentFraction: number[];
  /** Warping error of the source itself (mean |frame_i - warp(frame_i+1)| / 255 over consistent pixels). */
  sourceWarpError: number[];
  /** Sub-folders written, each a PNG sequence, with its frame rate factor (1 = the video's rate). */
  sequences: { name: string; rateFactor: number }[];
}

const frameName = (i: number): string => `frame_${String(i).padStart(6, "0")}.png`;

function fractionNonZero(img: Image): number {
  let n = 0;
  for (const v of img.data) if (v !== 0) n++;
  return n / img.data.length;
}

function fractionChanged(a: Image, b: Image): number {
  let n = 0;
  for (let i = 0; i < a.data.length; i++) if (a.data[i] !== b.data[i]) n++;
  return n / a.data.length;
}

/** Runs the pass; writes into `dir` (which must exist) and returns the stats. */
export async function extractControls(
  settings: ControlsSettings,
  dir: string,
  options: LongTaskOptions & { readonly totalFrames?: number } = {},
): Promise<ControlsStats> {
  const { signal, onProgress } = options;
  const cv = await loadCv();
  const wantFlow = settings.flow || (settings.interpolate > 0 && settings.interpolateMode === "flow");
  const stats: ControlsStats = {
    frames: 0,
    meanLuminance: [],
    edgePixelFraction: [],
    edgeChangeFraction: [],
    flowMeanMagnitude: [],
    flowMaxMagnitude: [],
    consistentFraction: [],
    sourceWarpError: [],
    sequences: [{ name: "source", rateFactor: 1 }],
  };
  if (settings.canny) stats.sequences.push({ name: "canny", rateFactor: 1 });
  if (settings.canny && settings.interpolate > 0) {
    stats.sequences.push({ name: "canny-interp", rateFactor: settings.interpolate + 1 });
  }
  if (settings.flow)
    stats.sequences.push({ name: "flow", rateFactor: 1 }, { name: "occlusion", rateFactor: 1 });
  if (settings.depth) stats.sequences.push({ name: "depth", rateFactor: 1 });
  for (const s of stats.sequences) await mkdir(join(dir, s.name));

  const times = inBetweenTimes(settings.interpolate);
  const flowScale = Math.max(settings.width, settings.height) / 40; // colour saturates at this many px (6.4 at 256)
  const depthMaps: FloatMap[] = [];
  let prev: { src: Image; gray: Image; edges: Image | undefined } | undefined;
  let interpIndex = 0;
  const task = "controls";
  const total = options.totalFrames;
  onProgress?.({ status: "start", task, ...(total ? { total } : {}) });
  const decode = readFrames(settings.video, {
    colorMatrix: "opencv",
    ...(settings.maxFrames === undefined ? {} : { maxFrames: settings.maxFrames }),
    ...(signal === undefined ? {} : { signal }),
  });
  for await (const frame of decode) {
    throwIfAborted(signal, task);
    const i = stats.frames;
    const src = resizeImageSync(cv, frame, {
      width: settings.width,
      height: settings.height,
      interpolation: "area",
    });
    const gray = toGraySync(cv, src);
    await writePngFile(join(dir, "source", frameName(i)), src);
    stats.meanLuminance.push(meanLuminance(src));

    let edges: Image | undefined;
    if (settings.canny) {
      edges = cannySync(cv, gray, settings.canny);
      await writePngFile(join(dir, "canny", frameName(i)), edges);
      stats.edgePixelFraction.push(fractionNonZero(edges));
      if (prev?.edges) stats.edgeChangeFraction.push(fractionChanged(prev.edges, edges));
    }

    let flows: { fw: FlowField; bw: FlowField } | undefined;
    if (prev && wantFlow) {
      flows = { fw: farnebackFlowSync(cv, prev.gray, gray), bw: farnebackFlowSync(cv, gray, prev.gray) };
    }
    if (prev && flows && settings.flow) {
      const mask = consistencyMaskSync(cv, flows.fw, flows.bw);
      await writePngFile(join(dir, "flow", frameName(i - 1)), flowToColor(flows.fw, flowScale));
      await writePngFile(join(dir, "occlusion", frameName(i - 1)), mask);
      const { mean, max } = flowMagnitudes(flows.fw);
      stats.flowMeanMagnitude.push(mean);
      stats.flowMaxMagnitude.push(max);
      stats.consistentFraction.push(fractionNonZero(mask));
      stats.sourceWarpError.push(pairWarpError(prev.src, warpImageSync(cv, src, flows.fw), mask).error);
    }

    if (edges && settings.interpolate > 0) {
      if (prev?.edges) {
        const between =
          settings.interpolateMode === "flow" && flows
            ? flowWarpEdgeMapsSync(cv, prev.edges, edges, flows.fw, flows.bw, times)
            : interpolateEdgeMaps(prev.edges, edges, times);
        for (const map of between)
          await writePngFile(join(dir, "canny-interp", frameName(interpIndex++)), map);
      }
      await writePngFile(join(dir, "canny-interp", frameName(interpIndex++)), edges);
    }

    if (settings.depth) depthMaps.push(await settings.depth.estimator.estimate(src));
    prev = { src, gray, edges };
    stats.frames++;
    onProgress?.({ status: "progress", task, done: stats.frames, ...(total ? { total } : {}) });
  }
  if (settings.depth) {
    const images = normalizeDepthMaps(depthMaps, settings.depth.normalization);
    for (const [i, img] of images.entries()) await writePngFile(join(dir, "depth", frameName(i)), img);
  }
  // Control maps for video generation need motion: a still (one frame) is refused, not half-processed.
  if (stats.frames < 2) {
    throw new VideoError(
      settings.video,
      `has only ${stats.frames} frame(s); control maps need a video of at least 2 frames`,
      {
        hint: "check --frames and the clip; for a single image use an image tool",
      },
    );
  }
  onProgress?.({ status: "done", task });
  return stats;
}
