/**
 * Soft edge control maps (HED, PiDiNet) from an ONNX model, values in 0..1 (and 0..255 images).
 *
 * Conventions of the ControlNet annotators (controlnet_aux):
 * - "hed" (ControlNetHED_Apache2): input RGB in 0..255 (no mean/std), the network returns five
 *   side outputs of logits; each is resized to the image size, they are averaged and passed
 *   through a sigmoid: `edge = sigmoid(mean_k(side_k))`.
 * - "pidinet": input RGB in 0..1, the last output is already a probability: `edge = out[-1]`.
 * Both run at the image resolution (rounded to a multiple of 8 here, so strided models work). The
 * 0..255 image is `floor(clip(edge * 255, 0, 255))` (`astype(np.uint8)`).
 */
import { image, type Image } from "../image.js";
import { DenseModel, resizeMap, type DenseModelOptions, type FloatMap } from "./dense-model.js";
import { type ModelInputOptions, pickPreset, withInputOverrides } from "./model-input.js";
import type { Interpolation } from "./resize.js";
import { checkImage } from "./validate.js";

export type SoftEdgePreset = "hed" | "pidinet";

export interface SoftEdgeConventions {
  /** Which outputs make the edge map: all of them averaged, or the last one. */
  readonly combine: "mean" | "last";
  /** Apply `1 / (1 + exp(-x))` after combining (the outputs are logits). */
  readonly sigmoid: boolean;
}

export const SOFT_EDGE_PRESETS: Readonly<Record<SoftEdgePreset, ModelInputOptions & SoftEdgeConventions>> = {
  hed: {
    size: 512,
    resizeMode: "native",
    multipleOf: 8,
    scale: 255,
    mean: [0, 0, 0],
    std: [1, 1, 1],
    interpolation: "area",
    combine: "mean",
    sigmoid: true,
  },
  pidinet: {
    size: 512,
    resizeMode: "native",
    multipleOf: 8,
    scale: 1,
    mean: [0, 0, 0],
    std: [1, 1, 1],
    interpolation: "area",
    combine: "last",
    sigmoid: false,
  },
};

export interface SoftEdgeOptions
  extends DenseModelOptions, Partial<ModelInputOptions>, Partial<SoftEdgeConventions> {
  /** (optional, default "hed") base conventions; the other fields override it. */
  readonly preset?: SoftEdgePreset;
  /** (optional, default "linear") interpolation when resizing outputs to the image size. */
  readonly outputInterpolation?: Interpolation;
}

export class SoftEdgeDetector {
  private constructor(
    private readonly model: DenseModel,
    readonly conventions: ModelInputOptions & SoftEdgeConventions,
    readonly outputInterpolation: Interpolation,
  ) {}

  static async create(modelPath: string, options: SoftEdgeOptions = {}): Promise<SoftEdgeDetector> {
    const base = pickPreset(SOFT_EDGE_PRESETS, options.preset ?? "hed");
    const conventions = {
      ...withInputOverrides(base, options),
      combine: options.combine ?? base.combine,
      sigmoid: options.sigmoid ?? base.sigmoid,
    };
    const model = await DenseModel.create(modelPath, options);
    return new SoftEdgeDetector(model, conventions, options.outputInterpolation ?? "linear");
  }

  /** Edge probability map in [0, 1] at the image size. */
  async detect(img: Image): Promise<FloatMap> {
    checkImage("image", img);
    const outputs = await this.model.predict(img, this.conventions);
    const chosen = this.conventions.combine === "last" ? outputs.slice(-1) : outputs;
    const resized: FloatMap[] = [];
    for (const o of chosen) resized.push(await resizeMap(o, img.width, img.height, this.outputInterpolation));
    const data = new Float32Array(img.width * img.height);
    for (const r of resized)
      for (let i = 0; i < data.length; i++) data[i] = (data[i] ?? 0) + (r.data[i] ?? 0) / resized.length;
    if (this.conventions.sigmoid)
      for (let i = 0; i < data.length; i++) data[i] = 1 / (1 + Math.exp(-(data[i] ?? 0)));
    for (let i = 0; i < data.length; i++) data[i] = Math.min(1, Math.max(0, data[i] ?? 0));
    return { width: img.width, height: img.height, data };
  }

  /** {@link detect} as a 0..255 one-channel image: `floor(edge * 255)`. */
  async detectImage(img: Image): Promise<Image> {
    const map = await this.detect(img);
    return image(
      map.width,
      map.height,
      1,
      Uint8Array.from(map.data, (v) => Math.floor(v * 255)),
    );
  }

  async release(): Promise<void> {
    await this.model.release();
  }
}
