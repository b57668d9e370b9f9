/**
 * The local-condition annotators' deterministic parts, golden-free: M-LSD line decoding on a
 * synthetic tp-map, HED side-output fusion, OpenPose peaks / limbs / people on synthetic maps,
 * segmentation painting, and the `computeCondition` entry point's errors. The networks themselves
 * (random weights in the released key layouts) are in annotators-nets.test.ts.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cannySync } from "../src/control/canny.js";
import {
  ADE20K_PALETTE,
  CONDITION_NAMES,
  assemblePeople,
  computeCondition,
  connectLimbs,
  decodeMlsdLines,
  drawBodyPose,
  drawLines,
  findPeaks,
  fuseHedSides,
  gaussianFilter,
  labelsFromLogits,
  paintLabels,
  computeConditionAt,
  stackLocalConditions,
} from "../src/control/annotators/index.js";
import { bilinearResizeTorch, toRgb } from "../src/control/annotators/common.js";
import { loadCv } from "../src/control/opencv.js";
import { FileNotFoundError, InvalidArgumentError } from "../src/errors.js";
import { GraphBuilder } from "../src/graph/builder.js";
import * as op from "../src/graph/ops/index.js";
import { encodeModelInline } from "../src/graph/serialize.js";
import { image } from "../src/image.js";
import { tensor } from "../src/tensor.js";

const logit = (p: number): number => Math.log(p / (1 - p));

let tmp = "";
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "annotators-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("M-LSD line decoding", () => {
  /** A [9, h, w] tp-map: centre logits very low everywhere except the given centres. */
  function tpMap(w: number, h: number, centres: { x: number; y: number; p: number; d: number[] }[]) {
    const plane = w * h;
    const data = new Float32Array(9 * plane).fill(0);
    data.fill(-20, 0, plane);
    for (const c of centres) {
      data[c.y * w + c.x] = logit(c.p);
      c.d.forEach((v, k) => (data[(1 + k) * plane + c.y * w + c.x] = v));
    }
    return tensor("float32", [1, 9, h, w], data);
  }

  it("decodes a known horizontal line and draws it at twice the tp-map scale", async () => {
    // Centre (8, 5) on a 16x12 tp-map, end points 4 px left and right: line (4,5)-(12,5) in tp pixels.
    const map = tpMap(16, 12, [{ x: 8, y: 5, p: 0.9, d: [-4, 0, 4, 0] }]);
    const lines = decodeMlsdLines(map);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ x1: 8, y1: 10, x2: 24, y2: 10 });
    expect(lines[0]?.score).toBeCloseTo(0.9, 5);
    const drawn = await drawLines(32, 24, lines);
    expect(drawn.channels).toBe(1);
    for (let y = 0; y < 24; y++)
      for (let x = 0; x < 32; x++) {
        const on = y === 10 && x >= 8 && x <= 24;
        expect(drawn.data[y * 32 + x], `(${x}, ${y})`).toBe(on ? 255 : 0);
      }
  });

  it("suppresses non-maxima in a 3x3 window and applies the score and distance thresholds", () => {
    const map = tpMap(16, 16, [
      { x: 4, y: 4, p: 0.9, d: [-3, -3, 3, 3] }, // kept
      { x: 5, y: 4, p: 0.8, d: [-3, 0, 3, 0] }, // neighbour of a stronger centre: suppressed
      { x: 12, y: 12, p: 0.05, d: [-3, 0, 3, 0] }, // score below 0.1
      { x: 12, y: 4, p: 0.7, d: [0, 0, 0.05, 0] }, // length 0.05 <= 0.1
      { x: 4, y: 12, p: 0.6, d: [0, -2, 0, 2] }, // kept
    ]);
    const lines = decodeMlsdLines(map);
    expect(lines.map((l) => [l.x1, l.y1, l.x2, l.y2])).toEqual([
      [2, 2, 14, 14],
      [8, 20, 8, 28],
    ]);
    // Thresholds and the image/input ratio are options.
    expect(decodeMlsdLines(map, { scoreThreshold: 0.65 })).toHaveLength(1);
    expect(decodeMlsdLines(map, { distanceThreshold: 0 }).length).toBe(3);
    const scaled = decodeMlsdLines(map, { ratio: { x: 0.5, y: 2 } });
    expect(scaled[0]).toMatchObject({ x1: 1, y1: 4, x2: 7, y2: 28 });
  });

  it("gives a black map when no centre passes", async () => {
    const lines = decodeMlsdLines(tpMap(8, 8, []));
    expect(lines).toEqual([]);
    const drawn = await drawLines(16, 16, lines);
    expect(drawn.data.every((v) => v === 0)).toBe(true);
  });

  it("rejects a map without the five decoding channels", () => {
    expect(() => decodeMlsdLines(tensor("float32", [1, 4, 8, 8]))).toThrow(InvalidArgumentError);
  });
});

