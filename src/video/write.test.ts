import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CancelledError, InvalidArgumentError, VideoError } from "../errors.js";
import type { Image } from "../image.js";
import { expectError, ffmpegChildren, makeTempDir, waitFor } from "../../test/helpers/video.js";
import { probeVideo } from "./probe.js";
import { readAllFrames } from "./read.js";
import { writeVideo } from "./write.js";

let tmp: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  tmp = await makeTempDir();
});
afterAll(async () => tmp.cleanup());

/** Smooth moving gradients (at most 250, no wrap-around edges): lossy round trips stay close. */
function gradient(width: number, height: number, t: number, channels: 1 | 3 = 3): Image {
  const data = new Uint8Array(width * height * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < channels; c++) {
        data[(y * width + x) * channels + c] = x * 2 + y * (c + 1) + t * 4 + c * 20;
      }
    }
  }
  return { width, height, channels, data };
}

function frames(n: number, width = 48, height = 32, channels: 1 | 3 = 3): Image[] {
  return Array.from({ length: n }, (_, t) => gradient(width, height, t, channels));
}

function meanAbs(a: Uint8Array, b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs((a[i] ?? 0) - (b[i] ?? 0));
  return sum / a.length;
}

async function listing(): Promise<string[]> {
  return (await readdir(tmp.dir)).sort();
}

describe("writeVideo: round trips", () => {
  it("mp4 (H.264, BT.601 tagged) reads back close, with the right count, size and rate", async () => {
    const path = join(tmp.dir, "rt.mp4");
    const input = frames(6);
    const written = await writeVideo(path, input, { fps: 12 });
    expect(written).toEqual({ path, frames: 6, width: 48, height: 32 });
    const info = await probeVideo(path);
    expect(info).toMatchObject({
      width: 48,
      height: 32,
      frameCount: 6,
      fps: { num: 12, den: 1 },
      codec: "h264",
      colorMatrix: "bt601",
    });
    const back = await readAllFrames(path);
    expect(back).toHaveLength(6);
    for (let i = 0; i < 6; i++)
      expect(meanAbs(back[i]?.data ?? new Uint8Array(), input[i]?.data ?? new Uint8Array())).toBeLessThan(4);
    // OpenCV-compatible decoding gives the same pixels (the file is tagged with the matrix it was made with).
    const opencv = await readAllFrames(path, { colorMatrix: "opencv" });
    expect(Buffer.from(opencv[0]?.data ?? []).equals(Buffer.from(back[0]?.data ?? []))).toBe(true);
  });

  it("odd sizes are padded to even for yuv420p (one black column/row)", async () => {
    const path = join(tmp.dir, "odd.mp4");
    await writeVideo(path, frames(2, 33, 21), { fps: 10 });
    expect(await probeVideo(path)).toMatchObject({ width: 34, height: 22, frameCount: 2 });
  });

  it("webm (vp9 and vp8) and gif", async () => {
    for (const [name, codec] of [
      ["a.webm", "vp9"],
      ["b.webm", "vp8"],
      ["c.gif", undefined],
    ] as const) {
      const path = join(tmp.dir, name);
      await writeVideo(path, frames(3), { fps: 10, ...(codec ? { codec } : {}) });
      const info = await probeVideo(path);
      expect(info.codec).toBe(codec ?? "gif");
      const back = await readAllFrames(path);
      expect(back).toHaveLength(3);
      expect(meanAbs(back[2]?.data ?? new Uint8Array(), frames(3)[2]?.data ?? new Uint8Array())).toBeLessThan(
        name.endsWith("gif") ? 12 : 6,
      );
    }
  });

  it("gray frames encode to mp4 and decode as RGB with R = G = B", async () => {
    const path = join(tmp.dir, "gray.mp4");
    await writeVideo(path, frames(2, 32, 32, 1), { fps: 10 });
    const [f] = await readAllFrames(path);
    if (!f) throw new Error("no frame");
    let spread = 0;
    for (let i = 0; i < 32 * 32; i++)
      spread = Math.max(spread, Math.abs((f.data[i * 3] ?? 0) - (f.data[i * 3 + 2] ?? 0)));
    expect(spread).toBeLessThanOrEqual(2);
  });

  it("PNG sequences (directory and pattern) round-trip exactly", async () => {
    const input = frames(3);
    const dir = join(tmp.dir, "pngs");
    async function* gen(): AsyncGenerator<Image> {
      yield* input;
    }
    expect((await writeVideo(dir, gen())).frames).toBe(3);
    expect(await readdir(dir)).toEqual(["frame_000000.png", "frame_000001.png", "frame_000002.png"]);
    const back = await readAllFrames(dir);
    for (let i = 0; i < 3; i++)
      expect(Buffer.from(back[i]?.data ?? []).equals(Buffer.from(input[i]?.data ?? []))).toBe(true);
    await writeVideo(join(tmp.dir, "pat", "%04d.png"), input);
    expect(await readdir(join(tmp.dir, "pat"))).toEqual(["0000.png", "0001.png", "0002.png"]);
    // Writing again replaces an earlier PNG sequence.
    await writeVideo(dir, input.slice(0, 1));
    expect(await readdir(dir)).toEqual(["frame_000000.png"]);
  });

  it("gray frames stay one-channel PNGs", async () => {
    const dir = join(tmp.dir, "gray-pngs");
    await writeVideo(dir, frames(2, 16, 8, 1));
    const { info } = await sharp(join(dir, "frame_000001.png")).toBuffer({ resolveWithObject: true });
    expect((await sharp(join(dir, "frame_000001.png")).metadata()).channels).toBe(1);
    expect(info.width).toBe(16);
  });

  it("writes a 1-frame video", async () => {
    const path = join(tmp.dir, "one.mp4");
    await writeVideo(path, frames(1), { fps: 10, quality: 90 });
    expect(await readAllFrames(path)).toHaveLength(1);
  });
});

