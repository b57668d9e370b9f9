import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CancelledError, FileNotFoundError, InvalidArgumentError, VideoError } from "../errors.js";
import { expectError, ffmpegChildren, makeClip, makeTempDir, waitFor } from "../../test/helpers/video.js";
import { probeVideo } from "./probe.js";
import { readAllFrames, readFrames, type Frame } from "./read.js";

const CAR = new URL("../../test/fixtures/videos/car-turn-9f.mp4", import.meta.url).pathname;

let tmp: { dir: string; cleanup: () => Promise<void> };
let clip30: string; // 30 frames 64x48 at 10 fps, H.264
let full: Frame[];
beforeAll(async () => {
  tmp = await makeTempDir();
  clip30 = await makeClip(join(tmp.dir, "clip30.mp4"), { width: 64, height: 48, frames: 30 });
  full = await readAllFrames(clip30);
});
afterAll(async () => tmp.cleanup());

function same(a: Frame | undefined, b: Frame | undefined): boolean {
  return a !== undefined && b !== undefined && Buffer.from(a.data).equals(Buffer.from(b.data));
}

describe("readFrames: selection", () => {
  it("decodes every frame with index and timestamp", () => {
    expect(full).toHaveLength(30);
    expect(full.map((f) => f.index)).toEqual([...Array(30).keys()]);
    expect(full[7]).toMatchObject({ width: 64, height: 48, channels: 3, timestamp: 0.7 });
    expect(full[0]?.data.length).toBe(64 * 48 * 3);
  });

  it("start / end / stride select the same pixels as a full decode", async () => {
    const picked = await readAllFrames(clip30, { start: 5, end: 20, stride: 4 });
    expect(picked.map((f) => f.index)).toEqual([5, 9, 13, 17]);
    for (const f of picked) expect(same(f, full[f.index])).toBe(true);
  });

  it("maxFrames stops early", async () => {
    const picked = await readAllFrames(clip30, { start: 2, maxFrames: 3 });
    expect(picked.map((f) => f.index)).toEqual([2, 3, 4]);
    expect(same(picked[2], full[4])).toBe(true);
  });

  it("fps resamples (10 -> 5 fps keeps every other frame)", async () => {
    const half = await readAllFrames(clip30, { fps: 5 });
    expect(half).toHaveLength(15);
    expect(half[3]?.timestamp).toBeCloseTo(0.6, 9);
    expect(same(half[3], full[6])).toBe(true);
  });

  it("crop returns exactly the sub-rectangle of the full frame", async () => {
    const [c] = await readAllFrames(clip30, { maxFrames: 1, crop: { x: 3, y: 5, width: 17, height: 11 } });
    const f = full[0];
    if (!c || !f) throw new Error("no frame");
    expect([c.width, c.height]).toEqual([17, 11]);
    for (let y = 0; y < 11; y++) {
      const want = f.data.subarray(((y + 5) * 64 + 3) * 3, ((y + 5) * 64 + 20) * 3);
      expect(Buffer.from(c.data.subarray(y * 17 * 3, (y + 1) * 17 * 3)).equals(Buffer.from(want))).toBe(true);
    }
  });

  it("resize fill / cover / contain give the asked size; contain pads with black", async () => {
    for (const fit of ["fill", "cover", "contain"] as const) {
      const [f] = await readAllFrames(clip30, { maxFrames: 1, resize: { width: 32, height: 32, fit } });
      expect([f?.width, f?.height, f?.data.length]).toEqual([32, 32, 32 * 32 * 3]);
      if (fit === "contain") expect(Array.from(f?.data.subarray(0, 3) ?? [])).toEqual([0, 0, 0]);
    }
  });

  it("reads a PNG sequence from a directory and from a printf pattern", async () => {
    const dir = join(tmp.dir, "seq");
    await mkdir(dir);
    for (let i = 0; i < 3; i++) {
      const f = full[i];
      if (!f) throw new Error("no frame");
      await sharp(f.data, { raw: { width: 64, height: 48, channels: 3 } })
        .png()
        .toFile(join(dir, `f_${String(i + 1).padStart(3, "0")}.png`));
    }
    const fromDir = await readAllFrames(dir, { sequenceFps: 12 });
    expect(fromDir).toHaveLength(3);
    expect(fromDir[1]?.timestamp).toBeCloseTo(1 / 12, 9);
    expect(same(fromDir[2], full[2])).toBe(true);
    const fromPattern = await readAllFrames(join(dir, "f_%03d.png"));
    expect(fromPattern).toHaveLength(3);
    expect(same(fromPattern[0], full[0])).toBe(true);
    const info = await probeVideo(join(dir, "f_%03d.png"));
    expect(info).toMatchObject({
      kind: "png-sequence",
      width: 64,
      height: 48,
      frameCount: 3,
      fps: { num: 24, den: 1 },
    });
  });

  it("reads gif and webm", async () => {
    const gif = await makeClip(join(tmp.dir, "c.gif"), { frames: 4, extra: [] });
    const webm = await makeClip(join(tmp.dir, "c.webm"), {
      frames: 4,
      extra: ["-c:v", "libvpx-vp9", "-deadline", "realtime"],
    });
    expect(await readAllFrames(gif)).toHaveLength(4);
    expect((await readAllFrames(webm)).map((f) => f.width)).toEqual([64, 64, 64, 64]);
  });

  it("reads a 1-frame video", async () => {
    const one = await makeClip(join(tmp.dir, "one.mp4"), { frames: 1 });
    expect(await readAllFrames(one)).toHaveLength(1);
    expect((await probeVideo(one)).frameCount).toBe(1);
  });
});

