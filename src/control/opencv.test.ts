import { describe, expect, it } from "vitest";
import { OpenCvError } from "../errors.js";
import { image } from "../image.js";
import { floatsToMat, imageToMat, loadCv, matToFloats, matToImage, withMats } from "./opencv.js";

describe("loadCv", () => {
  it("loads OpenCV.js once and returns the same module", async () => {
    const [a, b] = await Promise.all([loadCv(), loadCv()]);
    expect(a).toBe(b);
    expect(typeof a.Canny).toBe("function");
  });
});

describe("withMats", () => {
  it("round-trips images and floats and deletes every tracked Mat", async () => {
    const cv = await loadCv();
    const img = image(
      3,
      2,
      3,
      Uint8Array.from({ length: 18 }, (_, i) => i * 10),
    );
    const floats = Float32Array.from([0.5, -1.25, 3, 4]);
    const tracked: { isDeleted(): boolean }[] = [];
    const [back, backFloats] = withMats(cv, "roundtrip", (track) => {
      const m = imageToMat(cv, track, img);
      const f = floatsToMat(cv, track, floats, 2, 1, 2);
      tracked.push(m, f);
      return [matToImage(m), matToFloats(f)] as const;
    });
    expect(back).toEqual(img);
    expect(Array.from(backFloats)).toEqual([0.5, -1.25, 3, 4]);
    expect(tracked.every((m) => m.isDeleted())).toBe(true);
  });

  it("turns a cv::Exception into OpenCvError naming the call", async () => {
    const cv = await loadCv();
    let kept: { isDeleted(): boolean } | undefined;
    const call = (): void =>
      withMats(cv, "cvtColor", (track) => {
        const gray = track(new cv.Mat(4, 4, cv.CV_8UC1));
        kept = gray;
        cv.cvtColor(gray, track(new cv.Mat()), cv.COLOR_RGB2GRAY);
      });
    expect(call).toThrow(OpenCvError);
    try {
      call();
    } catch (error) {
      expect(error).toBeInstanceOf(OpenCvError);
      expect((error as OpenCvError).code).toBe("E_OPENCV");
      expect((error as OpenCvError).message).toContain("OpenCV cvtColor failed");
      expect((error as OpenCvError).message).toContain("Invalid number of channels");
    }
    expect(kept?.isDeleted()).toBe(true);
  });

  it("rejects float data of the wrong length", async () => {
    const cv = await loadCv();
    expect(() => withMats(cv, "x", (track) => floatsToMat(cv, track, new Float32Array(5), 2, 2, 1))).toThrow(
      /Expected 4 floats for 2x2x1 for data but received "5 floats"/,
    );
  });
});
