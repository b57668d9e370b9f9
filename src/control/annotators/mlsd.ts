/**
 * M-LSD straight lines (`MobileV2_MLSD_Large`, `mlsd_large_512_fp32.pth`), natively, as Uni-ControlNet's
 * and ControlNet's `annotator/mlsd` run it:
 *
 * - input: the RGB image resized (INTER_AREA) to the network size (Uni-ControlNet: the image's own
 *   size), a fourth channel of ones, all mapped `x / 127.5 - 1`;
 * - network: a MobileNetV2 trunk (TFLite-style stride-2 convs: zero pad right/bottom by 1, no
 *   padding; ReLU6; features 0..13, FPN taps 1, 3, 6, 10, 13), four A/B decoder stages (1x1 conv + BN +
 *   ReLU, bilinear x2 with align_corners=True, concat; residual 3x3), a dilated C block, and the last
 *   9 of its 16 channels: the tp-map at half the input size (`[0]` centre logits, `[1:5]` displacements);
 * - decoding ({@link decodeMlsdLines}): sigmoid of the centre map, 3x3 max-pool NMS (keep where the
 *   pooled value equals the value), top 200 scores, keep a centre when score > `scoreThreshold` and the
 *   start-end distance (in tp-map pixels) > `distanceThreshold`; the line is centre + displacements,
 *   x2 to input pixels, scaled to the image;
 * - drawing ({@link drawLines}): `cv2.line` width 1, value 255 on black, end points `int()`-truncated.
 *   No line at all gives a black map (the release's empty-array exception is swallowed the same way).
 */