describe("readFrames: streaming and cancellation", () => {
  it("applies backpressure: ffmpeg waits while the consumer does not pull", async () => {
    const long = await makeClip(join(tmp.dir, "long.mp4"), { frames: 300, rate: 30 });
    const it = readFrames(long)[Symbol.asyncIterator]();
    await it.next();
    await new Promise((r) => setTimeout(r, 600));
    // 300 frames of 9 KiB would have been written long ago without backpressure.
    expect(await ffmpegChildren()).toHaveLength(1);
    await it.return(undefined);
    expect(await ffmpegChildren()).toHaveLength(0);
  });

  it("kills ffmpeg when the consumer stops early (break)", async () => {
    for await (const f of readFrames(CAR)) {
      expect(f.index).toBe(0);
      expect(await ffmpegChildren()).toHaveLength(1);
      break;
    }
    expect(await ffmpegChildren()).toHaveLength(0);
  });

  it("an AbortSignal kills ffmpeg and throws CancelledError", async () => {
    const controller = new AbortController();
    const seen: number[] = [];
    const run = (async () => {
      for await (const f of readFrames(clip30, { signal: controller.signal })) {
        seen.push(f.index);
        if (f.index === 1) controller.abort();
      }
    })();
    await expectError(run, CancelledError, "E_CANCELLED", "was cancelled");
    expect(seen).toEqual([0, 1]);
    expect(await waitFor(async () => (await ffmpegChildren()).length === 0)).toBe(true);
  });

  it("reports progress with the expected total", async () => {
    const events: string[] = [];
    await readAllFrames(clip30, {
      maxFrames: 2,
      onProgress: (e) => events.push(e.status === "progress" ? `${e.done}/${e.total}` : e.status),
    });
    expect(events).toEqual(["start", "1/2", "2/2", "done"]);
  });
});

