import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../errors.js";
import { constantFlow, row, verticalLine } from "../../test/helpers/synthetic-images.js";
import { flowWarpEdgeMaps } from "./flow-warp-edges.js";
import { blendEdgeMaps } from "./interpolate.js";

describe("flowWarpEdgeMaps", () => {
  const a = verticalLine(16, 4, 4);
  const b = verticalLine(16, 4, 8);
  const fw = constantFlow(16, 4, 4, 0);
  const bw = constantFlow(16, 4, -4, 0);

  it("moves a line half way instead of showing it twice", async () => {
    const blended = row(blendEdgeMaps(a, b, 0.5), 1);
    expect(blended.filter((v) => v > 0)).toEqual([128, 128]);
    const [middle] = await flowWarpEdgeMaps(a, b, fw, bw, [0.5]);
    const values = row(middle!, 1);
    expect(values[6]).toBe(255);
    expect(values.filter((v) => v > 0)).toEqual([255]);
  });

  it("returns the end maps at t = 0 and 1 and moves a quarter at t = 0.25", async () => {
    const [start, quarter, end] = await flowWarpEdgeMaps(a, b, fw, bw, [0, 0.25, 1], {
      mode: "nearest-frame",
    });
    expect(start).toBe(a);
    expect(end).toBe(b);
    expect(row(quarter!, 2).indexOf(255)).toBe(5);
  });

  it("rejects times outside [0, 1] and flows of another size", async () => {
    await expect(flowWarpEdgeMaps(a, b, fw, bw, [1.5])).rejects.toThrow(InvalidArgumentError);
    await expect(flowWarpEdgeMaps(a, b, constantFlow(8, 4, 0, 0), bw, [0.5])).rejects.toThrow(
      "for forward size",
    );
  });
});
