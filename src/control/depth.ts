/**
 * Depth control maps from a monocular depth ONNX model (MiDaS, DPT, Depth-Anything).
 *
 * These networks output relative inverse depth (disparity: larger = nearer), up to an unknown
 * scale and shift, at the network resolution. {@link DepthEstimator.estimate} returns that raw map
 * resized back to the image size; {@link normalizeDepthMaps} turns maps into 0..255 control images
 * with `floor((d - min) / (max - min) * 255)` (the ControlNet annotators' `astype(np.uint8)`),
 * where min/max are per frame (as the annotators do; flickers, because each frame is stretched
 * on its own) or over the whole clip (stable brightness across frames).
 *
 * Presets (input conventions of the reference implementations' transforms):
 * - "depth-anything": 518, lower-bound, multiple of 14, ImageNet mean/std, bicubic;
 * - "dpt" (MiDaS v3 DPT-Large/Hybrid, controlnet_aux Midas): 384, minimal, multiple of 32, mean = std = 0.5;
 * - "midas" (MiDaS v2.1): 384, upper-bound, multiple of 32, ImageNet mean/std.
 * Any field can be overridden; a model whose graph fixes the input size is fed exactly that size.
 */
import { InvalidArgumentError } from "../errors.js";
import { image, type Image } from "../image.js";
import type { LongTaskOptions } from "../progress.js";
import { throwIfAborted } from "../errors.js";
import { DenseModel, resizeMap, type DenseModelOptions, type FloatMap } from "./dense-model.js";
import {
  HALF,
  IMAGENET_MEAN,
  IMAGENET_STD,
  type ModelInputOptions,
  pickPreset,
  withInputOverrides,
} from "./model-input.js";
import type { Interpolation } from "./resize.js";
import { checkImage } from "./validate.js";

export type DepthPreset = "depth-anything" | "dpt" | "midas";

export const DEPTH_PRESETS: Readonly<Record<DepthPreset, ModelInputOptions>> = {
  "depth-anything": {
    size: 518,
    resizeMode: "lower-bound",
    multipleOf: 14,
    scale: 1,
    mean: IMAGENET_MEAN,
    std: IMAGENET_STD,
    interpolation: "cubic",
  },
  dpt: {
    size: 384,
    resizeMode: "minimal",
    multipleOf: 32,
    scale: 1,
    mean: HALF,
    std: HALF,
    interpolation: "cubic",
  },
  midas: {
    size: 384,
    resizeMode: "upper-bound",
    multipleOf: 32,
    scale: 1,
    mean: IMAGENET_MEAN,
    std: IMAGENET_STD,
    interpolation: "cubic",
  },
};

export interface DepthEstimatorOptions extends DenseModelOptions, Partial<ModelInputOptions> {
  /** (optional, default "depth-anything") base conventions; the other fields override it. */
  readonly preset?: DepthPreset;
  /** (optional, default "linear") interpolation when resizing the output back to the image size. */
  readonly outputInterpolation?: Interpolation;
}

/** How depth maps are stretched to 0..255: each frame on its own, or one range for the whole clip. */
export type DepthNormalization = "frame" | "clip";

export class DepthEstimator {
  private constructor(
    private readonly model: DenseModel,
    readonly input: ModelInputOptions,
    readonly outputInterpolation: Interpolation,
  ) {}

  /** Loads the ONNX model; the first output (or `outputNames[0]`) is taken as the depth map. */
  static async create(modelPath: string, options: DepthEstimatorOptions = {}): Promise<DepthEstimator> {
    const input = withInputOverrides(pickPreset(DEPTH_PRESETS, options.preset ?? "depth-anything"), options);
    const model = await DenseModel.create(modelPath, options);
    return new DepthEstimator(model, input, options.outputInterpolation ?? "linear");
  }

  /** Raw model output (relative inverse depth) for one image, resized to the image size. */
  async estimate(img: Image): Promise<FloatMap> {
    checkImage("image", img);
    const [map] = await this.model.predict(img, this.input);
    if (map === undefined) throw new InvalidArgumentError("outputNames", "at least one output", []);
    return resizeMap(map, img.width, img.height, this.outputInterpolation);
  }

  /** Depth control images (0..255) for a clip, normalised per frame or over the clip. */
  async estimateClip(
    frames: readonly Image[],
    options: { readonly normalization?: DepthNormalization } & LongTaskOptions = {},
  ): Promise<Image[]> {
    const maps: FloatMap[] = [];
    options.onProgress?.({ status: "start", task: "depth", total: frames.length });
    for (const [i, frame] of frames.entries()) {
      throwIfAborted(options.signal, "depth estimation");
      maps.push(await this.estimate(frame));
      options.onProgress?.({ status: "progress", task: "depth", done: i + 1, total: frames.length });
    }
    options.onProgress?.({ status: "done", task: "depth" });
    return normalizeDepthMaps(maps, options.normalization ?? "clip");
  }

  async release(): Promise<void> {
    await this.model.release();
  }
}

/**
 * Maps to 0..255 images: `floor((d - lo) / (hi - lo) * 255)` clipped to [0, 255], with lo/hi the
 * min/max of each map ("frame") or of all maps ("clip"). A constant range gives all zeros.
 */
export function normalizeDepthMaps(maps: readonly FloatMap[], normalization: DepthNormalization): Image[] {
  if (normalization !== "frame" && normalization !== "clip") {
    throw new InvalidArgumentError("normalization", '"frame" or "clip"', normalization);
  }
  const range = (ms: readonly FloatMap[]): [number, number] => {
    let lo = Infinity;
    let hi = -Infinity;
    for (const m of ms) {
      for (const v of m.data) {
        if (!Number.isFinite(v)) continue;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
    return [lo, hi];
  };
  const clip = normalization === "clip" ? range(maps) : undefined;
  return maps.map((m) => {
    const [lo, hi] = clip ?? range([m]);
    const out = new Uint8Array(m.data.length);
    if (hi > lo) {
      for (let i = 0; i < out.length; i++) {
        const v = Math.floor((((m.data[i] ?? lo) - lo) / (hi - lo)) * 255);
        out[i] = Number.isNaN(v) ? 0 : Math.min(255, Math.max(0, v));
      }
    }
    return image(m.width, m.height, 1, out);
  });
}
