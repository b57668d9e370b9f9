/**
 * Segmentation maps as Uni-ControlNet's `annotator/uniformer` draws them (UperNet + UniFormer-S on
 * ADE20k, `upernet_global_small.pth`), through an ONNX export of the segmentor: the network is not
 * built natively here (a UniFormer transformer backbone plus an UperNet head; see the report).
 *
 * Conventions of the release (mmseg 0.x test pipeline, "whole" mode): the RGB frame is given to a
 * pipeline that believes it is BGR, so `to_rgb` flips it and the network sees BGR (kept by default:
 * `channelOrder: "bgr"`); `imrescale` to fit (2048, 512) keeping the aspect ratio (bilinear),
 * normalised with mean (123.675, 116.28, 103.53) and std (58.395, 57.12, 57.375); the logits are
 * resized to the image size (bilinear, align_corners=False), arg-maxed, and each label painted with
 * the ADE20k palette colour (`show_result(..., opacity=1)` then `bgr2rgb`: the palette's RGB).
 * The ONNX model takes `[1, 3, h, w]` float32 and returns logits `[1, C, h', w']` (any h', w').
 */
import * as ort from "onnxruntime-node";
import { BackendError, FileNotFoundError, InvalidArgumentError } from "../../errors.js";
import { access } from "node:fs/promises";
import { image, type Image } from "../../image.js";
import { prepareOrtEnvironment } from "../../runtime/ort-env.js";
import { loadCv } from "../opencv.js";
import { resizeImageSync } from "../resize.js";
import { bilinearResizeTorch, toRgb } from "./common.js";

/** ADE20k palette (150 classes, RGB), mmseg `ade_palette()`. */
export const ADE20K_PALETTE: readonly number[] = [
  120, 120, 120, 180, 120, 120, 6, 230, 230, 80, 50, 50, 4, 200, 3, 120, 120, 80, 140, 140, 140, 204, 5, 255,
  230, 230, 230, 4, 250, 7, 224, 5, 255, 235, 255, 7, 150, 5, 61, 120, 120, 70, 8, 255, 51, 255, 6, 82, 143,
  255, 140, 204, 255, 4, 255, 51, 7, 204, 70, 3, 0, 102, 200, 61, 230, 250, 255, 6, 51, 11, 102, 255, 255, 7,
  71, 255, 9, 224, 9, 7, 230, 220, 220, 220, 255, 9, 92, 112, 9, 255, 8, 255, 214, 7, 255, 224, 255, 184, 6,
  10, 255, 71, 255, 41, 10, 7, 255, 255, 224, 255, 8, 102, 8, 255, 255, 61, 6, 255, 194, 7, 255, 122, 8, 0,
  255, 20, 255, 8, 41, 255, 5, 153, 6, 51, 255, 235, 12, 255, 160, 150, 20, 0, 163, 255, 140, 140, 140, 250,
  10, 15, 20, 255, 0, 31, 255, 0, 255, 31, 0, 255, 224, 0, 153, 255, 0, 0, 0, 255, 255, 71, 0, 0, 235, 255, 0,
  173, 255, 31, 0, 255, 11, 200, 200, 255, 82, 0, 0, 255, 245, 0, 61, 255, 0, 255, 112, 0, 255, 133, 255, 0,
  0, 255, 163, 0, 255, 102, 0, 194, 255, 0, 0, 143, 255, 51, 255, 0, 0, 82, 255, 0, 255, 41, 0, 255, 173, 10,
  0, 255, 173, 255, 0, 0, 255, 153, 255, 92, 0, 255, 0, 255, 255, 0, 245, 255, 0, 102, 255, 173, 0, 255, 0,
  20, 255, 184, 184, 0, 31, 255, 0, 255, 61, 0, 71, 255, 255, 0, 204, 0, 255, 194, 0, 255, 82, 0, 10, 255, 0,
  112, 255, 51, 0, 255, 0, 194, 255, 0, 122, 255, 0, 255, 163, 255, 153, 0, 0, 255, 10, 255, 112, 0, 143, 255,
  0, 82, 0, 255, 163, 255, 0, 255, 235, 0, 8, 184, 170, 133, 0, 255, 0, 255, 92, 184, 0, 255, 255, 0, 31, 0,
  184, 255, 0, 214, 255, 255, 0, 112, 92, 255, 0, 0, 224, 255, 112, 224, 255, 70, 184, 160, 163, 0, 255, 153,
  0, 255, 71, 255, 0, 255, 0, 163, 255, 204, 0, 255, 0, 143, 0, 255, 235, 133, 255, 0, 255, 0, 235, 245, 0,
  255, 255, 0, 122, 255, 245, 0, 10, 190, 212, 214, 255, 0, 0, 204, 255, 20, 0, 255, 255, 255, 0, 0, 153, 255,
  0, 41, 255, 0, 255, 204, 41, 0, 255, 41, 255, 0, 173, 0, 255, 0, 245, 255, 71, 0, 255, 122, 0, 255, 0, 255,
  184, 0, 92, 255, 184, 255, 0, 0, 133, 255, 255, 214, 0, 25, 194, 194, 102, 255, 0, 92, 0, 255,
];

export const SEG_MEAN: readonly number[] = [123.675, 116.28, 103.53];
export const SEG_STD: readonly number[] = [58.395, 57.12, 57.375];

