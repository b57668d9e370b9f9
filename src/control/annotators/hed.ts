/**
 * HED soft edges, natively from the annotator weight files, in the two releases' conventions:
 *
 * - "bsds500" (Uni-ControlNet `annotator/hed`, ControlNet 1.0; `network-bsds500.pth`, keys
 *   `moduleVggOne.0.weight` ... or `netVggOne...`): VGG16 stages on BGR input `x * 255 - [104.00698793,
 *   116.66876762, 122.67891434]` (x = uint8 / 255), five 1x1 score maps upsampled bilinearly
 *   (align_corners=False) to the input size, fused by the learned 1x1 conv `netCombine.0` and a sigmoid.
 * - "apache2" (ControlNet 1.1 `ControlNetHED_Apache2`, `ControlNetHED.pth`, keys `norm`,
 *   `block{1..5}.convs.i`, `block{1..5}.projection`): RGB input 0..255 minus the learned `norm`,
 *   five projections each `cv2.resize`d (INTER_LINEAR) to the image size, averaged, then a sigmoid.
 *
 * Both return `(edge * 255).clip(0, 255).astype(uint8)`; no thresholding, no NMS. The fusion is host
 * code ({@link fuseHedSides}); the network outputs the raw side maps (and bsds500's combine weights).
 */
