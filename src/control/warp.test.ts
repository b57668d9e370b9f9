import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../errors.js";
import { image } from "../image.js";
import { constantFlow, square, texture } from "../../test/helpers/synthetic-images.js";
import { flowToMaps, warpBilinearExact, warpFloats, warpImage } from "./warp.js";

describe("warpImage", () => {
  it("recovers the first frame from the second along an integer flow", async () => {
    const prev = texture(32, 24, { channels: 3 });
    const next = texture(32, 24, { channels: 3, dx: 3, dy: 2 });
    const warped = await warpImage(next, constantFlow(32, 24, 3, 2));
    for (let y = 0; y < 22; y++) {
      for (let x = 0; x < 29; x++) {
        const k = (y * 32 + x) * 3;
        expect([...warped.data.subarray(k, k + 3)]).toEqual([...prev.data.subarray(k, k + 3)]);
      }
    }
    // BORDER_CONSTANT fills what comes from outside with borderValue
    expect(warped.data[(23 * 32 + 31) * 3]).toBe(0);
    const filled = await warpImage(next, constantFlow(32, 24, 3, 2), { borderValue: 7 });
    expect(filled.data[(23 * 32 + 31) * 3]).toBe(7);
  });

  it("moves a square back to where it was, with replicate borders on request", async () => {
    const next = square(16, 16, 6, 5, 4);
    const warped = await warpImage(next, constantFlow(16, 16, 2, 1), {
      interpolation: "nearest",
      borderMode: "replicate",
    });
    expect(warped.data).toEqual(square(16, 16, 4, 4, 4).data);
  });

  it("interpolates bilinearly at half pixels (remap fixed point, rounded)", async () => {
    const src = image(2, 1, 1, Uint8Array.from([10, 21]));
    const out = await warpImage(src, constantFlow(1, 1, 0.5, 0));
    expect(out.data[0]).toBe(16);
    const exact = warpBilinearExact(src, constantFlow(1, 1, 0.5, 0));
    expect(exact.data[0]).toBe(15.5);
  });

  it("warps float data in float (e.g. a flow field)", async () => {
    const data = Float32Array.from([0.25, -1, 0.75, 2]);
    const out = await warpFloats(data, { width: 2, height: 1, channels: 2 }, constantFlow(2, 1, 1, 0), {
      borderMode: "replicate",
    });
    expect(Array.from(out)).toEqual([0.75, 2, 0.75, 2]);
  });

  it("builds float32 maps and rejects flows of the wrong length", async () => {
    const { mapX, mapY } = flowToMaps(constantFlow(2, 2, 0.1, -1));
    expect(Array.from(mapX)).toEqual([0.1, 1.1, 0.1, 1.1].map(Math.fround));
    expect(Array.from(mapY)).toEqual([-1, -1, 0, 0]);
    const bad = { width: 2, height: 2, data: new Float32Array(7) };
    const error = await warpImage(image(2, 2, 1), bad).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).message).toContain("Expected 8 floats ([2, 2, 2]) for flow.data");
  });
});
