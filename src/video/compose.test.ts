import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../errors.js";
import type { Channels, Image } from "../image.js";
import { composeStreams, grid, resizeRgb, sideBySide, toRgb } from "./compose.js";

function solid(width: number, height: number, channels: Channels, value: readonly number[]): Image {
  const data = new Uint8Array(width * height * channels);
  for (let i = 0; i < width * height; i++) data.set(value.slice(0, channels), i * channels);
  return { width, height, channels, data };
}

function pixel(img: Image, x: number, y: number): number[] {
  const i = (y * img.width + x) * img.channels;
  return Array.from(img.data.subarray(i, i + img.channels));
}

describe("toRgb / resizeRgb", () => {
  it("expands gray and drops alpha", () => {
    expect(pixel(toRgb(solid(2, 2, 1, [77])), 1, 1)).toEqual([77, 77, 77]);
    expect(pixel(toRgb(solid(2, 2, 4, [1, 2, 3, 4])), 0, 1)).toEqual([1, 2, 3]);
    const rgb = solid(2, 2, 3, [5, 6, 7]);
    expect(toRgb(rgb)).toBe(rgb);
  });

  it("bilinear resize keeps constants and interpolates a ramp", () => {
    expect(pixel(resizeRgb(solid(5, 3, 3, [9, 8, 7]), 11, 7), 10, 6)).toEqual([9, 8, 7]);
    const ramp: Image = { width: 2, height: 1, channels: 3, data: new Uint8Array([0, 0, 0, 100, 100, 100]) };
    const up = resizeRgb(ramp, 4, 1);
    expect(up.data[0]).toBe(0);
    expect(up.data[3]).toBe(25);
    expect(up.data[6]).toBe(75);
    expect(up.data[9]).toBe(100);
  });
});

describe("sideBySide", () => {
  it("scales panels to the first height and places them left to right with a gap", () => {
    const out = sideBySide(
      [solid(4, 4, 3, [255, 0, 0]), solid(2, 2, 1, [128]), solid(8, 2, 3, [0, 0, 255])],
      { gap: 1, background: [0, 255, 0] },
    );
    // widths 4 + 4 (2x2 scaled to 4x4) + 16 (8x2 scaled to 16x4) + 2 gaps
    expect([out.width, out.height, out.channels]).toEqual([26, 4, 3]);
    expect(pixel(out, 0, 0)).toEqual([255, 0, 0]);
    expect(pixel(out, 4, 2)).toEqual([0, 255, 0]);
    expect(pixel(out, 5, 3)).toEqual([128, 128, 128]);
    expect(pixel(out, 25, 0)).toEqual([0, 0, 255]);
  });

  it("rejects no images, a negative gap or a bad height", () => {
    expect(() => sideBySide([])).toThrow(InvalidArgumentError);
    expect(() => sideBySide([solid(1, 1, 3, [0, 0, 0])], { gap: -1 })).toThrow(/an integer >= 0 for gap/);
    expect(() => sideBySide([solid(1, 1, 3, [0, 0, 0])], { height: 0 })).toThrow(
      /a positive integer for height/,
    );
  });
});

describe("grid", () => {
  it("fits panels into equal cells, centred, in rows of `columns`", () => {
    const out = grid([solid(4, 4, 3, [10, 10, 10]), solid(4, 2, 3, [20, 20, 20]), solid(4, 4, 1, [30])], {
      columns: 2,
    });
    expect([out.width, out.height]).toEqual([8, 8]);
    expect(pixel(out, 0, 0)).toEqual([10, 10, 10]);
    expect(pixel(out, 5, 0)).toEqual([0, 0, 0]); // 4x2 panel letterboxed in its 4x4 cell
    expect(pixel(out, 5, 1)).toEqual([20, 20, 20]);
    expect(pixel(out, 1, 5)).toEqual([30, 30, 30]);
    expect(pixel(out, 6, 6)).toEqual([0, 0, 0]); // empty fourth cell
  });

  it("rejects bad columns and cell sizes", () => {
    const one = [solid(2, 2, 3, [0, 0, 0])];
    expect(() => grid(one, { columns: 0 })).toThrow(/a positive integer for columns/);
    expect(() => grid(one, { cellWidth: 1.5 })).toThrow(/a positive integer for cellWidth/);
    expect(() => grid(one, { cellHeight: -2 })).toThrow(/a positive integer for cellHeight/);
  });
});

describe("composeStreams", () => {
  it("zips async and sync streams, stops at the shortest and closes the others", async () => {
    let closed = false;
    async function* long(): AsyncGenerator<Image> {
      try {
        for (let i = 0; i < 100; i++) yield solid(2, 2, 1, [i]);
      } finally {
        closed = true;
      }
    }
    const short = [solid(2, 2, 3, [1, 2, 3]), solid(2, 2, 3, [4, 5, 6])];
    const out: Image[] = [];
    for await (const f of composeStreams([long(), short], { kind: "side-by-side" })) out.push(f);
    expect(out).toHaveLength(2);
    expect(pixel(out[1] ?? solid(1, 1, 3, [0, 0, 0]), 0, 0)).toEqual([1, 1, 1]);
    expect(pixel(out[1] ?? solid(1, 1, 3, [0, 0, 0]), 2, 0)).toEqual([4, 5, 6]);
    expect(closed).toBe(true);
  });

  it("rejects an empty list of streams", async () => {
    await expect(composeStreams([], { kind: "grid" }).next()).rejects.toThrow(/at least one frame stream/);
  });
});