import { InvalidArgumentError } from "../../errors.js";
import type { Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import type { Image } from "../../image.js";
import { Conv2d } from "../../nn/conv.js";
import type { WeightStore } from "../../nn/weight-store.js";
import type { WeightScope } from "../../nn/weights.js";
import type { HostTensor } from "../../tensor.js";
import type { FloatMap } from "../dense-model.js";
import { loadCv } from "../opencv.js";
import { resizeFloatsSync } from "../resize.js";
import { bilinearResizeTorch, probabilityToImage, rgbToNchw, sigmoid, toRgb } from "./common.js";
import { AnnotatorNet, maxPool2d, openAnnotatorWeights, type AnnotatorNetOptions } from "./net.js";

export type HedVariant = "bsds500" | "apache2";

/** BGR means the Caffe HED subtracts (on 0..255 input). */
export const HED_BSDS500_MEAN: readonly number[] = [104.00698793, 116.66876762, 122.67891434];

const conv = (w: WeightScope, inC: number, outC: number, k: number): Conv2d =>
  new Conv2d(w, { inChannels: inC, outChannels: outC, kernelSize: k, padding: (k - 1) / 2 });

/** (channels, convs) of the five VGG stages. */
const STAGES: readonly (readonly [number, number, number])[] = [
  [3, 64, 2],
  [64, 128, 2],
  [128, 256, 3],
  [256, 512, 3],
  [512, 512, 3],
];

/** ControlNetHED_Apache2: input RGB 0..255 `[1, 3, H, W]` -> five side logits `[1, 1, H/2^k, W/2^k]`. */
export function buildHedApache2(w: WeightScope, x: Value): Value[] {
  const g = w.graph;
  const norm = w.param("norm", [1, 3, 1, 1]);
  let h = op.Sub(g, x, norm);
  const sides: Value[] = [];
  STAGES.forEach(([inC, outC, n], s) => {
    const b = w.at(`block${s + 1}`);
    if (s > 0) h = maxPool2d(g, h, 2, 2);
    for (let i = 0; i < n; i++)
      h = op.Relu(g, conv(b.at("convs").at(i), i === 0 ? inC : outC, outC, 3).forward(h));
    sides.push(conv(b.at("projection"), outC, 1, 1).forward(h));
  });
  return sides;
}

const BSDS_NAMES = ["One", "Two", "Thr", "Fou", "Fiv"] as const;

/**
 * HED (BSDS500, sniklaus port): input `[1, 3, H, W]` = BGR 0..255 (mean subtracted inside) -> five
 * side scores, then `netCombine.0.weight` [1, 5, 1, 1] and `.bias` [1] as outputs for the fusion.
 * `prefix` is "module" (the .pth as released) or "net" (a state dict saved from the loaded model).
 */
export function buildHedBsds500(w: WeightScope, x: Value, prefix: "module" | "net"): Value[] {
  const g = w.graph;
  const mean = g.constantOf("float32", [1, 3, 1, 1], [...HED_BSDS500_MEAN]);
  let h = op.Sub(g, x, mean);
  const sides: Value[] = [];
  STAGES.forEach(([inC, outC, n], s) => {
    const seq = w.at(`${prefix}Vgg${BSDS_NAMES[s]}`);
    // Sequential indices: [MaxPool,] (Conv, ReLU) x n.
    const first = s === 0 ? 0 : 1;
    if (s > 0) h = maxPool2d(g, h, 2, 2);
    for (let i = 0; i < n; i++)
      h = op.Relu(g, conv(seq.at(first + 2 * i), i === 0 ? inC : outC, outC, 3).forward(h));
    sides.push(conv(w.at(`${prefix}Score${BSDS_NAMES[s]}`), outC, 1, 1).forward(h));
  });
  const combine = w.at(`${prefix}Combine`).at(0);
  return [...sides, combine.param("weight", [1, 5, 1, 1]), combine.param("bias", [1])];
}

/** The release a weight file belongs to, from its keys (apache2 when neither layout is recognised). */
export function detectHedVariant(store: WeightStore): { variant: HedVariant; prefix: "module" | "net" } {
  const keys = new Set(store.keys());
  if (keys.has("moduleVggOne.0.weight")) return { variant: "bsds500", prefix: "module" };
  if (keys.has("netVggOne.0.weight")) return { variant: "bsds500", prefix: "net" };
  return { variant: "apache2", prefix: "net" };
}

/** One side output at its own resolution. */
export type SideMap = FloatMap;

export interface HedFusion {
  readonly variant: HedVariant;
  /** bsds500: the `netCombine.0` 1x1 conv (5 weights, 1 bias). */
  readonly combineWeight?: readonly number[];
  readonly combineBias?: number;
}

/**
 * Edge probabilities in [0, 1] at `width` x `height` from the five side maps, as each release fuses
 * them (see the module comment): bsds500 = sigmoid(sum_k w_k up_torch(s_k) + b); apache2 =
 * sigmoid(mean_k cv2.resize(s_k)).
 */
export async function fuseHedSides(
  sides: readonly SideMap[],
  width: number,
  height: number,
  fusion: HedFusion,
): Promise<Float32Array> {
  if (sides.length !== 5) throw new InvalidArgumentError("sides", "five HED side maps", sides.length);
  const n = width * height;
  const acc = new Float64Array(n);
  if (fusion.variant === "bsds500") {
    const wts = fusion.combineWeight ?? [];
    if (wts.length !== 5)
      throw new InvalidArgumentError("combineWeight", "five netCombine weights", wts.length);
    sides.forEach((s, k) => {
      const up = bilinearResizeTorch(s.data, s.width, s.height, width, height);
      const wk = wts[k] ?? 0;
      for (let i = 0; i < n; i++) acc[i] = (acc[i] ?? 0) + Math.fround(wk * (up[i] ?? 0));
    });
    const b = fusion.combineBias ?? 0;
    return Float32Array.from(acc, (v) => Math.fround(sigmoid(Math.fround(v + b))));
  }
  const cv = await loadCv();
  for (const s of sides) {
    const up = resizeFloatsSync(
      cv,
      s.data,
      { width: s.width, height: s.height, channels: 1 },
      { width, height, interpolation: "linear" },
    );
    // np.mean over a float32 stack: a float32 running sum, then / 5 in float32.
    for (let i = 0; i < n; i++) acc[i] = Math.fround((acc[i] ?? 0) + (up[i] ?? 0));
  }
  return Float32Array.from(acc, (v) => sigmoid(Math.fround(v / 5)));
}

export interface HedOptions extends Omit<AnnotatorNetOptions, "inputChannels"> {
  /** (optional) force a release's conventions; default: detected from the file's keys. */
  readonly variant?: HedVariant;
  /** (optional) the option naming the file, for messages (default "weights.hed"). */
  readonly option?: string;
}

const mapOf = (t: HostTensor | undefined): SideMap => {
  const shape = t?.shape ?? [];
  const h = shape[shape.length - 2] ?? 0;
  const w = shape[shape.length - 1] ?? 0;
  return { width: w, height: h, data: Float32Array.from(t?.data as Float32Array) };
};

export class HedDetector {
  private constructor(
    private readonly net: AnnotatorNet,
    readonly variant: HedVariant,
  ) {}

  /** Loads `ControlNetHED.pth` / `network-bsds500.pth` (or a .safetensors copy). */
  static async create(path: string, options: HedOptions = {}): Promise<HedDetector> {
    const store = await openAnnotatorWeights(path, {
      what: "HED weights (ControlNetHED.pth or network-bsds500.pth)",
      option: options.option ?? "weights.hed",
    });
    return HedDetector.fromStore(store, options);
  }

  static async fromStore(store: WeightStore, options: HedOptions = {}): Promise<HedDetector> {
    const detected = detectHedVariant(store);
    const variant = options.variant ?? detected.variant;
    const net = await AnnotatorNet.create(
      store,
      (w, x) => (variant === "bsds500" ? buildHedBsds500(w, x, detected.prefix) : buildHedApache2(w, x)),
      { expected: "HED weights (ControlNetHED.pth or network-bsds500.pth)", ...options, inputChannels: 3 },
    );
    return new HedDetector(net, variant);
  }

  /** Edge probabilities in [0, 1] at the image size. */
  async probabilities(img: Image): Promise<FloatMap> {
    const rgb = toRgb(img);
    // bsds500: BGR, uint8 / 255 * 255 in float32 (the release's round trip); apache2: RGB 0..255.
    const input = rgbToNchw(rgb, { order: this.variant === "bsds500" ? "bgr" : "rgb" });
    if (this.variant === "bsds500")
      for (let i = 0; i < input.data.length; i++)
        input.data[i] = Math.fround(Math.fround((input.data[i] ?? 0) / 255) * 255);
    const outputs = await this.net.run(input);
    const sides = outputs.slice(0, 5).map(mapOf);
    const fusion: HedFusion =
      this.variant === "bsds500"
        ? {
            variant: "bsds500",
            combineWeight: Array.from(outputs[5]?.data as Float32Array),
            combineBias: Number((outputs[6]?.data as Float32Array)[0] ?? 0),
          }
        : { variant: "apache2" };
    const data = await fuseHedSides(sides, rgb.width, rgb.height, fusion);
    return { width: rgb.width, height: rgb.height, data };
  }

  /** The HED control map: one channel, `(edge * 255).clip(0, 255).astype(uint8)`. */
  async detect(img: Image): Promise<Image> {
    const p = await this.probabilities(img);
    return probabilityToImage(p.width, p.height, p.data);
  }

  async release(): Promise<void> {
    await this.net.release();
  }
}
