/**
 * Decoding real clips against OpenCV 4.6 golden frames (test/fixtures/golden/opencv/<clip>/frames,
 * made by cv2.VideoCapture + cv2.resize(INTER_AREA) to 256x256 outside this project). Our decoder
 * runs at full resolution in "opencv" colour mode; the INTER_AREA resize is done with OpenCV itself
 * (opencv.js), as in the fixture, so the comparison isolates the decode.
 */
import { loadOpenCV } from "@opencvjs/node";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { probeVideo } from "../src/video/probe.js";
import { readAllFrames, type Frame } from "../src/video/read.js";

type CV = Awaited<ReturnType<typeof loadOpenCV>>;

const VIDEOS = new URL("fixtures/videos/", import.meta.url).pathname;
const GOLDEN = new URL("fixtures/golden/opencv/", import.meta.url).pathname;

let cv: CV;
beforeAll(async () => {
  cv = await loadOpenCV();
});

function interArea(frame: Frame, size: number): Uint8Array {
  const src = cv.matFromArray(frame.height, frame.width, cv.CV_8UC3, frame.data);
  const dst = new cv.Mat();
  try {
    cv.resize(src, dst, new cv.Size(size, size), 0, 0, cv.INTER_AREA);
    return new Uint8Array(dst.data);
  } finally {
    src.delete();
    dst.delete();
  }
}

async function golden(clip: string, i: number): Promise<Uint8Array> {
  const file = `${GOLDEN}${clip}/frames/frame_${String(i).padStart(3, "0")}.png`;
  const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
  expect([info.width, info.height, info.channels]).toEqual([256, 256, 3]);
  return new Uint8Array(data);
}

function maxDiff(a: Uint8Array, b: Uint8Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] ?? 0) - (b[i] ?? 0)));
  return m;
}

describe("car-turn (untagged yuv420p, H.264 with B-frames)", () => {
  const clip = `${VIDEOS}car-turn-9f.mp4`;

  it("probes size, rate, frame count and tags", async () => {
    const info = await probeVideo(clip);
    expect(info).toMatchObject({
      kind: "file",
      width: 480,
      height: 480,
      fps: { num: 10, den: 1 },
      frameCount: 9,
      codec: "h264",
      pixelFormat: "yuv420p",
      colorMatrix: "unknown",
      rotation: 0,
      hasAudio: false,
    });
  });

  it("decodes frames 0-7 exactly like cv2.VideoCapture (opencv mode, INTER_AREA by OpenCV)", async () => {
    const frames = await readAllFrames(clip, { colorMatrix: "opencv" });
    expect(frames.map((f) => f.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(frames[3]?.timestamp).toBeCloseTo(0.3, 9);
    for (let i = 0; i < 8; i++) {
      const frame = frames[i];
      if (!frame) throw new Error(`frame ${i} missing`);
      expect([frame.width, frame.height, frame.channels]).toEqual([480, 480, 3]);
      expect(maxDiff(interArea(frame, 256), await golden("car-turn", i))).toBe(0);
    }
  });

  it("an untagged clip decodes the same in auto and opencv mode", async () => {
    const [auto] = await readAllFrames(clip, { maxFrames: 1 });
    const [opencv] = await readAllFrames(clip, { maxFrames: 1, colorMatrix: "opencv" });
    if (!auto || !opencv) throw new Error("no frame");
    expect(maxDiff(auto.data, opencv.data)).toBe(0);
  });
});

describe("man-skiing (tagged BT.709, tv range)", () => {
  const clip = `${VIDEOS}man-skiing-5f.mp4`;

  it("probes the BT.709 tag and the NTSC rate", async () => {
    const info = await probeVideo(clip);
    expect(info).toMatchObject({
      width: 718,
      height: 718,
      fps: { num: 30000, den: 1001 },
      frameCount: 5,
      colorMatrix: "bt709",
      colorSpaceTag: "bt709",
      colorRange: "limited",
    });
  });

  it("opencv mode matches cv2.VideoCapture exactly; auto mode (honours the tag) does not", async () => {
    const opencv = await readAllFrames(clip, { colorMatrix: "opencv" });
    const auto = await readAllFrames(clip, { colorMatrix: "auto" });
    expect(opencv).toHaveLength(5);
    for (let i = 0; i < 5; i++) {
      const expected = await golden("man-skiing", i);
      const o = opencv[i];
      const a = auto[i];
      if (!o || !a) throw new Error(`frame ${i} missing`);
      expect(maxDiff(interArea(o, 256), expected)).toBe(0);
      // The README measured up to 36 levels between the two matrices on this clip.
      expect(maxDiff(interArea(a, 256), expected)).toBeGreaterThan(10);
    }
  });

  it("bt601 is the same as opencv; bt709 is the same as auto for this clip", async () => {
    const one = async (colorMatrix: "bt601" | "bt709" | "opencv" | "auto"): Promise<Uint8Array> => {
      const [f] = await readAllFrames(clip, { maxFrames: 1, colorMatrix });
      if (!f) throw new Error("no frame");
      return f.data;
    };
    expect(maxDiff(await one("bt601"), await one("opencv"))).toBe(0);
    expect(maxDiff(await one("bt709"), await one("auto"))).toBe(0);
  });
});
