/**
 * The annotator networks built from weight files in the released key layouts (HED Apache-2 and
 * BSDS500, M-LSD large, the sketch-simplification GAN, OpenPose body), generated at test time with
 * random or hand-set values (no real weights): loading through the safe unpickler / safetensors,
 * every wrong key reported together, output shapes / ranges / dtypes, closed-form outputs for
 * hand-set weights, and the PyTorch layers nn/ lacks (BatchNorm2d, MaxPool2d, ConvTranspose2d)
 * against naive references.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HedDetector } from "../src/control/annotators/hed.js";
import { computeCondition } from "../src/control/annotators/index.js";
import { MlsdDetector } from "../src/control/annotators/mlsd.js";
import { BatchNorm2d, ConvTranspose2d, maxPool2d } from "../src/control/annotators/net.js";
import { OpenPoseDetector } from "../src/control/annotators/openpose.js";
import { SketchSimplifier } from "../src/control/annotators/sketch.js";
import { MissingWeightsError } from "../src/errors.js";
import { GraphBuilder } from "../src/graph/builder.js";
import { image, type Image } from "../src/image.js";
import { mapStore } from "../src/nn/weight-store.js";
import { WeightScope } from "../src/nn/weights.js";
import { type HostTensor, tensor, toFloat16 } from "../src/tensor.js";
import { writeSafetensors } from "../src/weights/safetensors.js";
import {
  bodyPoseLayout,
  fillLayout,
  hedApache2Layout,
  hedBsds500Layout,
  mlsdLargeLayout,
  sketchLayout,
  writeStateDictPth,
} from "./helpers/annotator-weights.js";
import { randomTensor } from "./helpers/graph-reference.js";
import { expectClose, runGraph } from "./helpers/run-graph.js";

let tmp = "";
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "annotator-nets-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** A smooth RGB test frame with an edge. */
function frame(width: number, height: number): Image {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const i = 3 * (y * width + x);
      data[i] = x < width / 2 ? 30 : 220;
      data[i + 1] = (y * 255) / height;
      data[i + 2] = ((x + y) * 7) % 256;
    }
  return image(width, height, 3, data);
}

const sig = (v: number): number => 1 / (1 + Math.exp(-v));
const threads = { intraOpNumThreads: 2 };

