import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../errors.js";
import { constantFlow } from "../../test/helpers/synthetic-images.js";
import { consistencyMask, motionBoundaryMask } from "./occlusion.js";

const count = (data: Uint8Array, value: number): number =>
  data.reduce((n, v) => n + (v === value ? 1 : 0), 0);

describe("consistencyMask", () => {
  it("keeps consistent pixels and drops those whose match leaves the frame", async () => {
    const mask = await consistencyMask(constantFlow(10, 6, 2, 0), constantFlow(10, 6, -2, 0));
    // x + 2 <= 9 for x <= 7: two columns leave the frame
    for (let y = 0; y < 6; y++)
      expect(Array.from(mask.data.subarray(y * 10, y * 10 + 10))).toEqual([
        255, 255, 255, 255, 255, 255, 255, 255, 0, 0,
      ]);
    const all = await consistencyMask(constantFlow(10, 6, 2, 0), constantFlow(10, 6, -2, 0), {
      inBounds: false,
    });
    expect(count(all.data, 255)).toBe(60);
  });

  it("drops inconsistent pixels; the squared test tolerates 0.01(|w|²+|ŵ|²) + 0.5", async () => {
    // |w + ŵ|² = 0.49 < 0.5 + 0.01·(0 + 0.49): consistent; 0.64 is not
    const w = constantFlow(4, 4, 0, 0);
    expect(count((await consistencyMask(w, constantFlow(4, 4, 0.7, 0))).data, 255)).toBe(16);
    expect(count((await consistencyMask(w, constantFlow(4, 4, 0.8, 0))).data, 255)).toBe(0);
    // unsquared: |w + ŵ| = 0.7 >= 0.5 + 0.01·0.49: inconsistent
    expect(
      count((await consistencyMask(w, constantFlow(4, 4, 0.7, 0), { norm: "unsquared-lhs" })).data, 255),
    ).toBe(0);
    expect(
      count((await consistencyMask(w, constantFlow(4, 4, 0.7, 0), { norm: "unsquared", beta: 1 })).data, 255),
    ).toBe(16);
  });

  it("excludes motion boundaries on request", async () => {
    const fw = constantFlow(8, 4, 0, 0);
    for (let y = 0; y < 4; y++) for (let x = 4; x < 8; x++) fw.data[2 * (y * 8 + x)] = 1;
    const boundary = motionBoundaryMask(fw);
    expect(Array.from(boundary.subarray(0, 8))).toEqual([0, 0, 0, 1, 0, 0, 0, 0]);
    const bw = constantFlow(8, 4, 0, 0);
    for (let y = 0; y < 4; y++) for (let x = 4; x < 8; x++) bw.data[2 * (y * 8 + x)] = -1;
    const plain = await consistencyMask(fw, bw, { inBounds: false });
    const withBoundaries = await consistencyMask(fw, bw, { inBounds: false, motionBoundaries: true });
    expect(count(withBoundaries.data, 0) - count(plain.data, 0)).toBe(4);
  });

  it("rejects flows of different sizes and bad parameters", async () => {
    const error = await consistencyMask(constantFlow(4, 4, 0, 0), constantFlow(4, 3, 0, 0)).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).message).toContain("for backward size");
    await expect(
      consistencyMask(constantFlow(2, 2, 0, 0), constantFlow(2, 2, 0, 0), { alpha: -1 }),
    ).rejects.toThrow("for alpha");
  });
});