describe("HED side-output fusion", () => {
  const constant = (w: number, h: number, v: number) => ({
    width: w,
    height: h,
    data: new Float32Array(w * h).fill(v),
  });
  const sig = (v: number): number => 1 / (1 + Math.exp(-v));

  it("apache2: sigmoid of the mean of the five resized side maps", async () => {
    const sides = [1, -2, 3, 0.5, -1].map((v, k) => constant(16 >> k, 8 >> k || 1, v));
    const p = await fuseHedSides(sides, 16, 8, { variant: "apache2" });
    const expected = sig((1 - 2 + 3 + 0.5 - 1) / 5);
    expect(p).toHaveLength(128);
    for (const v of p) expect(v).toBeCloseTo(expected, 6);
  });

  it("bsds500: the learned 1x1 combine of the upsampled sides, then a sigmoid", async () => {
    const sides = [1, -2, 3, 0.5, -1].map((v, k) => constant(16 >> k, 16 >> k, v));
    const weight = [0.2, 0.1, -0.3, 0.4, 0.5];
    const p = await fuseHedSides(sides, 16, 16, {
      variant: "bsds500",
      combineWeight: weight,
      combineBias: 0.25,
    });
    const expected = sig(0.2 * 1 + 0.1 * -2 + -0.3 * 3 + 0.4 * 0.5 + 0.5 * -1 + 0.25);
    for (const v of p) expect(v).toBeCloseTo(expected, 6);
  });

  it("bsds500 upsamples like torch bilinear (align_corners=False)", async () => {
    // [a, b] at 1x2 -> width 4: a, 0.75a + 0.25b, 0.25a + 0.75b, b.
    expect([...bilinearResizeTorch([2, 6], 2, 1, 4, 1)]).toEqual([2, 3, 5, 6]);
    const side = { width: 2, height: 1, data: Float32Array.of(2, 6) };
    const zero = { width: 1, height: 1, data: Float32Array.of(0) };
    const p = await fuseHedSides([zero, side, zero, zero, zero], 4, 1, {
      variant: "bsds500",
      combineWeight: [0, 1, 0, 0, 0],
      combineBias: 0,
    });
    expect([...p].map((v) => Number(v.toFixed(6)))).toEqual(
      [2, 3, 5, 6].map((v) => Number(sig(v).toFixed(6))),
    );
  });

  it("needs five sides", async () => {
    await expect(fuseHedSides([], 4, 4, { variant: "apache2" })).rejects.toThrow(InvalidArgumentError);
  });
});

