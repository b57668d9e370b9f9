import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../errors.js";
import { image } from "../image.js";
import { flickerIndex, meanLuminance, pixelFlicker } from "./flicker.js";

const gray = (v: number): ReturnType<typeof image> => image(2, 2, 1, new Uint8Array(4).fill(v));

describe("flicker indices", () => {
  it("uses BT.601 luma on [0, 1]", () => {
    expect(meanLuminance(image(1, 1, 3, Uint8Array.from([255, 0, 0])))).toBeCloseTo(0.299, 12);
    expect(meanLuminance(gray(51))).toBeCloseTo(0.2, 12);
  });

  it("flickerIndex is the mean |ΔL̄| between consecutive frames", () => {
    expect(flickerIndex([gray(0), gray(0), gray(0)])).toBe(0);
    expect(flickerIndex([gray(0), gray(255), gray(0)])).toBe(1);
    expect(flickerIndex([gray(0), gray(51), gray(102)])).toBeCloseTo(0.2, 12);
  });

  it("pixelFlicker sees per-pixel changes that keep the mean, and honours masks", () => {
    const a = image(2, 1, 1, Uint8Array.from([0, 255]));
    const b = image(2, 1, 1, Uint8Array.from([255, 0]));
    expect(flickerIndex([a, b])).toBe(0);
    expect(pixelFlicker([a, b])).toBe(1);
    expect(pixelFlicker([a, b], [image(2, 1, 1)])).toBeNaN();
  });

  it("needs two frames of one size", () => {
    expect(() => flickerIndex([gray(0)])).toThrow(InvalidArgumentError);
    expect(() => flickerIndex([gray(0), image(3, 1, 1)])).toThrow("for frames[1] size");
  });
});