import { InvalidArgumentError } from "../../errors.js";
import type { Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import { image, type Image } from "../../image.js";
import { Conv2d } from "../../nn/conv.js";
import type { WeightStore } from "../../nn/weight-store.js";
import type { WeightScope } from "../../nn/weights.js";
import { type HostTensor, tensor } from "../../tensor.js";
import { loadCv, withMats } from "../opencv.js";
import { resizeImageSync } from "../resize.js";
import { checkNumber } from "../validate.js";
import { toRgb } from "./common.js";
import { AnnotatorNet, BatchNorm2d, openAnnotatorWeights, type AnnotatorNetOptions } from "./net.js";

const relu6 = (v: Value): Value => op.Min(v.graph, op.Relu(v.graph, v), 6);

/** MobileNetV2 ConvBNReLU (keys `.0` conv without bias, `.1` BatchNorm). */
function convBnRelu(
  w: WeightScope,
  x: Value,
  inC: number,
  outC: number,
  kernel: number,
  stride: number,
  groups = 1,
): Value {
  const g = x.graph;
  const padding = stride === 2 ? 0 : (kernel - 1) / 2;
  const conv = new Conv2d(w.at(0), {
    inChannels: inC,
    outChannels: outC,
    kernelSize: kernel,
    stride,
    padding,
    groups,
    bias: false,
  });
  const bn = new BatchNorm2d(w.at(1), outC);
  const input = stride === 2 ? op.Pad(g, x, [0, 0, 0, 0, 0, 0, 1, 1], { value: 0 }) : x;
  return relu6(bn.forward(conv.forward(input)));
}

/** InvertedResidual(inp, oup, stride, expand_ratio) with its `conv` Sequential keys. */
function invertedResidual(
  w: WeightScope,
  x: Value,
  inp: number,
  oup: number,
  stride: number,
  t: number,
): Value {
  const hidden = Math.round(inp * t);
  const seq = w.at("conv");
  let h = x;
  let i = 0;
  if (t !== 1) h = convBnRelu(seq.at(i++), h, inp, hidden, 1, 1);
  h = convBnRelu(seq.at(i++), h, hidden, hidden, 3, stride, hidden);
  h = new Conv2d(seq.at(i++), { inChannels: hidden, outChannels: oup, kernelSize: 1, bias: false }).forward(
    h,
  );
  h = new BatchNorm2d(seq.at(i), oup).forward(h);
  return stride === 1 && inp === oup ? op.Add(x.graph, x, h) : h;
}

/** (expand t, channels c, repeats n, first stride s) of the trunk M-LSD keeps. */
const TRUNK: readonly (readonly [number, number, number, number])[] = [
  [1, 16, 1, 1],
  [6, 24, 2, 2],
  [6, 32, 3, 2],
  [6, 64, 4, 2],
  [6, 96, 3, 1],
];
const FPN_TAPS = [1, 3, 6, 10, 13];

/** Conv (with bias) + BN + ReLU: keys `.0` and `.1`. */
function convBnReluBiased(
  w: WeightScope,
  x: Value,
  inC: number,
  outC: number,
  k: number,
  dilation = 1,
): Value {
  const conv = new Conv2d(w.at(0), {
    inChannels: inC,
    outChannels: outC,
    kernelSize: k,
    padding: (dilation * (k - 1)) / 2,
    dilation,
  });
  return op.Relu(x.graph, new BatchNorm2d(w.at(1), outC).forward(conv.forward(x)));
}

function blockA(w: WeightScope, a: Value, b: Value, inC1: number, inC2: number, upscale: boolean): Value {
  let bb = convBnReluBiased(w.at("conv1"), b, inC2, 64, 1);
  const aa = convBnReluBiased(w.at("conv2"), a, inC1, 64, 1);
  if (upscale)
    bb = op.Resize(b.graph, bb, [1, 1, 2, 2], {
      mode: "linear",
      coordinateTransformationMode: "align_corners",
    });
  return op.Concat(a.graph, [aa, bb], 1);
}

function blockB(w: WeightScope, x: Value, inC: number, outC: number): Value {
  const h = op.Add(x.graph, convBnReluBiased(w.at("conv1"), x, inC, inC, 3), x);
  return convBnReluBiased(w.at("conv2"), h, inC, outC, 3);
}

/** MobileV2_MLSD_Large: `[1, 4, H, W]` (H, W multiples of 32) -> tp-map `[1, 9, H/2, W/2]`. */
export function buildMlsdLarge(w: WeightScope, x: Value): Value[] {
  const features = w.at("backbone").at("features");
  let h = convBnRelu(features.at(0), x, 4, 32, 3, 2);
  const taps: Value[] = [];
  let index = 1;
  let inC = 32;
  for (const [t, c, n, s] of TRUNK) {
    for (let i = 0; i < n; i++) {
      h = invertedResidual(features.at(index), h, inC, c, i === 0 ? s : 1, t);
      if (FPN_TAPS.includes(index)) taps.push(h);
      inC = c;
      index++;
    }
  }
  const [c1, c2, c3, c4, c5] = taps as [Value, Value, Value, Value, Value];
  let y = blockA(w.at("block15"), c4, c5, 64, 96, false);
  y = blockB(w.at("block16"), y, 128, 64);
  y = blockA(w.at("block17"), c3, y, 32, 64, true);
  y = blockB(w.at("block18"), y, 128, 64);
  y = blockA(w.at("block19"), c2, y, 24, 64, true);
  y = blockB(w.at("block20"), y, 128, 64);
  y = blockA(w.at("block21"), c1, y, 16, 64, true);
  y = blockB(w.at("block22"), y, 128, 64);
  const c = w.at("block23");
  y = convBnReluBiased(c.at("conv1"), y, 64, 64, 3, 5);
  y = convBnReluBiased(c.at("conv2"), y, 64, 64, 3);
  y = new Conv2d(c.at("conv3"), { inChannels: 64, outChannels: 16, kernelSize: 1 }).forward(y);
  return [op.Slice(x.graph, y, { starts: [7], ends: [16], axes: [1] })];
}

/** A line segment in image pixels. */
export interface LineSegment {
  readonly x1: number;
  readonly y1: number;
  readonly x2: number;
  readonly y2: number;
  /** Centre score (sigmoid of the centre logit). */
  readonly score: number;
}

export interface MlsdDecodeOptions {
  /** (default 0.1, Uni-ControlNet's `value_threshold`) keep centres with score > this. */
  readonly scoreThreshold?: number;
  /** (default 0.1, Uni-ControlNet's `distance_threshold`) keep lines longer than this, in tp-map pixels. */
  readonly distanceThreshold?: number;
  /** (default 200) centres considered, best first. */
  readonly topK?: number;
  /** (default 1, 1) image size / network input size, per axis. */
  readonly ratio?: { readonly x: number; readonly y: number };
}

/**
 * Lines from a tp-map `[C >= 5, h, w]` (channel 0 centre logits, 1..4 displacements x1, y1, x2, y2),
 * as `pred_lines` decodes them (see the module comment). Ordered by score, best first.
 */
export function decodeMlsdLines(tpMap: HostTensor, options: MlsdDecodeOptions = {}): LineSegment[] {
  const shape = tpMap.shape;
  const [c, h, w] = shape.length === 4 ? shape.slice(1) : shape;
  if (shape.length < 3 || (shape.length === 4 && shape[0] !== 1) || c === undefined || c < 5 || !h || !w) {
    throw new InvalidArgumentError(
      "tpMap",
      "a [1, C >= 5, h, w] or [C >= 5, h, w] tensor",
      `[${shape.join(", ")}]`,
    );
  }
  const scoreThreshold = options.scoreThreshold ?? 0.1;
  const distanceThreshold = options.distanceThreshold ?? 0.1;
  const topK = options.topK ?? 200;
  checkNumber("scoreThreshold", scoreThreshold, -Number.MAX_VALUE, Number.MAX_VALUE);
  checkNumber("distanceThreshold", distanceThreshold, -Number.MAX_VALUE, Number.MAX_VALUE);
  const data = tpMap.data as Float32Array;
  const plane = h * w;
  const heat = new Float32Array(plane);
  for (let i = 0; i < plane; i++) heat[i] = Math.fround(1 / (1 + Math.exp(-(data[i] ?? 0))));
  const candidates: { score: number; index: number }[] = [];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = heat[y * w + x] ?? 0;
      let max = -Infinity;
      for (let dy = -1; dy <= 1; dy++)
        for (let dx = -1; dx <= 1; dx++) {
          const yy = y + dy;
          const xx = x + dx;
          if (yy >= 0 && yy < h && xx >= 0 && xx < w) max = Math.max(max, heat[yy * w + xx] ?? 0);
        }
      candidates.push({ score: max === v ? v : 0, index: y * w + x });
    }
  }
  candidates.sort((a, b) => b.score - a.score || a.index - b.index);
  const rx = options.ratio?.x ?? 1;
  const ry = options.ratio?.y ?? 1;
  const lines: LineSegment[] = [];
  for (const { score, index } of candidates.slice(0, topK)) {
    const y = Math.floor(index / w);
    const x = index % w;
    const d = [1, 2, 3, 4].map((k) => data[k * plane + index] ?? 0) as [number, number, number, number];
    const distance = Math.sqrt((d[0] - d[2]) ** 2 + (d[1] - d[3]) ** 2);
    if (score > scoreThreshold && distance > distanceThreshold) {
      lines.push({
        x1: 2 * (x + d[0]) * rx,
        y1: 2 * (y + d[1]) * ry,
        x2: 2 * (x + d[2]) * rx,
        y2: 2 * (y + d[3]) * ry,
        score,
      });
    }
  }
  return lines;
}

