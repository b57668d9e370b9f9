/**
 * OpenPose body (CMU's 18-keypoint COCO model, `body_pose_model.pth`), natively, as Uni-ControlNet's
 * and ControlNet 1.0's `annotator/openpose` (body only) run it:
 *
 * - network (`bodypose_model`): VGG19-style trunk `conv1_1 .. conv4_4_CPM`, stage 1 with two branches
 *   (`conv5_*_CPM_L1` 38 PAF channels, `..._L2` 19 heat-map channels), stages 2..6 (`Mconv{1..7}_stage{s}_L{1,2}`,
 *   7x7 convs) on concat(L1, L2, trunk). The file's keys are the flat layer names ("conv1_1.weight").
 *   As in the release, `Mconv7_stage6_L2` (the final heat-map) keeps its ReLU: the release's
 *   no-ReLU list names `Mconv7_stage6_L1` twice instead.
 * - input: BGR, scale `0.5 * 368 / H` (`cv2.resize(fx, fy)`, INTER_CUBIC), padded right/bottom to a
 *   multiple of 8 with 128, `x / 256 - 0.5`;
 * - maps: both outputs `cv2.resize`d x8 (INTER_CUBIC), the padding cropped, resized to the image
 *   (INTER_CUBIC);
 * - peaks ({@link findPeaks}): per part, `gaussian_filter(sigma=3)` (scipy: reflect mode, radius 12), a
 *   pixel >= its four neighbours (zero outside) and > 0.1; score read from the unblurred map;
 * - limbs ({@link connectLimbs}): 10 samples of the PAF along each candidate pair, criteria
 *   "> 0.05 at more than 80 % of samples" and "mean + min(0.5 H / len - 1, 0) > 0", greedy by score;
 *   people assembled and kept with >= 4 parts and mean score >= 0.4 ({@link assemblePeople});
 * - drawing ({@link drawBodyPose}): circles radius 4 per keypoint, limbs as filled ellipses
 *   (half-axes len/2, 4) blended 0.4/0.6, in the release's 18 colours, on black.
 */