describe("PyTorch layers for the annotators", () => {
  const f32 = (t: HostTensor | undefined): Float32Array => t?.data as Float32Array;

  it("BatchNorm2d (eval), MaxPool2d (floor) and ConvTranspose2d match naive references", async () => {
    const [n, c, h, w] = [1, 3, 5, 7];
    const x = randomTensor([n, c, h, w], 1);
    const weights = {
      "bn.weight": randomTensor([c], 2),
      "bn.bias": randomTensor([c], 3),
      "bn.running_mean": randomTensor([c], 4),
      "bn.running_var": tensor("float32", [c], Float32Array.of(0.5, 1, 2)),
      "up.weight": randomTensor([c, 2, 4, 4], 5),
      "up.bias": randomTensor([2], 6),
    };
    const g = new GraphBuilder();
    const scope = WeightScope.bind(g, mapStore(weights));
    const input = g.input("x", "float32", [n, c, h, w]);
    const bn = new BatchNorm2d(scope.at("bn"), c).forward(input);
    const pooled = maxPool2d(g, input, 2, 2);
    const up = new ConvTranspose2d(scope.at("up"), {
      inChannels: c,
      outChannels: 2,
      kernelSize: 4,
      stride: 2,
      padding: 1,
    }).forward(input);
    expect(pooled.shape).toEqual([1, 3, 2, 3]);
    expect(up.shape).toEqual([1, 2, 10, 14]);
    scope.finish();
    g.output(bn, "bn");
    g.output(pooled, "pool");
    g.output(up, "up");
    const out = await runGraph(g, { x });
    const xv = f32(x);
    const at = (ci: number, y: number, xx: number): number => xv[ci * h * w + y * w + xx] ?? 0;

    const bnRef = new Float32Array(c * h * w);
    for (let ci = 0; ci < c; ci++) {
      const s =
        (f32(weights["bn.weight"])[ci] ?? 0) / Math.sqrt((f32(weights["bn.running_var"])[ci] ?? 0) + 1e-5);
      for (let i = 0; i < h * w; i++)
        bnRef[ci * h * w + i] =
          ((xv[ci * h * w + i] ?? 0) - (f32(weights["bn.running_mean"])[ci] ?? 0)) * s +
          (f32(weights["bn.bias"])[ci] ?? 0);
    }
    expectClose(out["bn"], tensor("float32", [n, c, h, w], bnRef), { atol: 1e-5 });

    const poolRef = new Float32Array(c * 2 * 3);
    for (let ci = 0; ci < c; ci++)
      for (let y = 0; y < 2; y++)
        for (let xx = 0; xx < 3; xx++)
          poolRef[ci * 6 + y * 3 + xx] = Math.max(
            at(ci, 2 * y, 2 * xx),
            at(ci, 2 * y + 1, 2 * xx),
            at(ci, 2 * y, 2 * xx + 1),
            at(ci, 2 * y + 1, 2 * xx + 1),
          );
    expectClose(out["pool"], tensor("float32", [n, c, 2, 3], poolRef), { atol: 0 });

    // Transposed conv: every input pixel scatters w[ci, co] at (s*y - p + ky, s*x - p + kx).
    const [oh, ow] = [10, 14];
    const upRef = new Float32Array(2 * oh * ow);
    const wt = f32(weights["up.weight"]);
    for (let co = 0; co < 2; co++)
      upRef.fill(f32(weights["up.bias"])[co] ?? 0, co * oh * ow, (co + 1) * oh * ow);
    for (let ci = 0; ci < c; ci++)
      for (let y = 0; y < h; y++)
        for (let xx = 0; xx < w; xx++)
          for (let co = 0; co < 2; co++)
            for (let ky = 0; ky < 4; ky++)
              for (let kx = 0; kx < 4; kx++) {
                const oy = 2 * y - 1 + ky;
                const ox = 2 * xx - 1 + kx;
                if (oy < 0 || ox < 0 || oy >= oh || ox >= ow) continue;
                upRef[co * oh * ow + oy * ow + ox] =
                  (upRef[co * oh * ow + oy * ow + ox] ?? 0) +
                  at(ci, y, xx) * (wt[((ci * 2 + co) * 4 + ky) * 4 + kx] ?? 0);
              }
    expectClose(out["up"], tensor("float32", [n, 2, oh, ow], upRef), { atol: 1e-5 });
  });
});

