import { describe, expect, it } from "vitest";
import { summarizeStderr } from "./ffmpeg.js";
import { buildFilterChain, outputSize, type FilterOptions } from "./filters.js";
import { parseRational } from "./probe.js";

describe("summarizeStderr", () => {
  it("keeps the last distinct lines without addresses and offsets", () => {
    const stderr = [
      "[h264 @ 0x55d4dd271840] Invalid NAL unit size (24614 > 12098).",
      "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x5624f85d3900] stream 0, offset 0x1b784: partial file",
      "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x5624f85d3900] stream 0, offset 0x1c741: partial file",
      "",
    ].join("\n");
    expect(summarizeStderr(stderr)).toBe(
      "h264: Invalid NAL unit size (24614 > 12098). | mov: stream 0, offset ...: partial file",
    );
    expect(summarizeStderr("x".repeat(1000)).length).toBe(400);
    expect(summarizeStderr("")).toBe("");
  });
});

describe("filters", () => {
  it("builds the chain in order: fps, select, colour, crop, resize", () => {
    expect(buildFilterChain({})).toBe("scale=in_color_matrix=auto,format=rgb24");
    expect(
      buildFilterChain({
        fps: 5,
        start: 2,
        stride: 3,
        colorMatrix: "opencv",
        crop: { x: 1, y: 2, width: 3, height: 4 },
        resize: { width: 8, height: 6, fit: "cover" },
      }),
    ).toBe(
      "fps=5,select='gte(n,2)*not(mod(n-2,3))',scale=in_color_matrix=bt601,format=rgb24,crop=3:4:1:2:exact=1," +
        "scale=8:6:force_original_aspect_ratio=increase:flags=area,crop=8:6",
    );
    expect(
      buildFilterChain({ resize: { width: 8, height: 6, fit: "contain", kernel: "lanczos" } }),
    ).toContain(
      "scale=8:6:force_original_aspect_ratio=decrease:flags=lanczos,pad=8:6:(ow-iw)/2:(oh-ih)/2:black",
    );
  });

  it("rejects unknown modes, fits and kernels", () => {
    // Options as they arrive from JSON or a CLI: outside the types, checked at run time.
    const parse = (json: string): FilterOptions => JSON.parse(json);
    expect(() => buildFilterChain(parse('{"colorMatrix":"bt2020"}'))).toThrow(
      /auto, opencv, bt601 or bt709 for colorMatrix/,
    );
    const size = { width: 4, height: 4 };
    expect(() => outputSize(size, parse('{"resize":{"width":2,"height":2,"fit":"zoom"}}'))).toThrow(
      /resize.fit/,
    );
    expect(() => outputSize(size, parse('{"resize":{"width":2,"height":2,"kernel":"sinc"}}'))).toThrow(
      /resize.kernel/,
    );
    expect(() => outputSize({ width: 4, height: 4 }, { crop: { x: -1, y: 0, width: 2, height: 2 } })).toThrow(
      /crop.x/,
    );
  });
});

describe("parseRational", () => {
  it("parses ffprobe rates and refuses 0/0", () => {
    expect(parseRational("30000/1001")).toEqual({ num: 30000, den: 1001 });
    expect(parseRational("24")).toEqual({ num: 24, den: 1 });
    expect(parseRational("0/0")).toBeUndefined();
    expect(parseRational(12)).toBeUndefined();
  });
});
