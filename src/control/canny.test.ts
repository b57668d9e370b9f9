import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../errors.js";
import { image } from "../image.js";
import { square } from "../../test/helpers/synthetic-images.js";
import { canny } from "./canny.js";

function step(width: number, height: number, at: number): ReturnType<typeof image> {
  const data = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) for (let x = at; x < width; x++) data[y * width + x] = 200;
  return image(width, height, 1, data);
}

describe("canny", () => {
  it("finds a vertical step edge in one column and nothing else", async () => {
    const edges = await canny(step(16, 12, 8));
    const columns = new Set<number>();
    for (let k = 0; k < edges.data.length; k++) if (edges.data[k] !== 0) columns.add(k % 16);
    expect(edges.data.every((v) => v === 0 || v === 255)).toBe(true);
    expect(columns.size).toBe(1);
    const [column] = columns;
    expect(column === 7 || column === 8).toBe(true);
  });

  it("finds nothing in a flat image and nothing below the thresholds", async () => {
    expect((await canny(image(8, 8, 1, new Uint8Array(64).fill(90)))).data.every((v) => v === 0)).toBe(true);
    const faint = square(16, 16, 4, 4, 8, 12, 0);
    expect((await canny(faint, { threshold1: 100, threshold2: 200 })).data.every((v) => v === 0)).toBe(true);
    expect((await canny(faint, { threshold1: 5, threshold2: 10 })).data.some((v) => v === 255)).toBe(true);
  });

  it("accepts RGB input like cv2.Canny on a colour array", async () => {
    const rgb = image(16, 8, 3);
    for (let k = 0; k < 16 * 8; k++) if (k % 16 >= 8) rgb.data[3 * k + 2] = 255;
    expect((await canny(rgb)).data.some((v) => v === 255)).toBe(true);
  });

  it("rejects an aperture that Sobel does not have", async () => {
    // @ts-expect-error 4 is not an allowed aperture
    const error = await canny(step(8, 8, 4), { apertureSize: 4 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).message).toContain("Expected 3, 5 or 7 for apertureSize");
  });
});