describe("OpenPose post-processing", () => {
  const W = 64;
  const H = 64;

  /** 19 heat-map planes with a Gaussian blob (peak 1) for each given part. */
  function heatmaps(parts: Record<number, [number, number]>) {
    const data = new Float32Array(19 * W * H);
    for (const [part, [px, py]] of Object.entries(parts))
      for (let y = 0; y < H; y++)
        for (let x = 0; x < W; x++)
          data[Number(part) * W * H + y * W + x] = Math.exp(-((x - px) ** 2 + (y - py) ** 2) / (2 * 2 ** 2));
    return { width: W, height: H, channels: 19, data };
  }

  it("gaussianFilter keeps a constant map constant and spreads an impulse with sigma 3", () => {
    const flat = gaussianFilter(new Float32Array(20 * 10).fill(2), 20, 10, 3);
    for (const v of flat) expect(v).toBeCloseTo(2, 12);
    const impulse = new Float32Array(41 * 41);
    impulse[20 * 41 + 20] = 1;
    const g = gaussianFilter(impulse, 41, 41, 3);
    const k = (d: number): number => Math.exp(-(d * d) / 18);
    let norm = 0;
    for (let d = -12; d <= 12; d++) norm += k(d);
    expect(g[20 * 41 + 20]).toBeCloseTo(1 / (norm * norm), 12);
    expect(g[20 * 41 + 23]).toBeCloseTo(k(3) / (norm * norm), 12);
    expect(g[20 * 41 + 33]).toBe(0); // outside the radius-12 kernel
  });

  it("finds one peak per blob at its centre, with the unblurred score, ids across parts", () => {
    const peaks = findPeaks(heatmaps({ 0: [10, 20], 1: [30, 40], 5: [50, 12] }));
    expect(peaks).toHaveLength(18);
    expect(peaks[0]).toEqual([{ x: 10, y: 20, score: 1, id: 0 }]);
    expect(peaks[1]).toEqual([{ x: 30, y: 40, score: 1, id: 1 }]);
    expect(peaks[5]).toEqual([{ x: 50, y: 12, score: 1, id: 2 }]);
    expect(peaks.filter((p) => p.length === 0)).toHaveLength(15);
    // Below the 0.1 threshold: nothing.
    const weak = heatmaps({ 3: [32, 32] });
    for (let i = 0; i < weak.data.length; i++) weak.data[i] = (weak.data[i] ?? 0) * 0.05;
    expect(findPeaks(weak)[3]).toEqual([]);
  });

  it("connects limbs along the part affinity fields and assembles one person", async () => {
    // Nose (part 0), neck (1), right shoulder (2), left shoulder (5).
    const at: Record<number, [number, number]> = { 0: [32, 10], 1: [32, 24], 2: [20, 26], 5: [44, 26] };
    const peaks = findPeaks(heatmaps(at));
    const pafs = { width: W, height: H, channels: 38, data: new Float32Array(38 * W * H) };
    // A uniform field of the unit vector A -> B in each limb's channel pair (mapIdx - 19).
    const field = (cx: number, cy: number, a: number, b: number): void => {
      const [ax, ay] = at[a] ?? [0, 0];
      const [bx, by] = at[b] ?? [0, 0];
      const n = Math.hypot(bx - ax, by - ay);
      pafs.data.fill((bx - ax) / n, cx * W * H, (cx + 1) * W * H);
      pafs.data.fill((by - ay) / n, cy * W * H, (cy + 1) * W * H);
    };
    field(12, 13, 1, 2); // limb [2, 3]: neck -> right shoulder, mapIdx [31, 32]
    field(20, 21, 1, 5); // limb [2, 6]: neck -> left shoulder, mapIdx [39, 40]
    field(28, 29, 1, 0); // limb [2, 1]: neck -> nose, mapIdx [47, 48]
    const connections = connectLimbs(peaks, pafs, H);
    expect(connections[0]).toMatchObject([{ idA: 1, idB: 2, i: 0, j: 0 }]);
    expect(connections[0]?.[0]?.score).toBeCloseTo(1, 6);
    expect(connections[1]?.[0]?.score).toBeCloseTo(1, 6);
    expect(connections[12]?.[0]).toMatchObject({ idA: 1, idB: 0 });
    expect(connections[2]).toBeNull(); // right elbow missing
    const candidates = peaks.flat();
    const people = assemblePeople(connections, candidates);
    expect(people).toHaveLength(1);
    const person = people[0] ?? [];
    expect(person.slice(0, 6)).toEqual([0, 1, 2, -1, -1, 3]);
    expect(person[19]).toBe(4);
    expect(person[18]).toBeCloseTo(4 + 3, 6); // 4 part scores + 3 limb scores

    // A field pointing the wrong way connects nothing; three parts alone are not a person.
    pafs.data.fill(0);
    field(12, 13, 2, 1);
    expect(connectLimbs(peaks, pafs, H)[0]).toEqual([]);

    const canvas = await drawBodyPose(W, H, candidates, people);
    expect(canvas.channels).toBe(3);
    const px = (x: number, y: number) => [...canvas.data.subarray((y * W + x) * 3, (y * W + x) * 3 + 3)];
    expect(px(0, 63)).toEqual([0, 0, 0]);
    expect(px(32, 17).some((v) => v > 0)).toBe(true); // on the neck-nose limb
    // The left shoulder keypoint (colour 5 = [85, 255, 0]) lies under no limb drawn after it but its own.
    expect(px(44, 29)).toEqual([85, 255, 0]);
  });
});

