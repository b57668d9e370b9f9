import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../errors.js";
import { image } from "../image.js";
import { loadCv } from "./opencv.js";
import { resizeFloatsSync, resizeImage } from "./resize.js";

describe("resizeImage", () => {
  it("INTER_AREA halving averages 2x2 blocks", async () => {
    const img = image(4, 2, 1, Uint8Array.from([0, 10, 100, 100, 20, 30, 50, 54]));
    const out = await resizeImage(img, { width: 2, height: 1 });
    expect(out.width).toBe(2);
    expect(Array.from(out.data)).toEqual([15, 76]);
  });

  it("keeps the image when the size is unchanged and supports other modes", async () => {
    const img = image(2, 2, 3, new Uint8Array(12).fill(9));
    expect(await resizeImage(img, { width: 2, height: 2 })).toBe(img);
    const up = await resizeImage(img, { width: 4, height: 4, interpolation: "nearest" });
    expect(up.data.every((v) => v === 9)).toBe(true);
  });

  it("resizes float data without rounding", async () => {
    const cv = await loadCv();
    const out = resizeFloatsSync(
      cv,
      Float32Array.from([0.25, 0.5, 1, 2]),
      { width: 4, height: 1, channels: 1 },
      { width: 2, height: 1, interpolation: "area" },
    );
    expect(Array.from(out)).toEqual([0.375, 1.5]);
  });

  it("rejects a zero width", async () => {
    const error = await resizeImage(image(1, 1, 1), { width: 0, height: 1 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).message).toContain(
      "Expected an integer >= 1 for width but received 0",
    );
  });
});