describe("HED from ControlNetHED.pth / network-bsds500.pth", () => {
  it("the Apache-2 layout (37 tensors) loads from a .pth and gives a soft edge map at the image size", async () => {
    const layout = hedApache2Layout();
    expect(layout).toHaveLength(37);
    const path = join(tmp, "ControlNetHED.pth");
    await writeStateDictPth(path, fillLayout(layout, { seed: 3 }));
    const hed = await HedDetector.create(path, threads);
    try {
      expect(hed.variant).toBe("apache2");
      const img = frame(40, 24);
      const p = await hed.probabilities(img);
      expect([p.width, p.height]).toEqual([40, 24]);
      expect(p.data).toBeInstanceOf(Float32Array);
      expect(p.data.every((v) => v >= 0 && v <= 1)).toBe(true);
      const map = await hed.detect(img);
      expect([map.width, map.height, map.channels]).toEqual([40, 24, 1]);
      expect(new Set(map.data).size).toBeGreaterThan(1);
      const condition = await computeCondition("hed", img, { weights: { hed: path } });
      expect(condition.channels).toBe(3);
      for (let i = 0; i < map.data.length; i++) expect(condition.data[3 * i + 1]).toBe(map.data[i]);
    } finally {
      await hed.release();
    }
  });

  it("Apache-2: with zero convs the map is sigmoid(mean of the projection biases) everywhere", async () => {
    const biases = [1, -2, 3, 0.5, -1];
    const tensors = fillLayout(hedApache2Layout(), {
      value: (key) => {
        const m = /^block(\d)\.projection\.bias$/.exec(key);
        return m ? biases[Number(m[1]) - 1] : 0;
      },
    });
    const path = join(tmp, "hed-bias.pth");
    await writeStateDictPth(path, tensors);
    const hed = await HedDetector.create(path, threads);
    try {
      const map = await hed.detect(frame(24, 16));
      const expected = Math.trunc(sig(0.3) * 255);
      expect(expected).toBe(146);
      expect(map.data.every((v) => v === expected)).toBe(true);
    } finally {
      await hed.release();
    }
  });

  it("a float16 .safetensors copy is widened to float32 (same map)", async () => {
    const biases = [1, -2, 3, 0.5, -1];
    const tensors = new Map<string, HostTensor>();
    for (const [key, t] of fillLayout(hedApache2Layout(), {
      value: (key) => {
        const m = /^block(\d)\.projection\.bias$/.exec(key);
        return m ? biases[Number(m[1]) - 1] : 0;
      },
    }))
      tensors.set(key, toFloat16(t as HostTensor<"float32">));
    const path = join(tmp, "ControlNetHED.fp16.safetensors");
    await writeSafetensors(path, tensors);
    const hed = await HedDetector.create(path, threads);
    try {
      const map = await hed.detect(frame(16, 16));
      expect(map.data.every((v) => v === Math.trunc(sig(0.3) * 255))).toBe(true);
    } finally {
      await hed.release();
    }
  });

  it("BSDS500 (moduleVgg... keys, 38 tensors): the learned combine of the score biases", async () => {
    const layout = hedBsds500Layout();
    expect(layout).toHaveLength(38);
    const scoreBias: Record<string, number> = { One: 1, Two: -2, Thr: 3, Fou: 0.5, Fiv: -1 };
    const combine = [0.2, 0.1, -0.3, 0.4, 0.5];
    const tensors = fillLayout(layout, {
      value: (key) => {
        const s = /^moduleScore(\w+)\.bias$/.exec(key);
        if (s) return scoreBias[s[1] ?? ""];
        if (key === "moduleCombine.0.bias") return 0.25;
        return key === "moduleCombine.0.weight" ? undefined : 0;
      },
    });
    tensors.set("moduleCombine.0.weight", tensor("float32", [1, 5, 1, 1], Float32Array.from(combine)));
    const path = join(tmp, "network-bsds500.pth");
    await writeStateDictPth(path, tensors);
    const hed = await HedDetector.create(path, threads);
    try {
      expect(hed.variant).toBe("bsds500");
      const p = await hed.probabilities(frame(32, 16));
      const expected = sig(0.2 * 1 + 0.1 * -2 + -0.3 * 3 + 0.4 * 0.5 + 0.5 * -1 + 0.25);
      let worst = 0;
      for (const v of p.data) worst = Math.max(worst, Math.abs(v - expected));
      expect(worst).toBeLessThan(1e-6);
    } finally {
      await hed.release();
    }
  });

  it("a file with wrong keys lists every missing, unexpected and mis-shaped key at once", async () => {
    const tensors = fillLayout(hedApache2Layout());
    tensors.delete("block3.convs.1.bias");
    tensors.delete("block5.projection.weight");
    tensors.set("block6.convs.0.weight", tensor("float32", [1]));
    tensors.set("block1.projection.weight", tensor("float32", [1, 64, 3, 3]));
    const path = join(tmp, "hed-bad.pth");
    await writeStateDictPth(path, tensors);
    const error = await HedDetector.create(path).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MissingWeightsError);
    const e = error as MissingWeightsError;
    expect([...e.missing].sort()).toEqual(["block3.convs.1.bias", "block5.projection.weight"]);
    expect(e.unexpected).toEqual(["block6.convs.0.weight"]);
    expect(e.misshaped).toEqual([
      { key: "block1.projection.weight", expected: [1, 64, 1, 1], actual: [1, 64, 3, 3] },
    ]);
    expect(e.message).toContain(path);
  });
});

