/**
 * An annotator turns an RGB frame into a control map (Canny edges, depth, soft edges) at the same
 * size. The controls methods take one per ControlNet.
 */
import type { Image } from "../../image.js";
import { cannySync } from "../../control/canny.js";
import { normalizeDepthMaps, type DepthEstimator } from "../../control/depth.js";
import { loadCv } from "../../control/opencv.js";
import type { SoftEdgeDetector } from "../../control/soft-edge.js";

export interface Annotator {
  /** "canny", "depth", "softedge", ...: recorded in run.json. */
  readonly kind: string;
  readonly settings?: Readonly<Record<string, unknown>>;
  annotate(frame: Image): Promise<Image>;
}

/** Canny edges of the RGB frame (cv2.Canny on RGB, as the ControlNet canny preprocessors do). */
export function cannyAnnotator(threshold1 = 100, threshold2 = 200): Annotator {
  return {
    kind: "canny",
    settings: { threshold1, threshold2 },
    annotate: async (frame) => cannySync(await loadCv(), frame, { threshold1, threshold2 }),
  };
}

/** Depth maps from an ONNX depth model, each frame normalised on its own to 0..255 (gray). */
export function depthAnnotator(estimator: DepthEstimator, model: string): Annotator {
  return {
    kind: "depth",
    settings: { model },
    annotate: async (frame) => normalizeDepthMaps([await estimator.estimate(frame)], "frame")[0]!,
  };
}

/** Soft edges (HED / PiDiNet) from an ONNX model, 0..255 (gray). */
export function softEdgeAnnotator(detector: SoftEdgeDetector, model: string): Annotator {
  return { kind: "softedge", settings: { model }, annotate: (frame) => detector.detectImage(frame) };
}