describe("readFrames: errors", () => {
  it("missing file -> FileNotFoundError", async () => {
    await expectError(
      readAllFrames(join(tmp.dir, "nope.mp4")),
      FileNotFoundError,
      "E_FILE_NOT_FOUND",
      "video not found",
    );
  });

  it("empty file -> VideoError", async () => {
    const empty = join(tmp.dir, "empty.mp4");
    await writeFile(empty, "");
    await expectError(readAllFrames(empty), VideoError, "E_VIDEO", /empty\.mp4: the file is empty/);
  });

  it("a text file named .mp4 -> VideoError with ffprobe's reason", async () => {
    const text = join(tmp.dir, "text.mp4");
    await writeFile(text, "this is not a video\n".repeat(20));
    const err = await expectError(
      readAllFrames(text),
      VideoError,
      "E_VIDEO",
      /text\.mp4: not a readable video \(ffprobe: .*Invalid data/,
    );
    expect(err.message).toMatch(/re-export/);
  });

  it("a truncated mp4 (moov at the end) -> VideoError", async () => {
    const cut = join(tmp.dir, "cut.mp4");
    await writeFile(cut, (await readFile(CAR)).subarray(0, 60_000));
    await expectError(readAllFrames(cut), VideoError, "E_VIDEO", /not a readable video.*moov atom not found/);
  });

  it("a truncated faststart mp4 -> VideoError after the frames it could decode", async () => {
    const fast = join(tmp.dir, "fast.mp4");
    await makeClip(fast, {
      frames: 30,
      extra: ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart"],
    });
    const bytes = await readFile(fast);
    const cut = join(tmp.dir, "fast-cut.mp4");
    await writeFile(cut, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    await expectError(readAllFrames(cut), VideoError, "E_VIDEO", /truncated|decoded \d+ of 30 frames/);
  });

  it("a file without a video stream -> VideoError", async () => {
    const audio = join(tmp.dir, "audio.m4a");
    const { execFile } = await import("node:child_process");
    await new Promise<void>((res, rej) =>
      execFile(
        "ffmpeg",
        ["-v", "error", "-f", "lavfi", "-i", "sine=duration=0.2", "-c:a", "aac", audio],
        (e) => (e ? rej(e) : res()),
      ),
    );
    await expectError(readAllFrames(audio), VideoError, "E_VIDEO", "has no video stream");
  });

  it("zero frames selected (start past the end of a stream without a frame count) -> VideoError", async () => {
    const webm = await makeClip(join(tmp.dir, "z.webm"), {
      frames: 3,
      extra: ["-c:v", "libvpx-vp9", "-deadline", "realtime"],
    });
    expect((await probeVideo(webm)).frameCount).toBeUndefined();
    await expectError(readAllFrames(webm, { start: 50 }), VideoError, "E_VIDEO", "no frames were decoded");
  });

  it("start past a known frame count, end <= start, bad stride -> InvalidArgumentError", async () => {
    await expectError(
      readAllFrames(CAR, { start: 9 }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "below the video's 9 frames",
    );
    await expectError(
      readAllFrames(CAR, { start: 4, end: 4 }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "for end",
    );
    await expectError(
      readAllFrames(CAR, { stride: 0 }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "for stride",
    );
    await expectError(readAllFrames(CAR, { fps: -1 }), InvalidArgumentError, "E_INVALID_ARGUMENT", "for fps");
    await expectError(
      readAllFrames(CAR, { crop: { x: 400, y: 0, width: 100, height: 10 } }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "inside the 480x480 frame",
    );
    await expectError(
      readAllFrames(CAR, { resize: { width: 0, height: 8 } }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "resize.width",
    );
  });

  it("frames above maxPixels -> VideoError naming the fix", async () => {
    await expectError(
      readAllFrames(CAR, { maxPixels: 1000 }),
      VideoError,
      "E_VIDEO",
      /480x480 exceed the limit of 1000 pixels.*resize/,
    );
    expect(
      await readAllFrames(CAR, { maxPixels: 1000, maxFrames: 1, resize: { width: 16, height: 16 } }),
    ).toHaveLength(1);
  });

  it("readAllFrames refuses more than maxTotalBytes", async () => {
    await expectError(
      readAllFrames(CAR, { maxTotalBytes: 1_000_000 }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "use readFrames",
    );
    expect(await waitFor(async () => (await ffmpegChildren()).length === 0)).toBe(true);
  });

  it("ffmpeg / ffprobe missing -> VideoError with the install hint", async () => {
    await expectError(
      readAllFrames(CAR, { ffprobePath: "/nonexistent/ffprobe" }),
      VideoError,
      "E_VIDEO",
      /ffprobe was not found.*apt-get install ffmpeg/,
    );
    await expectError(
      readAllFrames(CAR, { ffmpegPath: "/nonexistent/ffmpeg" }),
      VideoError,
      "E_VIDEO",
      /ffmpeg was not found.*apt-get install ffmpeg/,
    );
  });

  it("a PNG directory without frames -> VideoError; a pattern without matches -> FileNotFoundError", async () => {
    const dir = join(tmp.dir, "nopng");
    await mkdir(dir);
    await copyFile(CAR, join(dir, "x.mp4"));
    await expectError(readAllFrames(dir), VideoError, "E_VIDEO", "holds no .png frames");
    await expectError(
      readAllFrames(join(dir, "%05d.png")),
      FileNotFoundError,
      "E_FILE_NOT_FOUND",
      "frames matching the pattern",
    );
  });
});