describe("M-LSD from mlsd_large_512_fp32.pth", () => {
  it("loads the released layout and returns the 9-channel tp-map at half the input size, then lines", async () => {
    const layout = mlsdLargeLayout();
    const path = join(tmp, "mlsd_large_512_fp32.pth");
    await writeStateDictPth(path, fillLayout(layout, { seed: 5 }));
    const mlsd = await MlsdDetector.create(path, threads);
    try {
      const img = frame(96, 64);
      const { map, width, height } = await mlsd.tpMap(img);
      expect([width, height]).toEqual([96, 64]);
      expect(map.dtype).toBe("float32");
      expect(map.shape).toEqual([1, 9, 32, 48]);
      expect((map.data as Float32Array).every(Number.isFinite)).toBe(true);
      const drawn = await mlsd.detect(img);
      expect([drawn.width, drawn.height, drawn.channels]).toEqual([96, 64, 1]);
      expect(drawn.data.every((v) => v === 0 || v === 255)).toBe(true);
      // A size that is not a multiple of 32 runs at the nearest multiples and maps back.
      const odd = await mlsd.tpMap(frame(70, 50));
      expect(odd.map.shape).toEqual([1, 9, 32, 32]);
      const oddMap = await mlsd.detect(frame(70, 50));
      expect([oddMap.width, oddMap.height]).toEqual([70, 50]);
    } finally {
      await mlsd.release();
    }
  });
});

describe("sketch simplification from model_gan (.safetensors copy)", () => {
  it("pads to multiples of 8, returns the map at the drawing size in 0..255", async () => {
    const path = join(tmp, "model_gan.safetensors");
    await writeSafetensors(path, fillLayout(sketchLayout(), { seed: 7 }));
    const sketch = await SketchSimplifier.create(path, threads);
    try {
      const drawing = image(
        30,
        21,
        1,
        Uint8Array.from({ length: 30 * 21 }, (_, i) => (i % 30 < 15 ? 255 : 0)),
      );
      const out = await sketch.simplify(drawing);
      expect([out.width, out.height, out.channels]).toEqual([30, 21, 1]);
      expect(out.data).toBeInstanceOf(Uint8Array);
    } finally {
      await sketch.release();
    }
  });
});

describe("OpenPose body from body_pose_model.pth", () => {
  it("loads the 184 tensors and returns PAFs and heat-maps at the image size (heat-maps ReLU'd)", async () => {
    const layout = bodyPoseLayout();
    expect(layout).toHaveLength(184);
    const path = join(tmp, "body_pose_model.pth");
    await writeStateDictPth(path, fillLayout(layout, { seed: 9 }));
    const pose = await OpenPoseDetector.create(path, threads);
    try {
      const img = frame(20, 40);
      const { pafs, heatmaps, raw } = await pose.maps(img);
      expect([pafs.width, pafs.height, pafs.channels]).toEqual([20, 40, 38]);
      expect([heatmaps.width, heatmaps.height, heatmaps.channels]).toEqual([20, 40, 19]);
      // Scale 0.5 * 368 / 40 = 4.6: 20x40 -> 92x184 (already multiples of 8), outputs at 1/8.
      expect(raw.pafs.shape).toEqual([1, 38, 23, 12]);
      expect(raw.heatmaps.shape).toEqual([1, 19, 23, 12]);
      // The release's no-ReLU list names Mconv7_stage6_L1 twice, so the final heat-map keeps its
      // ReLU; the PAF branch is signed.
      const heat = raw.heatmaps.data as Float32Array;
      expect(heat.every((v) => v >= 0)).toBe(true);
      expect(heat.some((v) => v > 0)).toBe(true);
      expect((raw.pafs.data as Float32Array).some((v) => v < 0)).toBe(true);
      const map = await pose.detect(img);
      expect([map.width, map.height, map.channels]).toEqual([20, 40, 3]);
    } finally {
      await pose.release();
    }
  });
});
