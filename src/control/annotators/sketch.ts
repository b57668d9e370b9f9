/**
 * Uni-ControlNet's "sketch" condition (`annotator/sketch`): HED soft edges, inverted (`255 - hed`,
 * dark strokes on white), then the sketch-simplification GAN of Simo-Serra et al. (`model_gan.pth`,
 * keys `layer{1..7}.{i}`: a strided conv encoder, ConvTranspose2d x2 upsamplers, a sigmoid).
 * Pre/post-processing as the release: gray / 255, `(x - 0.9664114577640158) / 0.0858381272736797`,
 * replication padding on the right/bottom to multiples of 8, and the padded output `cv2.resize`d
 * (INTER_LINEAR) back to the image size (stretching, not cropping), `* 255` truncated to uint8.
 * No threshold or NMS is applied (the repository's `nms` helper is unused by the sketch detector).
 */
import type { Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import { image, type Image } from "../../image.js";
import { Conv2d } from "../../nn/conv.js";
import type { WeightStore } from "../../nn/weight-store.js";
import type { WeightScope } from "../../nn/weights.js";
import { tensor } from "../../tensor.js";
import { loadCv } from "../opencv.js";
import { resizeFloatsSync } from "../resize.js";
import { checkImage } from "../validate.js";
import type { HedDetector } from "./hed.js";
import { AnnotatorNet, ConvTranspose2d, openAnnotatorWeights, type AnnotatorNetOptions } from "./net.js";

export const SKETCH_MEAN = 0.9664114577640158;
export const SKETCH_STD = 0.0858381272736797;

/** [kind, in, out, kernel, stride, padding] per Sequential index; ReLU after each but the last (sigmoid). */
type Layer = readonly ["conv" | "up", number, number, number, number, number];
const LAYERS: readonly (readonly Layer[])[] = [
  [
    ["conv", 1, 48, 5, 2, 2],
    ["conv", 48, 128, 3, 1, 1],
    ["conv", 128, 128, 3, 1, 1],
    ["conv", 128, 128, 3, 2, 1],
  ],
  [
    ["conv", 128, 256, 3, 1, 1],
    ["conv", 256, 256, 3, 1, 1],
    ["conv", 256, 256, 3, 2, 1],
  ],
  [
    ["conv", 256, 512, 3, 1, 1],
    ["conv", 512, 1024, 3, 1, 1],
    ["conv", 1024, 1024, 3, 1, 1],
    ["conv", 1024, 1024, 3, 1, 1],
    ["conv", 1024, 1024, 3, 1, 1],
  ],
  [
    ["conv", 1024, 512, 3, 1, 1],
    ["conv", 512, 256, 3, 1, 1],
    ["up", 256, 256, 4, 2, 1],
    ["conv", 256, 256, 3, 1, 1],
  ],
  [
    ["conv", 256, 128, 3, 1, 1],
    ["up", 128, 128, 4, 2, 1],
    ["conv", 128, 128, 3, 1, 1],
  ],
  [
    ["conv", 128, 48, 3, 1, 1],
    ["up", 48, 48, 4, 2, 1],
  ],
  [
    ["conv", 48, 24, 3, 1, 1],
    ["conv", 24, 1, 3, 1, 1],
  ],
];

/** The sketch-simplification net: `[1, 1, H, W]` (H, W multiples of 8) -> `[1, 1, H, W]` in (0, 1). */
export function buildSketchNet(w: WeightScope, x: Value): Value[] {
  const g = w.graph;
  let h = x;
  LAYERS.forEach((layers, l) => {
    layers.forEach(([kind, inC, outC, k, s, p], i) => {
      const scope = w.at(`layer${l + 1}`).at(2 * i);
      h =
        kind === "conv"
          ? new Conv2d(scope, {
              inChannels: inC,
              outChannels: outC,
              kernelSize: k,
              stride: s,
              padding: p,
            }).forward(h)
          : new ConvTranspose2d(scope, {
              inChannels: inC,
              outChannels: outC,
              kernelSize: k,
              stride: s,
              padding: p,
            }).forward(h);
      const last = l === LAYERS.length - 1 && i === layers.length - 1;
      h = last ? op.Sigmoid(g, h) : op.Relu(g, h);
    });
  });
  return [h];
}

export interface SketchOptions extends Omit<AnnotatorNetOptions, "inputChannels"> {
  /** (optional) the option naming the file, for messages (default "weights.sketch"). */
  readonly option?: string;
}

export class SketchSimplifier {
  private constructor(private readonly net: AnnotatorNet) {}

  /** Loads `model_gan.pth` (or a .safetensors copy). */
  static async create(path: string, options: SketchOptions = {}): Promise<SketchSimplifier> {
    const store = await openAnnotatorWeights(path, {
      what: "sketch simplification weights (model_gan.pth)",
      option: options.option ?? "weights.sketch",
    });
    return SketchSimplifier.fromStore(store, options);
  }

  static async fromStore(store: WeightStore, options: SketchOptions = {}): Promise<SketchSimplifier> {
    return new SketchSimplifier(
      await AnnotatorNet.create(store, buildSketchNet, {
        expected: "sketch simplification weights (model_gan.pth)",
        ...options,
        inputChannels: 1,
      }),
    );
  }

  /** Simplifies a one-channel drawing (dark strokes on white) as the release does. */
  async simplify(drawing: Image): Promise<Image> {
    checkImage("drawing", drawing, [1]);
    const { width: w, height: h } = drawing;
    const pw = (8 - (w % 8)) % 8;
    const ph = (8 - (h % 8)) % 8;
    const W = w + pw;
    const H = h + ph;
    const mean = Math.fround(SKETCH_MEAN);
    const std = Math.fround(SKETCH_STD);
    const input = new Float32Array(W * H);
    for (let y = 0; y < H; y++) {
      const sy = Math.min(y, h - 1);
      for (let x = 0; x < W; x++) {
        const v = drawing.data[sy * w + Math.min(x, w - 1)] ?? 0;
        input[y * W + x] = Math.fround(Math.fround(Math.fround(v / 255) - mean) / std);
      }
    }
    const [pred] = await this.net.run(tensor("float32", [1, 1, H, W], input));
    const data = resizeFloatsSync(
      await loadCv(),
      pred?.data as Float32Array,
      { width: W, height: H, channels: 1 },
      { width: w, height: h, interpolation: "linear" },
    );
    return image(
      w,
      h,
      1,
      Uint8Array.from(data, (v) => Math.trunc(Math.min(255, Math.max(0, Math.fround(v * 255))))),
    );
  }

  /** Uni-ControlNet's sketch map of an RGB frame: simplify(255 - HED(frame)). */
  async detect(frame: Image, hed: HedDetector): Promise<Image> {
    const edges = await hed.detect(frame);
    return this.simplify(
      image(
        edges.width,
        edges.height,
        1,
        edges.data.map((v) => 255 - v),
      ),
    );
  }

  async release(): Promise<void> {
    await this.net.release();
  }
}
