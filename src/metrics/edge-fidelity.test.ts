import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../errors.js";
import { image } from "../image.js";
import { square, verticalLine } from "../../test/helpers/synthetic-images.js";
import { canny } from "../control/canny.js";
import { clipEdgeFidelity, edgeF1 } from "./edge-fidelity.js";

describe("edgeF1", () => {
  it("counts a one-pixel shift as correct only within the tolerance", () => {
    const control = verticalLine(10, 5, 4);
    const shifted = verticalLine(10, 5, 5);
    expect(edgeF1(shifted, control, { tolerance: 1 })).toMatchObject({ precision: 1, recall: 1, f1: 1 });
    expect(edgeF1(shifted, control, { tolerance: 0 })).toMatchObject({ precision: 0, recall: 0, f1: 0 });
    expect(edgeF1(control, control, { tolerance: 0 }).mse).toBe(0);
  });

  it("computes precision and recall separately", () => {
    const control = verticalLine(10, 4, 2);
    const predicted = image(
      10,
      4,
      1,
      control.data.map((v, i) => (v > 0 || i % 10 === 8 ? 255 : 0)),
    );
    const r = edgeF1(predicted, control, { tolerance: 1 });
    expect(r.precision).toBe(0.5);
    expect(r.recall).toBe(1);
    expect(r.f1).toBeCloseTo(2 / 3, 12);
    expect(r.predictedPixels).toBe(8);
  });

  it("handles empty maps and the threshold", () => {
    const empty = image(4, 4, 1);
    expect(edgeF1(empty, empty)).toMatchObject({ precision: 1, recall: 1, f1: 1 });
    expect(edgeF1(empty, verticalLine(4, 4, 1)).f1).toBe(0);
    const faint = image(4, 4, 1, new Uint8Array(16).fill(100));
    expect(edgeF1(faint, empty).predictedPixels).toBe(0);
    expect(() => edgeF1(empty, image(4, 3, 1))).toThrow(InvalidArgumentError);
  });
});

describe("clipEdgeFidelity", () => {
  it("re-runs Canny on the outputs: a clip equal to its source scores F1 = 1", async () => {
    const frames = [square(32, 32, 8, 8, 12), square(32, 32, 9, 8, 12)];
    const controls = await Promise.all(frames.map((f) => canny(f)));
    const result = await clipEdgeFidelity(frames, controls, { tolerance: 0 });
    expect(result.meanF1).toBe(1);
    const blank = [image(32, 32, 1), image(32, 32, 1)];
    expect((await clipEdgeFidelity(blank, controls)).meanF1).toBe(0);
  });
});