import { InvalidArgumentError } from "../../errors.js";
import type { Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import { image, type Image } from "../../image.js";
import { Conv2d } from "../../nn/conv.js";
import type { WeightStore } from "../../nn/weight-store.js";
import type { WeightScope } from "../../nn/weights.js";
import { type HostTensor, tensor } from "../../tensor.js";
import { imageToMat, loadCv, matToImage, withMats, type Cv } from "../opencv.js";
import { resizeFloatsSync } from "../resize.js";
import { toRgb } from "./common.js";
import { AnnotatorNet, maxPool2d, openAnnotatorWeights, type AnnotatorNetOptions } from "./net.js";

type ConvSpec = readonly [name: string, inC: number, outC: number, k: number];

const TRUNK: readonly (ConvSpec | "pool")[] = [
  ["conv1_1", 3, 64, 3],
  ["conv1_2", 64, 64, 3],
  "pool",
  ["conv2_1", 64, 128, 3],
  ["conv2_2", 128, 128, 3],
  "pool",
  ["conv3_1", 128, 256, 3],
  ["conv3_2", 256, 256, 3],
  ["conv3_3", 256, 256, 3],
  ["conv3_4", 256, 256, 3],
  "pool",
  ["conv4_1", 256, 512, 3],
  ["conv4_2", 512, 512, 3],
  ["conv4_3_CPM", 512, 256, 3],
  ["conv4_4_CPM", 256, 128, 3],
];

function stage1(branch: 1 | 2): ConvSpec[] {
  const L = `L${branch}`;
  return [
    [`conv5_1_CPM_${L}`, 128, 128, 3],
    [`conv5_2_CPM_${L}`, 128, 128, 3],
    [`conv5_3_CPM_${L}`, 128, 128, 3],
    [`conv5_4_CPM_${L}`, 128, 512, 1],
    [`conv5_5_CPM_${L}`, 512, branch === 1 ? 38 : 19, 1],
  ];
}

function stageN(s: number, branch: 1 | 2): ConvSpec[] {
  const n = (i: number): string => `Mconv${i}_stage${s}_L${branch}`;
  return [
    [n(1), 185, 128, 7],
    [n(2), 128, 128, 7],
    [n(3), 128, 128, 7],
    [n(4), 128, 128, 7],
    [n(5), 128, 128, 7],
    [n(6), 128, 128, 1],
    [n(7), 128, branch === 1 ? 38 : 19, 1],
  ];
}

/** Layers without a ReLU after them, exactly as the release lists them (the L2 of stage 6 is missing). */
const NO_RELU = new Set([
  "conv5_5_CPM_L1",
  "conv5_5_CPM_L2",
  "Mconv7_stage2_L1",
  "Mconv7_stage2_L2",
  "Mconv7_stage3_L1",
  "Mconv7_stage3_L2",
  "Mconv7_stage4_L1",
  "Mconv7_stage4_L2",
  "Mconv7_stage5_L1",
  "Mconv7_stage5_L2",
  "Mconv7_stage6_L1",
]);

function runConvs(w: WeightScope, x: Value, specs: readonly (ConvSpec | "pool")[]): Value {
  let h = x;
  for (const spec of specs) {
    if (spec === "pool") {
      h = maxPool2d(x.graph, h, 2, 2);
      continue;
    }
    const [name, inC, outC, k] = spec;
    h = new Conv2d(w.at(name), {
      inChannels: inC,
      outChannels: outC,
      kernelSize: k,
      padding: (k - 1) / 2,
    }).forward(h);
    if (!NO_RELU.has(name)) h = op.Relu(x.graph, h);
  }
  return h;
}

/** bodypose_model: `[1, 3, H, W]` (H, W multiples of 8) -> [PAFs `[1, 38, H/8, W/8]`, heat-maps `[1, 19, H/8, W/8]`]. */
export function buildBodyPose(w: WeightScope, x: Value): Value[] {
  const g = x.graph;
  const trunk = runConvs(w, x, TRUNK);
  let l1 = runConvs(w, trunk, stage1(1));
  let l2 = runConvs(w, trunk, stage1(2));
  for (let s = 2; s <= 6; s++) {
    const input = op.Concat(g, [l1, l2, trunk], 1);
    l1 = runConvs(w, input, stageN(s, 1));
    l2 = runConvs(w, input, stageN(s, 2));
  }
  return [l1, l2];
}

/** Channel-planar float maps at the image size: `data[c * H * W + y * W + x]`. */
export interface PlanarMaps {
  readonly width: number;
  readonly height: number;
  readonly channels: number;
  readonly data: Float32Array;
}

/** A keypoint candidate: pixel position, score (unblurred heat-map), global id. */
export interface Peak {
  readonly x: number;
  readonly y: number;
  readonly score: number;
  readonly id: number;
}

/** scipy.ndimage.gaussian_filter(map, sigma) in float64 (mode "reflect", truncate 4). */
export function gaussianFilter(
  data: ArrayLike<number>,
  width: number,
  height: number,
  sigma: number,
): Float64Array {
  const radius = Math.trunc(4 * sigma + 0.5);
  const weights: number[] = [];
  for (let i = -radius; i <= radius; i++) weights.push(Math.exp((-0.5 * i * i) / (sigma * sigma)));
  const sum = weights.reduce((a, b) => a + b, 0);
  const kernel = weights.map((v) => v / sum);
  // Half-sample symmetric reflection (d c b a | a b c d | d c b a), repeated for large offsets.
  const reflect = (i: number, n: number): number => {
    const period = 2 * n;
    let j = ((i % period) + period) % period;
    if (j >= n) j = period - 1 - j;
    return j;
  };
  const tmp = new Float64Array(width * height);
  const out = new Float64Array(width * height);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      let acc = 0;
      for (let k = -radius; k <= radius; k++)
        acc += (kernel[k + radius] ?? 0) * (data[reflect(y + k, height) * width + x] ?? 0);
      tmp[y * width + x] = acc;
    }
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      let acc = 0;
      for (let k = -radius; k <= radius; k++)
        acc += (kernel[k + radius] ?? 0) * (tmp[y * width + reflect(x + k, width)] ?? 0);
      out[y * width + x] = acc;
    }
  return out;
}