/** White (255) 1-pixel lines on black, `cv2.line` (8-connected) with `int()`-truncated end points. */
export async function drawLines(
  width: number,
  height: number,
  lines: readonly LineSegment[],
): Promise<Image> {
  const cv = await loadCv();
  return withMats(cv, "line", (track) => {
    const canvas = track(cv.Mat.zeros(height, width, cv.CV_8UC1));
    for (const l of lines) {
      cv.line(
        canvas,
        new cv.Point(Math.trunc(l.x1), Math.trunc(l.y1)),
        new cv.Point(Math.trunc(l.x2), Math.trunc(l.y2)),
        new cv.Scalar(255, 255, 255, 255),
        1,
        cv.LINE_8,
      );
    }
    return image(width, height, 1, Uint8Array.from(canvas.data));
  });
}

export interface MlsdOptions extends Omit<AnnotatorNetOptions, "inputChannels">, MlsdDecodeOptions {
  /** (optional) network input size; default the image size rounded to multiples of 32 (Uni-ControlNet: the image's own size). */
  readonly inputSize?: { readonly width: number; readonly height: number };
  /** (optional) the option naming the file, for messages (default "weights.mlsd"). */
  readonly option?: string;
}

const roundTo32 = (v: number): number => Math.max(32, Math.round(v / 32) * 32);

export class MlsdDetector {
  private constructor(
    private readonly net: AnnotatorNet,
    readonly options: MlsdOptions,
  ) {}

  /** Loads `mlsd_large_512_fp32.pth` (or a .safetensors copy). */
  static async create(path: string, options: MlsdOptions = {}): Promise<MlsdDetector> {
    const store = await openAnnotatorWeights(path, {
      what: "M-LSD weights (mlsd_large_512_fp32.pth)",
      option: options.option ?? "weights.mlsd",
    });
    return MlsdDetector.fromStore(store, options);
  }

  static async fromStore(store: WeightStore, options: MlsdOptions = {}): Promise<MlsdDetector> {
    const net = await AnnotatorNet.create(store, buildMlsdLarge, {
      expected: "M-LSD weights (mlsd_large_512_fp32.pth)",
      ...options,
      inputChannels: 4,
    });
    return new MlsdDetector(net, options);
  }

  /** The raw tp-map `[1, 9, H/2, W/2]` for an image, and the network input size used. */
  async tpMap(img: Image): Promise<{ map: HostTensor; width: number; height: number }> {
    const rgb = toRgb(img);
    const width = this.options.inputSize?.width ?? roundTo32(rgb.width);
    const height = this.options.inputSize?.height ?? roundTo32(rgb.height);
    if (width % 32 !== 0 || height % 32 !== 0 || width <= 0 || height <= 0) {
      throw new InvalidArgumentError("inputSize", "positive multiples of 32", `${width}x${height}`);
    }
    const resized =
      width === rgb.width && height === rgb.height
        ? rgb
        : resizeImageSync(await loadCv(), rgb, { width, height, interpolation: "area" });
    const plane = width * height;
    const input = new Float32Array(4 * plane);
    for (let i = 0; i < plane; i++) {
      for (let ch = 0; ch < 3; ch++) input[ch * plane + i] = (resized.data[3 * i + ch] ?? 0) / 127.5 - 1;
      input[3 * plane + i] = 1 / 127.5 - 1;
    }
    const [map] = await this.net.run(tensor("float32", [1, 4, height, width], input));
    if (!map) throw new InvalidArgumentError("network outputs", "one tp-map", 0);
    return { map, width, height };
  }

  /** Line segments in image pixels. */
  async lines(img: Image): Promise<LineSegment[]> {
    const { map, width, height } = await this.tpMap(img);
    return decodeMlsdLines(map, { ...this.options, ratio: { x: img.width / width, y: img.height / height } });
  }

  /** The M-LSD control map: one channel, white lines on black. */
  async detect(img: Image): Promise<Image> {
    return drawLines(img.width, img.height, await this.lines(img));
  }

  async release(): Promise<void> {
    await this.net.release();
  }
}
