import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../errors.js";
import { image } from "../image.js";
import { constantFlow, texture } from "../../test/helpers/synthetic-images.js";
import { clipWarpError, pairWarpError } from "./warp-error.js";

describe("pairWarpError", () => {
  it("is the mean |a - b| / 255 over counted pixels and channels (or squared for l2)", () => {
    const frame = image(2, 1, 3, Uint8Array.from([0, 0, 0, 255, 255, 255]));
    const warped = image(2, 1, 3, Uint8Array.from([51, 0, 0, 255, 255, 255]));
    expect(pairWarpError(frame, warped, null).error).toBeCloseTo(0.2 / 6, 12);
    expect(pairWarpError(frame, warped, null, "l2").error).toBeCloseTo(0.04 / 6, 12);
    const mask = image(2, 1, 1, Uint8Array.from([0, 255]));
    expect(pairWarpError(frame, warped, mask)).toEqual({ error: 0, pixels: 1, fraction: 0.5 });
    expect(pairWarpError(frame, warped, image(2, 1, 1)).error).toBeNaN();
  });

  it("rejects a mask of another size", () => {
    const f = image(2, 2, 3);
    expect(() => pairWarpError(f, f, image(2, 1, 1))).toThrow(InvalidArgumentError);
    expect(() => pairWarpError(f, f, image(2, 1, 1))).toThrow("for mask size");
  });
});

describe("clipWarpError", () => {
  it("is near zero for a clip that only translates, and large for an unrelated frame", async () => {
    const frames = [0, 1, 2].map((i) => texture(48, 48, { channels: 3, dx: i }));
    const smooth = await clipWarpError(frames);
    expect(smooth.pairs).toHaveLength(2);
    expect(smooth.mean).toBeLessThan(0.01);
    expect(smooth.pairs[0]!.fraction).toBeGreaterThan(0.8);
    const jumpy = await clipWarpError([frames[0]!, texture(48, 48, { channels: 3, dx: 20, dy: 13 })], {
      consistency: false,
    });
    expect(jumpy.mean).toBeGreaterThan(smooth.mean * 5);
  });

  it("uses flows of the reference video when given", async () => {
    const reference = [texture(32, 32, { channels: 3 }), texture(32, 32, { channels: 3, dx: 2 })];
    const flows = { forward: [constantFlow(32, 32, 2, 0)], backward: [constantFlow(32, 32, -2, 0)] };
    const result = await clipWarpError(reference, { flows });
    expect(result.pairs[0]!.pixels).toBe(30 * 32);
    expect(result.mean).toBe(0);
  });

  it("rejects a reference of another length", async () => {
    const f = [image(4, 4, 3), image(4, 4, 3)];
    await expect(clipWarpError(f, { reference: [image(4, 4, 3)] })).rejects.toThrow(
      "Expected 2 frames (as many as the clip) for reference",
    );
  });
});
