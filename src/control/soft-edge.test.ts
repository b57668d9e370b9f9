import { describe, expect, it } from "vitest";
import { image } from "../image.js";
import { writeTinyConvModel } from "../../test/helpers/tiny-onnx.js";
import { SoftEdgeDetector } from "./soft-edge.js";

describe("SoftEdgeDetector", () => {
  const img = image(
    8,
    8,
    3,
    new Uint8Array(8 * 8 * 3).map((_, i) => (i % 3 === 0 ? 2 : i % 3 === 1 ? 102 : 0)),
  );

  it("HED: 0..255 input, mean of all side outputs, then sigmoid", async () => {
    const model = await writeTinyConvModel({
      outputs: [
        { name: "side1", weights: [1, 0, 0], bias: 0 },
        { name: "side2", weights: [0, 0, 1], bias: -1 },
      ],
    });
    const hed = await SoftEdgeDetector.create(model, { preset: "hed" });
    const map = await hed.detect(img);
    const expected = 1 / (1 + Math.exp(-(2 + -1) / 2));
    for (const v of map.data) expect(v).toBeCloseTo(expected, 5);
    const edges = await hed.detectImage(img);
    expect(edges.channels).toBe(1);
    expect(edges.data.every((v) => v === Math.floor(expected * 255))).toBe(true);
    await hed.release();
  });

  it("PiDiNet: 0..1 input, last output as is, clipped to [0, 1]", async () => {
    const model = await writeTinyConvModel({
      outputs: [
        { name: "early", weights: [9, 9, 9], bias: 9 },
        { name: "final", weights: [0, 0.5, 0], bias: 0.1 },
      ],
    });
    const pidi = await SoftEdgeDetector.create(model, { preset: "pidinet" });
    const map = await pidi.detect(img);
    for (const v of map.data) expect(v).toBeCloseTo(0.5 * (102 / 255) + 0.1, 5);
    const loud = await SoftEdgeDetector.create(model, { preset: "pidinet", combine: "mean" });
    expect((await loud.detect(img)).data.every((v) => v === 1)).toBe(true);
    await pidi.release();
    await loud.release();
  });
});