describe("writeVideo: atomic output", () => {
  it("a failing frame source leaves no output and no temporary file, and kills ffmpeg", async () => {
    const before = await listing();
    async function* failing(): AsyncGenerator<Image> {
      yield gradient(48, 32, 0);
      yield gradient(48, 32, 1);
      throw new Error("upstream broke");
    }
    await expect(writeVideo(join(tmp.dir, "fail.mp4"), failing(), { fps: 10 })).rejects.toThrow(
      "upstream broke",
    );
    expect(await listing()).toEqual(before);
    expect(await waitFor(async () => (await ffmpegChildren()).length === 0)).toBe(true);
  });

  it("cancellation (AbortSignal) -> CancelledError, no output (video and PNG)", async () => {
    const before = await listing();
    for (const name of ["cancel.mp4", "cancel-pngs"]) {
      const controller = new AbortController();
      async function* slow(): AsyncGenerator<Image> {
        for (let t = 0; t < 100; t++) {
          if (t === 3) controller.abort();
          yield gradient(48, 32, t);
        }
      }
      await expectError(
        writeVideo(join(tmp.dir, name), slow(), { fps: 10, signal: controller.signal }),
        CancelledError,
        "E_CANCELLED",
        "was cancelled",
      );
    }
    expect(await listing()).toEqual(before);
    expect(await waitFor(async () => (await ffmpegChildren()).length === 0)).toBe(true);
  });

  it("a frame of another size -> InvalidArgumentError, no output", async () => {
    const before = await listing();
    const mixed = [gradient(48, 32, 0), gradient(40, 32, 1)];
    await expectError(
      writeVideo(join(tmp.dir, "mixed.mp4"), mixed, { fps: 10 }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      /48x32x3 frame like frames\[0\] for frames\[1\]/,
    );
    await expectError(
      writeVideo(join(tmp.dir, "mixed-png"), mixed),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "48x32x3",
    );
    expect(await listing()).toEqual(before);
  });

  it("ffmpeg missing -> VideoError with the install hint, no output", async () => {
    const before = await listing();
    await expectError(
      writeVideo(join(tmp.dir, "x.mp4"), frames(2), { ffmpegPath: "/nonexistent/ffmpeg" }),
      VideoError,
      "E_VIDEO",
      "apt-get install ffmpeg",
    );
    expect(await listing()).toEqual(before);
  });

  it("ffmpeg failing to encode -> VideoError with its exit code, no output", async () => {
    const before = await listing();
    await expectError(
      writeVideo(join(tmp.dir, "f.mp4"), frames(50), { ffmpegPath: "/bin/false" }),
      VideoError,
      "E_VIDEO",
      "could not encode the video (exit 1)",
    );
    expect(await listing()).toEqual(before);
  });

  it("a directory in the way of the output file -> VideoError, temporary file removed", async () => {
    await mkdir(join(tmp.dir, "isdir.mp4"));
    const before = await listing();
    await expectError(
      writeVideo(join(tmp.dir, "isdir.mp4"), frames(2), { fps: 10 }),
      VideoError,
      "E_VIDEO",
      /isdir\.mp4: cannot move the finished video into place/,
    );
    expect(await listing()).toEqual(before);
  });
});

describe("writeVideo: argument errors", () => {
  it("zero frames, bad extension, codec/container mismatch, crf and quality", async () => {
    const p = (name: string): string => join(tmp.dir, name);
    await expectError(
      writeVideo(p("none.mp4"), []),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "at least one frame",
    );
    await expectError(
      writeVideo(p("none-png"), []),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "at least one frame",
    );
    await expectError(
      writeVideo(p("v.avi"), frames(1)),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      ".mp4, .mov, .mkv, .webm or .gif",
    );
    await expectError(
      writeVideo(p("v.mp4"), frames(1), { codec: "vp9" }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "one of h264",
    );
    await expectError(
      writeVideo(p("v.mp4"), frames(1), { crf: 60 }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "from 0 to 51 for h264",
    );
    await expectError(
      writeVideo(p("v.mp4"), frames(1), { crf: 20, quality: 50 }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "left out when crf",
    );
    await expectError(
      writeVideo(p("v.webm"), frames(1), { quality: 0 }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "from 1 to 100",
    );
    await expectError(
      writeVideo(p("v.mp4"), frames(1), { fps: 0 }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "for fps",
    );
  });

  it("refuses to replace a directory holding other files with a PNG sequence", async () => {
    const dir = join(tmp.dir, "precious");
    await mkdir(dir);
    await writeFile(join(dir, "notes.txt"), "keep me");
    await expectError(
      writeVideo(dir, frames(1)),
      VideoError,
      "E_VIDEO",
      "refusing to replace this directory: it holds notes.txt",
    );
    expect(await readdir(dir)).toEqual(["notes.txt"]);
    expect((await readdir(tmp.dir)).filter((n) => n.startsWith("precious."))).toEqual([]);
  });
});