/** Paints a label map with the ADE20k palette (labels outside the palette stay black). */
export function paintLabels(width: number, height: number, labels: ArrayLike<number>): Image {
  const out = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    const l = labels[i] ?? -1;
    if (l < 0 || l >= ADE20K_PALETTE.length / 3) continue;
    for (let c = 0; c < 3; c++) out[3 * i + c] = ADE20K_PALETTE[3 * l + c] ?? 0;
  }
  return image(width, height, 3, out);
}

/**
 * Per-pixel arg-max of logits `[1, C, h, w]` after resizing each class map to `width` x `height`
 * (bilinear, align_corners=False); ties go to the lower class, as `argmax` does.
 */
export function labelsFromLogits(
  logits: Float32Array,
  shape: readonly number[],
  width: number,
  height: number,
): Int32Array {
  const [n, c = 0, h = 0, w = 0] = shape;
  if (shape.length !== 4 || n !== 1 || c < 1) {
    throw new InvalidArgumentError("segmentation output", "logits [1, C, h, w]", `[${shape.join(", ")}]`);
  }
  const best = new Float32Array(width * height).fill(-Infinity);
  const labels = new Int32Array(width * height);
  for (let k = 0; k < c; k++) {
    const up = bilinearResizeTorch(logits.subarray(k * h * w, (k + 1) * h * w), w, h, width, height);
    for (let i = 0; i < up.length; i++) {
      const v = up[i] ?? -Infinity;
      if (v > (best[i] ?? -Infinity)) {
        best[i] = v;
        labels[i] = k;
      }
    }
  }
  return labels;
}

/** mmcv `rescale_size(keep_ratio)` for img_scale (2048, 512): fit the long side to 2048 and the short to 512. */
export function segInputSize(
  width: number,
  height: number,
  scale: readonly [number, number] = [2048, 512],
): {
  width: number;
  height: number;
} {
  const long = Math.max(...scale);
  const short = Math.min(...scale);
  const factor = Math.min(long / Math.max(width, height), short / Math.min(width, height));
  return { width: Math.trunc(width * factor + 0.5), height: Math.trunc(height * factor + 0.5) };
}

export interface SegmenterOptions {
  /** (default "bgr", the release's effective order) channel order fed to the network. */
  readonly channelOrder?: "rgb" | "bgr";
  /** (optional) onnxruntime session options. */
  readonly sessionOptions?: ort.InferenceSession.SessionOptions;
  /** (optional) the option naming the file, for messages (default "weights.seg"). */
  readonly option?: string;
}

export class Segmenter {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly path: string,
    readonly options: SegmenterOptions,
  ) {}

  /** Opens an ONNX export of the segmentor (`[1, 3, h, w]` -> logits `[1, C, h', w']`). */
  static async create(path: string, options: SegmenterOptions = {}): Promise<Segmenter> {
    try {
      await access(path);
    } catch (cause) {
      throw new FileNotFoundError(path, "segmentation ONNX model", {
        cause,
        hint: `pass an ONNX export of the ADE20k segmentor with ${options.option ?? "weights.seg"}`,
      });
    }
    prepareOrtEnvironment();
    try {
      return new Segmenter(
        await ort.InferenceSession.create(path, options.sessionOptions ?? {}),
        path,
        options,
      );
    } catch (cause) {
      throw new BackendError(
        [{ provider: "onnxruntime-node", error: cause instanceof Error ? cause.message : String(cause) }],
        { cause, hint: `${path} could not be loaded as an ONNX model` },
      );
    }
  }

  /** ADE20k labels at the image size. */
  async labels(img: Image): Promise<Int32Array> {
    const rgb = toRgb(img);
    const size = segInputSize(rgb.width, rgb.height);
    const resized = resizeImageSync(await loadCv(), rgb, { ...size, interpolation: "linear" });
    const plane = size.width * size.height;
    const input = new Float32Array(3 * plane);
    const bgr = (this.options.channelOrder ?? "bgr") === "bgr";
    for (let c = 0; c < 3; c++) {
      const src = bgr ? 2 - c : c;
      const mean = SEG_MEAN[c] ?? 0;
      const std = SEG_STD[c] ?? 1;
      for (let i = 0; i < plane; i++) input[c * plane + i] = ((resized.data[3 * i + src] ?? 0) - mean) / std;
    }
    const inputName = this.session.inputNames[0] ?? "input";
    const outputName = this.session.outputNames[0] ?? "output";
    let out: ort.Tensor | undefined;
    try {
      const results = await this.session.run({
        [inputName]: new ort.Tensor("float32", input, [1, 3, size.height, size.width]),
      });
      out = results[outputName];
    } catch (cause) {
      throw new BackendError(
        [{ provider: "onnxruntime-node", error: cause instanceof Error ? cause.message : String(cause) }],
        { cause, hint: `running ${this.path} on a ${size.width}x${size.height} input failed` },
      );
    }
    if (out?.type !== "float32") {
      throw new InvalidArgumentError("segmentation output", "float32 logits [1, C, h, w]", out?.type);
    }
    return labelsFromLogits(out.data as Float32Array, out.dims, rgb.width, rgb.height);
  }

  /** The segmentation control map: ADE20k palette colours, 3 channels. */
  async detect(img: Image): Promise<Image> {
    return paintLabels(img.width, img.height, await this.labels(img));
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