describe("segmentation painting", () => {
  it("arg-maxes upsampled logits and paints the ADE20k palette", () => {
    expect(ADE20K_PALETTE).toHaveLength(450);
    expect(ADE20K_PALETTE.slice(0, 6)).toEqual([120, 120, 120, 180, 120, 120]);
    // 3 classes on a 1x2 map: left favours class 2, right class 0.
    const logits = Float32Array.of(5, 9, 0, 0, 9, 1);
    const labels = labelsFromLogits(logits, [1, 3, 1, 2], 4, 2);
    expect([...labels]).toEqual([2, 2, 0, 0, 2, 2, 0, 0]);
    const painted = paintLabels(4, 2, labels);
    expect([...painted.data.subarray(0, 3)]).toEqual([6, 230, 230]);
    expect([...painted.data.subarray(9, 12)]).toEqual([120, 120, 120]);
    expect(() => labelsFromLogits(logits, [3, 1, 2], 4, 2)).toThrow(InvalidArgumentError);
  });
});

describe("depth and seg through ONNX models", () => {
  it("depth: a gradient frame gives a min-max normalised ramp (near = bright), 3 channels", async () => {
    // A stand-in depth network: the channel mean of its input, [1, 3, h, w] -> [1, 1, h, w].
    const g = new GraphBuilder();
    const x = g.input("pixel_values", "float32", [1, 3, "h", "w"]);
    g.output(op.ReduceMean(g, x, [1], { keepdims: true }), "depth");
    const path = join(tmp, "depth.onnx");
    await writeFile(path, await encodeModelInline(g));
    const ramp = image(
      64,
      32,
      3,
      Uint8Array.from({ length: 64 * 32 * 3 }, (_, i) => (Math.floor(i / 3) % 64) * 4),
    );
    const map = await computeCondition("depth", ramp, { weights: { depth: path } });
    expect([map.width, map.height, map.channels]).toEqual([64, 32, 3]);
    for (let px = 0; px < 64; px++) {
      // (d - min) / (max - min) * 255, truncated; d is affine in x.
      expect(map.data[3 * (5 * 64 + px)], `x=${px}`).toBe(Math.floor((px / 63) * 255 + 1e-9));
      expect(map.data[3 * (5 * 64 + px) + 2]).toBe(map.data[3 * (5 * 64 + px)]);
    }
  });

  it("seg: logits arg-maxed and painted; the network sees BGR as in the release", async () => {
    // A stand-in segmentor: 1x1 conv, class k = input channel k (k < 3), class 3 never wins.
    const g = new GraphBuilder();
    const x = g.input("input", "float32", [1, 3, "h", "w"]);
    const w = g.constant(
      tensor("float32", [4, 3, 1, 1], Float32Array.of(1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0)),
    );
    const b = g.constant(tensor("float32", [4], Float32Array.of(0, 0, 0, -100)));
    g.output(op.Conv(g, x, w, b), "logits");
    const path = join(tmp, "seg.onnx");
    await writeFile(path, await encodeModelInline(g));
    const red = image(
      32,
      16,
      3,
      Uint8Array.from({ length: 32 * 16 * 3 }, (_, i) => (i % 3 === 0 ? 255 : 0)),
    );
    const map = await computeCondition("seg", red, { weights: { seg: path } });
    expect([map.width, map.height, map.channels]).toEqual([32, 16, 3]);
    // Fed as BGR, red lands in channel 2 -> class 2 -> palette [6, 230, 230].
    for (let i = 0; i < 32 * 16; i++) expect([...map.data.subarray(3 * i, 3 * i + 3)]).toEqual([6, 230, 230]);
  });
});