/**
 * Keypoint candidates of the first 18 heat-map channels (see the module comment), row-major order
 * within a part, ids numbered across parts.
 */
export function findPeaks(heatmaps: PlanarMaps, threshold = 0.1, sigma = 3): Peak[][] {
  const { width: w, height: h } = heatmaps;
  const plane = w * h;
  const all: Peak[][] = [];
  let counter = 0;
  for (let part = 0; part < Math.min(18, heatmaps.channels); part++) {
    const raw = heatmaps.data.subarray(part * plane, (part + 1) * plane);
    const m = gaussianFilter(raw, w, h, sigma);
    const at = (x: number, y: number): number =>
      x < 0 || y < 0 || x >= w || y >= h ? 0 : (m[y * w + x] ?? 0);
    const peaks: Peak[] = [];
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const v = at(x, y);
        if (v >= at(x, y - 1) && v >= at(x, y + 1) && v >= at(x - 1, y) && v >= at(x + 1, y) && v > threshold)
          peaks.push({ x, y, score: raw[y * w + x] ?? 0, id: counter + peaks.length });
      }
    counter += peaks.length;
    all.push(peaks);
  }
  return all;
}

/** Limb (part pairs, 1-based) and the PAF channel pair of each (19-based, as in the release). */
export const LIMB_SEQ: readonly (readonly [number, number])[] = [
  [2, 3],
  [2, 6],
  [3, 4],
  [4, 5],
  [6, 7],
  [7, 8],
  [2, 9],
  [9, 10],
  [10, 11],
  [2, 12],
  [12, 13],
  [13, 14],
  [2, 1],
  [1, 15],
  [15, 17],
  [1, 16],
  [16, 18],
  [3, 17],
  [6, 18],
];
const MAP_IDX: readonly (readonly [number, number])[] = [
  [31, 32],
  [39, 40],
  [33, 34],
  [35, 36],
  [41, 42],
  [43, 44],
  [19, 20],
  [21, 22],
  [23, 24],
  [25, 26],
  [27, 28],
  [29, 30],
  [47, 48],
  [49, 50],
  [53, 54],
  [51, 52],
  [55, 56],
  [37, 38],
  [45, 46],
];

/** One accepted limb: peak ids, PAF score, indices into the two candidate lists. */
export interface Connection {
  readonly idA: number;
  readonly idB: number;
  readonly score: number;
  readonly i: number;
  readonly j: number;
}

/** np.linspace(a, b, n) as numpy computes it (the last sample is exactly b). */
function linspace(a: number, b: number, n: number): number[] {
  const step = (b - a) / (n - 1);
  return Array.from({ length: n }, (_, i) => (i === n - 1 ? b : a + i * step));
}

