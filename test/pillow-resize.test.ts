/**
 * Pillow's Image.resize, bit-exact: outputs of Pillow 9.4.0 (test/fixtures/pillow/make.py) on a crop
 * of a real frame, down, up and mixed, with the lanczos filter (diffusers' VaeImageProcessor),
 * bicubic (CLIPImageProcessor's default), bilinear, hamming and box.
 */
import { describe, expect, it } from "vitest";
import { pillowResize, type PillowFilter } from "../src/image.js";
import { image, type Image } from "../src/image.js";
import type { HostTensor } from "../src/tensor.js";
import { readSafetensors } from "../src/weights/safetensors.js";

const FIXTURE = "test/fixtures/pillow/resize.safetensors";

function asImage(t: HostTensor): Image {
  const [h = 0, w = 0, c = 0] = t.shape;
  return image(w, h, c as 3, t.data as Uint8Array);
}

describe("pillowResize against Pillow 9.4.0", () => {
  it("matches every output byte for byte", async () => {
    const tensors = await readSafetensors(FIXTURE);
    const input = asImage(tensors.get("input")!);
    expect([input.width, input.height]).toEqual([40, 24]);
    const names = [...tensors.keys()].filter((n) => n !== "input");
    expect(names.length).toBe(15);
    for (const name of names) {
      const [filter, size] = name.split("_") as [PillowFilter, string];
      const [w, h] = size.split("x").map(Number) as [number, number];
      const expected = asImage(tensors.get(name)!);
      const actual = pillowResize(input, w, h, filter);
      expect([actual.width, actual.height], name).toEqual([expected.width, expected.height]);
      let differing = 0;
      for (let i = 0; i < actual.data.length; i++) if (actual.data[i] !== expected.data[i]) differing++;
      expect(differing, name).toBe(0);
    }
  });

  it("lanczos and bicubic are different filters", () => {
    const data = new Uint8Array(9 * 5 * 3).map((_, i) => (i * 37) % 256);
    const src = image(9, 5, 3, data);
    const a = pillowResize(src, 4, 3, "lanczos");
    const b = pillowResize(src, 4, 3, "bicubic");
    expect(Buffer.from(a.data).equals(Buffer.from(b.data))).toBe(false);
    expect(pillowResize(src, 9, 5, "lanczos")).toBe(src);
  });
});
