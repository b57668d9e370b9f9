import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { BackendError, FileNotFoundError, SessionInputError } from "../errors.js";
import { image, type Image } from "../image.js";
import { writeTinyConvModel } from "../../test/helpers/tiny-onnx.js";
import { DepthEstimator, normalizeDepthMaps } from "./depth.js";
import { IMAGENET_MEAN, IMAGENET_STD } from "./model-input.js";

const W: readonly [number, number, number] = [1, 2, 3];
const BIAS = 0.5;

function expectedDepth(img: Image, k: number): number {
  let d = BIAS;
  for (let c = 0; c < 3; c++)
    d +=
      (W[c] ?? 0) * (((img.data[3 * k + c] ?? 0) / 255 - (IMAGENET_MEAN[c] ?? 0)) / (IMAGENET_STD[c] ?? 1));
  return d;
}

function gradient(width: number, height: number, shift: number): Image {
  const data = new Uint8Array(width * height * 3);
  for (let k = 0; k < width * height; k++) {
    data[3 * k] = (k * 7 + shift) % 256;
    data[3 * k + 1] = (k * 3) % 256;
    data[3 * k + 2] = (255 - k - shift) & 255;
  }
  return image(width, height, 3, data);
}

describe("DepthEstimator", () => {
  let dynamicModel = "";
  let fixedModel = "";
  beforeAll(async () => {
    dynamicModel = await writeTinyConvModel({
      outputs: [{ name: "predicted_depth", weights: W, bias: BIAS }],
    });
    fixedModel = await writeTinyConvModel({
      outputs: [{ name: "depth", weights: W, bias: BIAS }],
      fixedSize: [14, 14],
    });
  });

  it("feeds ImageNet-normalised NCHW input and returns the model's map at image size", async () => {
    const est = await DepthEstimator.create(dynamicModel, { preset: "depth-anything", size: 14 });
    const img = gradient(28, 14, 0);
    const map = await est.estimate(img);
    expect([map.width, map.height]).toEqual([28, 14]);
    for (let k = 0; k < 28 * 14; k++) expect(map.data[k]).toBeCloseTo(expectedDepth(img, k), 4);
    await est.release();
  });

  it("stretches the input to a graph's fixed size", async () => {
    const est = await DepthEstimator.create(fixedModel, { preset: "dpt" });
    const flat = image(40, 20, 3, new Uint8Array(40 * 20 * 3).fill(128));
    const map = await est.estimate(flat);
    expect([map.width, map.height]).toEqual([40, 20]);
    const value = BIAS + (1 + 2 + 3) * ((128 / 255 - 0.5) / 0.5);
    for (const v of map.data) expect(v).toBeCloseTo(value, 4);
    await est.release();
  });

  it("normalises per frame or over the clip", async () => {
    const est = await DepthEstimator.create(dynamicModel, { size: 14 });
    const frames = [gradient(14, 14, 0), gradient(14, 14, 40)];
    const perFrame = await est.estimateClip(frames, { normalization: "frame" });
    const clip = await est.estimateClip(frames, { normalization: "clip" });
    for (const f of perFrame) expect([Math.min(...f.data), Math.max(...f.data)]).toEqual([0, 255]);
    expect(Math.min(...clip.flatMap((f) => [...f.data]))).toBe(0);
    expect(Math.max(...clip.flatMap((f) => [...f.data]))).toBe(255);
    expect(clip.some((f) => Math.min(...f.data) > 0 || Math.max(...f.data) < 255)).toBe(true);
    await est.release();
  });

  it("maps with floor((d - lo) / (hi - lo) * 255) and zeros for a constant map", () => {
    const [a, b] = normalizeDepthMaps(
      [
        { width: 3, height: 1, data: Float32Array.from([0, 1, 2]) },
        { width: 3, height: 1, data: Float32Array.from([4, 4, 4]) },
      ],
      "clip",
    );
    expect(Array.from(a!.data)).toEqual([0, 63, 127]);
    expect(Array.from(b!.data)).toEqual([255, 255, 255]);
    const [c] = normalizeDepthMaps([{ width: 2, height: 1, data: Float32Array.from([3, 3]) }], "frame");
    expect(Array.from(c!.data)).toEqual([0, 0]);
  });

  it("reports a missing model, a file that is not ONNX and an unknown input", async () => {
    const dir = await mkdtemp(join(tmpdir(), "steadyframe-depth-"));
    const missing = await DepthEstimator.create(join(dir, "none.onnx")).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(FileNotFoundError);
    expect((missing as FileNotFoundError).message).toContain("ONNX model not found");
    const junk = join(dir, "junk.onnx");
    await writeFile(junk, "definitely not protobuf");
    const broken = await DepthEstimator.create(junk).catch((e: unknown) => e);
    expect(broken).toBeInstanceOf(BackendError);
    expect((broken as BackendError).code).toBe("E_BACKEND");
    expect((broken as BackendError).message).toContain("onnxruntime-node");
    const wrongInput = await DepthEstimator.create(dynamicModel, { inputName: "image" }).catch(
      (e: unknown) => e,
    );
    expect(wrongInput).toBeInstanceOf(SessionInputError);
    expect((wrongInput as SessionInputError).code).toBe("E_SESSION_INPUT");
    expect((wrongInput as SessionInputError).message).toContain('no input named "image"');
  });
});
