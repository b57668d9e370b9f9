import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../errors.js";
import { image } from "../image.js";
import {
  addWeighted,
  blendEdgeMaps,
  inBetweenTimes,
  interpolateEdgeMaps,
  roundHalfEven,
  spanTimes,
} from "./interpolate.js";
import { imageToMat, loadCv, matToImage, withMats } from "./opencv.js";

describe("roundHalfEven", () => {
  it("rounds ties to the even neighbour", () => {
    expect([0.5, 1.5, 2.5, 3.5, 2.4999, 2.5001, -1.5].map(roundHalfEven)).toEqual([0, 2, 2, 4, 2, 3, -2]);
  });
});

describe("addWeighted / blendEdgeMaps", () => {
  it("rounds x.5 half to even at t = 0.5", () => {
    const a = image(4, 1, 1, Uint8Array.from([1, 3, 5, 255]));
    const b = image(4, 1, 1, Uint8Array.from([0, 0, 0, 0]));
    expect(Array.from(blendEdgeMaps(a, b, 0.5).data)).toEqual([0, 2, 2, 128]);
  });

  it("rounds in float32 like the fixture's 255/0 blends at t = 1/6", () => {
    const a = image(3, 1, 1, Uint8Array.from([255, 0, 255]));
    const b = image(3, 1, 1, Uint8Array.from([0, 255, 255]));
    // f32(255 * f32(1/6)) = 42.5 exactly (float32 spacing 3.8e-6): a tie, so 42; likewise 212.5 -> 212
    expect(Array.from(blendEdgeMaps(a, b, 1 / 6).data)).toEqual([212, 42, 255]);
  });

  it("matches OpenCV.js addWeighted on random images except at float32 near-ties", async () => {
    // cv2's x86 SIMD path (the golden fixtures) computes fma(a, alpha, fma(b, beta, gamma)); the
    // scalar wasm build rounds a*alpha and b*beta separately, so the two may differ only where the
    // exact value is within float32 rounding of a .5 tie.
    const cv = await loadCv();
    const n = 64 * 64;
    let seed = 7;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) >> 8) % 256;
    const a = image(64, 64, 1, Uint8Array.from({ length: n }, rand));
    const b = image(64, 64, 1, Uint8Array.from({ length: n }, rand));
    for (const [alpha, beta, gamma] of [
      [0.3, 0.7, 0],
      [1 / 3, 2 / 3, 0.25],
      [1.5, 0.9, -20],
    ] as const) {
      const ours = addWeighted(a, alpha, b, beta, gamma);
      const theirs = withMats(cv, "addWeighted", (track) => {
        const out = track(new cv.Mat());
        cv.addWeighted(imageToMat(cv, track, a), alpha, imageToMat(cv, track, b), beta, gamma, out);
        return matToImage(out);
      });
      let farFromTie = 0;
      for (let i = 0; i < n; i++) {
        const exact =
          (a.data[i] ?? 0) * Math.fround(alpha) + (b.data[i] ?? 0) * Math.fround(beta) + Math.fround(gamma);
        if (Math.abs(exact - Math.floor(exact) - 0.5) < 1e-4) continue;
        farFromTie++;
        expect(ours.data[i]).toBe(theirs.data[i]);
      }
      expect(farFromTie).toBeGreaterThan(n * 0.9);
    }
    const saturated = addWeighted(a, 1.5, b, 0.9, -200).data;
    expect(saturated.includes(0) && saturated.includes(255)).toBe(true);
  });

  it("rejects t outside [0, 1] and mismatched sizes", () => {
    const a = image(2, 2, 1);
    expect(() => blendEdgeMaps(a, a, 1.5)).toThrow(InvalidArgumentError);
    expect(() => blendEdgeMaps(a, a, 1.5)).toThrow("Expected a number in [0, 1] for t but received 1.5");
    expect(() => addWeighted(a, 0.5, image(3, 2, 1), 0.5)).toThrow("Expected 2x2 (the size of a) for b size");
  });
});

describe("interpolation times", () => {
  it("span and in-between layouts", () => {
    expect(spanTimes(7)).toEqual([0, 1 / 6, 2 / 6, 0.5, 4 / 6, 5 / 6, 1]);
    expect(inBetweenTimes(3)).toEqual([0.25, 0.5, 0.75]);
    const a = image(1, 1, 1, Uint8Array.from([255]));
    const b = image(1, 1, 1, Uint8Array.from([0]));
    expect(interpolateEdgeMaps(a, b, inBetweenTimes(3)).map((m) => m.data[0])).toEqual([191, 128, 64]);
  });
});