describe("computeCondition", () => {
  const frame = image(
    32,
    24,
    3,
    Uint8Array.from({ length: 32 * 24 * 3 }, (_, i) => (i % 96 > 40 ? 220 : 10)),
  );

  it("lists the seven conditions in Uni-ControlNet's channel order", () => {
    expect(CONDITION_NAMES).toEqual(["canny", "mlsd", "hed", "sketch", "openpose", "depth", "seg"]);
  });

  it("canny: cv2.Canny(rgb, 100, 200) replicated to three channels", async () => {
    const map = await computeCondition("canny", frame);
    const edges = cannySync(await loadCv(), frame, { threshold1: 100, threshold2: 200 });
    expect(map.channels).toBe(3);
    expect(edges.data.some((v) => v === 255)).toBe(true);
    for (let i = 0; i < edges.data.length; i++) {
      expect(map.data[3 * i]).toBe(edges.data[i]);
      expect(map.data[3 * i + 2]).toBe(edges.data[i]);
    }
  });

  it("an unknown name names the valid ones", async () => {
    const error = await computeCondition("depht", frame).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(String((error as Error).message)).toContain("canny, mlsd, hed, sketch, openpose, depth, seg");
  });

  it("a network condition without its weight file names the option to pass", async () => {
    for (const name of ["mlsd", "hed", "sketch", "openpose", "depth", "seg"] as const) {
      const error = await computeCondition(name, frame).catch((e: unknown) => e);
      expect(error, name).toBeInstanceOf(InvalidArgumentError);
      expect(String((error as Error).message), name).toContain(`weights.${name}`);
    }
    const flagged = await computeCondition("openpose", frame, {
      optionNames: { openpose: "--openpose" },
    }).catch((e: unknown) => e);
    expect(String((flagged as Error).message)).toContain("--openpose");
    expect(String((flagged as Error).message)).toContain("body_pose_model.pth");
    // Sketch needs HED too: with only the sketch file, the message asks for the HED file.
    const sketch = await computeCondition("sketch", frame, {
      weights: { sketch: join(tmp, "none.pth") },
    }).catch((e: unknown) => e);
    expect(sketch).toBeInstanceOf(FileNotFoundError);
  });

  it("a missing weight file is a FileNotFoundError naming the option", async () => {
    const error = await computeCondition("hed", frame, {
      weights: { hed: join(tmp, "ControlNetHED.pth") },
      optionNames: { hed: "--hed" },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FileNotFoundError);
    expect(String((error as Error).message)).toContain("--hed");
  });

  it("HWC3: RGBA is composited on white, gray replicated", () => {
    const rgba = image(1, 1, 4, Uint8Array.of(100, 0, 255, 128));
    // color * a + 255 * (1 - a) in float32 with a = float32(128 / 255) = 0.50196081 (a hair above
    // 128 / 255), so the white part is 126.9999924 and truncates to 126, not 127.
    expect([...toRgb(rgba).data]).toEqual([177, 126, 255]);
    expect([...toRgb(image(1, 1, 1, Uint8Array.of(7))).data]).toEqual([7, 7, 7]);
  });

  it("computeConditionAt resizes the source to the condition size first (INTER_LINEAR)", async () => {
    const map = await computeConditionAt("canny", frame, 64, 48);
    expect([map.width, map.height, map.channels]).toEqual([64, 48, 3]);
    await expect(computeConditionAt("lines", frame, 64, 48)).rejects.toThrow(InvalidArgumentError);
  });
});

describe("stackLocalConditions", () => {
  it("stacks the maps in Uni-ControlNet's channel order as uint8 / 255, zeros when absent", () => {
    const hed = image(
      4,
      2,
      1,
      Uint8Array.from({ length: 8 }, (_, i) => i * 30),
    );
    const pose = image(
      4,
      2,
      3,
      Uint8Array.from({ length: 24 }, (_, i) => 255 - i),
    );
    const t = stackLocalConditions({ hed, openpose: pose }, 4, 2);
    expect(t.shape).toEqual([1, 21, 2, 4]);
    const at = (c: number, i: number): number => t.data[c * 8 + i] ?? NaN;
    // hed is group 2 (channels 6..8), replicated; openpose group 4 (channels 12..14), interleaved HWC -> CHW.
    for (let i = 0; i < 8; i++) {
      for (const c of [6, 7, 8]) expect(at(c, i)).toBe(Math.fround((i * 30) / 255));
      for (let c = 0; c < 3; c++) expect(at(12 + c, i)).toBe(Math.fround((255 - (3 * i + c)) / 255));
    }
    for (const c of [0, 1, 2, 3, 4, 5, 9, 10, 11, 15, 16, 17, 18, 19, 20])
      for (let i = 0; i < 8; i++) expect(at(c, i)).toBe(0);
    expect(() => stackLocalConditions({ hed: image(2, 2, 1) }, 4, 2)).toThrow(InvalidArgumentError);
    expect(() => stackLocalConditions({ midas: hed } as never, 4, 2)).toThrow(InvalidArgumentError);
  });
});
