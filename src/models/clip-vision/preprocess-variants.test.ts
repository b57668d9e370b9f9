import { describe, expect, it } from "vitest";
import { ConfigError } from "../../errors.js";
import { image } from "../../image.js";
import {
  DEFAULT_CLIP_IMAGE_PROCESSOR,
  centerCrop,
  clipResize,
  clipResizeAndCrop,
  parseClipImageProcessorConfig,
} from "./preprocess.js";

/** A w x h RGB image whose pixel (x, y) is (x + 1, y + 1, 7). */
function ramp(w: number, h: number): ReturnType<typeof image> {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) data.set([x + 1, y + 1, 7], (y * w + x) * 3);
  }
  return image(w, h, 3, data);
}

const pixel = (img: ReturnType<typeof image>, x: number, y: number): number[] =>
  Array.from(img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3));

describe("CLIPImageProcessor center crop", () => {
  it("zero-pads a crop larger than the image, the image at offset ceil((crop - size) / 2)", () => {
    const out = centerCrop(ramp(2, 3), 6, 5);
    expect([out.width, out.height]).toEqual([5, 6]);
    // height: d = 3 -> image rows at 2..4; width: d = 3 -> image columns at 2..3.
    expect(pixel(out, 2, 2)).toEqual([1, 1, 7]);
    expect(pixel(out, 3, 4)).toEqual([2, 3, 7]);
    expect(pixel(out, 1, 2)).toEqual([0, 0, 0]);
    expect(pixel(out, 2, 5)).toEqual([0, 0, 0]);
    expect(pixel(out, 4, 3)).toEqual([0, 0, 0]);
  });

  it("crops one axis and pads the other", () => {
    const out = centerCrop(ramp(7, 2), 4, 3);
    expect([out.width, out.height]).toEqual([3, 4]);
    expect(pixel(out, 0, 1)).toEqual([3, 1, 7]); // left = floor((7 - 3) / 2) = 2
    expect(pixel(out, 2, 2)).toEqual([5, 2, 7]);
    expect(pixel(out, 0, 0)).toEqual([0, 0, 0]);
    expect(pixel(out, 0, 3)).toEqual([0, 0, 0]);
  });

  it("keeps the floor offsets when the image is larger", () => {
    const out = centerCrop(ramp(6, 5), 2, 3);
    expect(pixel(out, 0, 0)).toEqual([2, 2, 7]);
  });

  it("pads instead of throwing when do_resize is false and the image is smaller than crop_size", () => {
    const config = { ...DEFAULT_CLIP_IMAGE_PROCESSOR, doResize: false, cropSize: { height: 8, width: 8 } };
    expect(clipResize(ramp(4, 4), config).width).toBe(4);
    const out = clipResizeAndCrop(ramp(4, 4), config);
    expect([out.width, out.height]).toEqual([8, 8]);
    expect(pixel(out, 2, 2)).toEqual([1, 1, 7]);
  });
});

describe("preprocessor_config resample", () => {
  it("reads 3 (BICUBIC, default) and 1 (LANCZOS), and the filter changes the resize", () => {
    expect(parseClipImageProcessorConfig("p", {}).resample).toBe("bicubic");
    expect(parseClipImageProcessorConfig("p", { resample: 3 }).resample).toBe("bicubic");
    const lanczos = parseClipImageProcessorConfig("p", { resample: 1, size: 5, crop_size: 5 });
    expect(lanczos.resample).toBe("lanczos");
    const img = image(
      23,
      17,
      3,
      Uint8Array.from({ length: 23 * 17 * 3 }, (_, i) => (i * 37) % 251),
    );
    const a = clipResizeAndCrop(img, lanczos).data;
    const b = clipResizeAndCrop(img, { ...lanczos, resample: "bicubic" }).data;
    expect(Array.from(a)).not.toEqual(Array.from(b));
  });

  it("maps every PIL code 0-5 to its filter and refuses non-PIL codes", () => {
    for (const [code, filter] of [
      [0, "nearest"],
      [1, "lanczos"],
      [3, "bicubic"],
      [2, "bilinear"],
      [4, "box"],
      [5, "hamming"],
    ] as const)
      expect(parseClipImageProcessorConfig("p", { resample: code }).resample).toBe(filter);
    expect(() => parseClipImageProcessorConfig("p", { resample: 9 })).toThrow(ConfigError);
    expect(() => parseClipImageProcessorConfig("p", { resample: "bicubic" })).toThrow(ConfigError);
  });
});

describe("CLIPVisionConfig hidden_act", () => {
  it("maps transformers' activation names onto the graph's", async () => {
    const { resolveClipVisionSpec } = await import("./validate.js");
    const act = (hidden_act: string): string => resolveClipVisionSpec("c", { hidden_act }).act;
    expect(act("quick_gelu")).toBe("quick_gelu");
    expect(act("gelu")).toBe("gelu");
    expect(act("gelu_new")).toBe("gelu_tanh");
    expect(act("gelu_pytorch_tanh")).toBe("gelu_tanh");
    expect(act("silu")).toBe("silu");
    expect(() => act("relu6")).toThrow();
  });
});