/** Python's round() on a float: half to even. */
function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Per limb, the accepted connections (null where a part had no candidate: the release's `special_k`). */
export function connectLimbs(
  peaks: readonly Peak[][],
  pafs: PlanarMaps,
  imageHeight: number,
  threshold = 0.05,
): (Connection[] | null)[] {
  const { width: w, height: h } = pafs;
  const plane = w * h;
  const midNum = 10;
  return MAP_IDX.map((mapIdx, k) => {
    const [pa, pb] = LIMB_SEQ[k] ?? [1, 1];
    const candA = peaks[pa - 1] ?? [];
    const candB = peaks[pb - 1] ?? [];
    if (candA.length === 0 || candB.length === 0) return null;
    const px = (mapIdx[0] - 19) * plane;
    const py = (mapIdx[1] - 19) * plane;
    const candidates: { i: number; j: number; s: number }[] = [];
    candA.forEach((a, i) => {
      candB.forEach((b, j) => {
        let vx = b.x - a.x;
        let vy = b.y - a.y;
        const norm = Math.max(0.001, Math.sqrt(vx * vx + vy * vy));
        vx /= norm;
        vy /= norm;
        const xs = linspace(a.x, b.x, midNum);
        const ys = linspace(a.y, b.y, midNum);
        const scores = xs.map((x, I) => {
          const idx = roundHalfEven(ys[I] ?? 0) * w + roundHalfEven(x);
          return (pafs.data[px + idx] ?? 0) * vx + (pafs.data[py + idx] ?? 0) * vy;
        });
        let total = 0;
        for (const s of scores) total += s;
        const s = total / scores.length + Math.min((0.5 * imageHeight) / norm - 1, 0);
        const above = scores.filter((v) => v > threshold).length;
        if (above > 0.8 * scores.length && s > 0) candidates.push({ i, j, s });
      });
    });
    candidates.sort((x, y) => y.s - x.s); // stable, like Python's sorted(reverse=True)
    const out: Connection[] = [];
    for (const c of candidates) {
      if (out.some((o) => o.i === c.i) || out.some((o) => o.j === c.j)) continue;
      out.push({ idA: candA[c.i]?.id ?? -1, idB: candB[c.j]?.id ?? -1, score: c.s, i: c.i, j: c.j });
      if (out.length >= Math.min(candA.length, candB.length)) break;
    }
    return out;
  });
}

/**
 * People from limb connections, as the release assembles them: rows of 18 peak ids (-1 = absent),
 * then [total score, part count]; rows with < 4 parts or score / count < 0.4 are dropped. (Where the
 * release would index past two matching rows, the third and later matches are ignored.)
 */
export function assemblePeople(
  connections: readonly (Connection[] | null)[],
  candidates: readonly Peak[],
): number[][] {
  let subset: number[][] = [];
  const scoreOf = (id: number): number => candidates[id]?.score ?? 0;
  connections.forEach((conn, k) => {
    if (conn === null) return;
    const [la, lb] = LIMB_SEQ[k] ?? [1, 1];
    const ia = la - 1;
    const ib = lb - 1;
    for (const c of conn) {
      const found: number[] = [];
      subset.forEach((row, j) => {
        if (row[ia] === c.idA || row[ib] === c.idB) found.push(j);
      });
      if (found.length === 1) {
        const row = subset[found[0] ?? 0] ?? [];
        if (row[ib] !== c.idB) {
          row[ib] = c.idB;
          row[19] = (row[19] ?? 0) + 1;
          row[18] = (row[18] ?? 0) + scoreOf(c.idB) + c.score;
        }
      } else if (found.length >= 2) {
        const j1 = found[0] ?? 0;
        const j2 = found[1] ?? 0;
        const r1 = subset[j1] ?? [];
        const r2 = subset[j2] ?? [];
        let overlap = false;
        for (let p = 0; p < 18; p++) if ((r1[p] ?? -1) >= 0 && (r2[p] ?? -1) >= 0) overlap = true;
        if (!overlap) {
          for (let p = 0; p < 18; p++) r1[p] = (r1[p] ?? 0) + (r2[p] ?? 0) + 1;
          r1[18] = (r1[18] ?? 0) + (r2[18] ?? 0) + c.score;
          r1[19] = (r1[19] ?? 0) + (r2[19] ?? 0);
          subset = subset.filter((_, j) => j !== j2);
        } else {
          r1[ib] = c.idB;
          r1[19] = (r1[19] ?? 0) + 1;
          r1[18] = (r1[18] ?? 0) + scoreOf(c.idB) + c.score;
        }
      } else if (k < 17) {
        const row = new Array<number>(20).fill(-1);
        row[ia] = c.idA;
        row[ib] = c.idB;
        row[19] = 2;
        row[18] = scoreOf(c.idA) + scoreOf(c.idB) + c.score;
        subset.push(row);
      }
    }
  });
  return subset.filter((row) => !((row[19] ?? 0) < 4 || (row[18] ?? 0) / (row[19] ?? 1) < 0.4));
}

/** The release's 18 limb/keypoint colours (written to channels 0, 1, 2 in this order). */
export const POSE_COLORS: readonly (readonly [number, number, number])[] = [
  [255, 0, 0],
  [255, 85, 0],
  [255, 170, 0],
  [255, 255, 0],
  [170, 255, 0],
  [85, 255, 0],
  [0, 255, 0],
  [0, 255, 85],
  [0, 255, 170],
  [0, 255, 255],
  [0, 170, 255],
  [0, 85, 255],
  [0, 0, 255],
  [85, 0, 255],
  [170, 0, 255],
  [255, 0, 255],
  [255, 0, 170],
  [255, 0, 85],
];

/** `draw_bodypose` on a black 3-channel canvas. */
export async function drawBodyPose(
  width: number,
  height: number,
  candidates: readonly Peak[],
  people: readonly number[][],
): Promise<Image> {
  const cv = await loadCv();
  return withMats(cv, "draw_bodypose", (track) => {
    let canvas = track(new cv.Mat(height, width, cv.CV_8UC3, new cv.Scalar(0, 0, 0, 0)));
    const color = (i: number): InstanceType<Cv["Scalar"]> => {
      const c = POSE_COLORS[i] ?? [0, 0, 0];
      return new cv.Scalar(c[0], c[1], c[2], 0);
    };
    for (let i = 0; i < 18; i++)
      for (const person of people) {
        const index = Math.trunc(person[i] ?? -1);
        if (index === -1) continue;
        const p = candidates[index];
        if (!p) continue;
        cv.circle(canvas, new cv.Point(Math.trunc(p.x), Math.trunc(p.y)), 4, color(i), -1);
      }
    for (let i = 0; i < 17; i++)
      for (const person of people) {
        const [la, lb] = LIMB_SEQ[i] ?? [1, 1];
        const a = candidates[Math.trunc(person[la - 1] ?? -1)];
        const b = candidates[Math.trunc(person[lb - 1] ?? -1)];
        if ((person[la - 1] ?? -1) === -1 || (person[lb - 1] ?? -1) === -1 || !a || !b) continue;
        const cur = track(canvas.clone());
        const mX = (a.y + b.y) / 2;
        const mY = (a.x + b.x) / 2;
        const length = Math.sqrt((a.y - b.y) ** 2 + (a.x - b.x) ** 2);
        const angle = (Math.atan2(a.y - b.y, a.x - b.x) * 180) / Math.PI;
        const poly = track(new cv.PointVector());
        cv.ellipse2Poly(
          new cv.Point(Math.trunc(mY), Math.trunc(mX)),
          new cv.Size(Math.trunc(length / 2), 4),
          Math.trunc(angle),
          0,
          360,
          1,
          poly,
        );
        const pts = track(new cv.Mat(poly.size(), 1, cv.CV_32SC2));
        for (let q = 0; q < poly.size(); q++) {
          const pt = poly.get(q);
          pts.data32S[2 * q] = pt.x;
          pts.data32S[2 * q + 1] = pt.y;
        }
        cv.fillConvexPoly(cur, pts, color(i));
        const blended = track(new cv.Mat());
        cv.addWeighted(canvas, 0.4, cur, 0.6, 0, blended);
        canvas = blended;
      }
    return matToImage(canvas);
  });
}

export interface OpenPoseOptions extends Omit<AnnotatorNetOptions, "inputChannels"> {
  /** (optional) the option naming the file, for messages (default "weights.openpose"). */
  readonly option?: string;
}

/** What the body estimator found: candidates (x, y, score, id) and people (18 ids + score + count). */
export interface BodyPose {
  readonly candidates: readonly Peak[];
  readonly people: readonly number[][];
}

export class OpenPoseDetector {
  private constructor(private readonly net: AnnotatorNet) {}

  /** Loads `body_pose_model.pth` (or a .safetensors copy). */
  static async create(path: string, options: OpenPoseOptions = {}): Promise<OpenPoseDetector> {
    const store = await openAnnotatorWeights(path, {
      what: "OpenPose body weights (body_pose_model.pth)",
      option: options.option ?? "weights.openpose",
    });
    return OpenPoseDetector.fromStore(store, options);
  }

  static async fromStore(store: WeightStore, options: OpenPoseOptions = {}): Promise<OpenPoseDetector> {
    return new OpenPoseDetector(
      await AnnotatorNet.create(store, buildBodyPose, {
        expected: "OpenPose body weights (body_pose_model.pth)",
        ...options,
        inputChannels: 3,
      }),
    );
  }

  /**
   * PAFs (38) and heat-maps (19) at the image size, as the release computes them at scale 0.5, and
   * the network's own outputs (`[1, 38 | 19, H/8, W/8]` of the padded input).
   */
  async maps(
    img: Image,
  ): Promise<{ pafs: PlanarMaps; heatmaps: PlanarMaps; raw: { pafs: HostTensor; heatmaps: HostTensor } }> {
    const rgb = toRgb(img);
    const cv = await loadCv();
    const scale = (0.5 * 368) / rgb.height;
    const bgr = image(rgb.width, rgb.height, 3, rgb.data.slice());
    for (let i = 0; i < bgr.data.length; i += 3) {
      const r = bgr.data[i] ?? 0;
      bgr.data[i] = bgr.data[i + 2] ?? 0;
      bgr.data[i + 2] = r;
    }
    const small = withMats(cv, "resize", (track) => {
      const src = imageToMat(cv, track, bgr);
      const dst = track(new cv.Mat());
      cv.resize(src, dst, new cv.Size(0, 0), scale, scale, cv.INTER_CUBIC);
      return matToImage(dst);
    });
    const sw = small.width;
    const sh = small.height;
    const pw = sw % 8 === 0 ? 0 : 8 - (sw % 8);
    const ph = sh % 8 === 0 ? 0 : 8 - (sh % 8);
    const W = sw + pw;
    const H = sh + ph;
    const plane = W * H;
    const input = new Float32Array(3 * plane);
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++)
        for (let c = 0; c < 3; c++) {
          const v = y < sh && x < sw ? (small.data[(y * sw + x) * 3 + c] ?? 0) : 128;
          input[c * plane + y * W + x] = Math.fround(v / 256) - 0.5;
        }
    const [paf, heat] = await this.net.run(tensor("float32", [1, 3, H, W], input));
    const upsample = (t: HostTensor | undefined): PlanarMaps => {
      const [, c = 0, h = 0, w = 0] = t?.shape ?? [];
      const src = t?.data as Float32Array;
      const out = new Float32Array(c * rgb.width * rgb.height);
      for (let ch = 0; ch < c; ch++) {
        const big = resizeFloatsSync(
          cv,
          src.subarray(ch * h * w, (ch + 1) * h * w),
          { width: w, height: h, channels: 1 },
          { width: 8 * w, height: 8 * h, interpolation: "cubic" },
        );
        const crop = new Float32Array(sw * sh);
        for (let y = 0; y < sh; y++) crop.set(big.subarray(y * 8 * w, y * 8 * w + sw), y * sw);
        out.set(
          resizeFloatsSync(
            cv,
            crop,
            { width: sw, height: sh, channels: 1 },
            { width: rgb.width, height: rgb.height, interpolation: "cubic" },
          ),
          ch * rgb.width * rgb.height,
        );
      }
      return { width: rgb.width, height: rgb.height, channels: c, data: out };
    };
    if (!paf || !heat)
      throw new InvalidArgumentError("network outputs", "PAFs and heat-maps", "fewer outputs");
    return { pafs: upsample(paf), heatmaps: upsample(heat), raw: { pafs: paf, heatmaps: heat } };
  }

  /** Keypoints and people of an RGB frame. */
  async estimate(img: Image): Promise<BodyPose> {
    const { pafs, heatmaps } = await this.maps(img);
    const peaks = findPeaks(heatmaps);
    const candidates = peaks.flat();
    const people = assemblePeople(connectLimbs(peaks, pafs, img.height), candidates);
    return { candidates, people };
  }

  /** The OpenPose control map: the coloured skeleton on black, 3 channels. */
  async detect(img: Image): Promise<Image> {
    const pose = await this.estimate(img);
    return drawBodyPose(img.width, img.height, pose.candidates, pose.people);
  }

  async release(): Promise<void> {
    await this.net.release();
  }
}

/** Checks a planar map set's data length (for callers building maps by hand). */
export function checkPlanarMaps(name: string, m: PlanarMaps): void {
  if (m.data.length !== m.width * m.height * m.channels)
    throw new InvalidArgumentError(name, `${m.width * m.height * m.channels} floats`, m.data.length);
}
