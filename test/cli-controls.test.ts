/**
 * `steadyframe controls` end to end on the bundled car-turn clip at 256x256, against the OpenCV 4.6
 * golden fixture (test/fixtures/golden/opencv/car-turn): source frames, Canny maps and blended
 * in-between edge maps must match exactly; consistency masks and the source warping error closely
 * (Farneback in OpenCV.js differs from cv2 by ~2e-5 px; today the masks come out exact).
 */
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CancelledError, FileNotFoundError, InvalidArgumentError, VideoError } from "../src/errors.js";
import { controlsCommand } from "../src/cli/commands/controls.js";
import { readImageFile } from "../src/control/png.js";
import { readAllFrames } from "../src/video/read.js";
import { captureIO } from "./helpers/cli-io.js";
import { writeTinyConvModel } from "./helpers/tiny-onnx.js";
import { expectError, makeClip, makeTempDir } from "./helpers/video.js";

const CAR = new URL("fixtures/videos/car-turn-9f.mp4", import.meta.url).pathname;
const GOLDEN = new URL("fixtures/golden/opencv/car-turn/", import.meta.url).pathname;

async function pixels(path: string): Promise<Buffer> {
  return sharp(path).raw().toBuffer();
}

async function countDiff(a: string, b: string): Promise<number> {
  const [x, y] = [await pixels(a), await pixels(b)];
  expect(x.length).toBe(y.length);
  let n = 0;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) n++;
  return n;
}

const f = (i: number): string => `frame_${String(i).padStart(6, "0")}.png`;
const g = (i: number): string => String(i).padStart(3, "0");

let tmp: { dir: string; cleanup: () => Promise<void> };
let out: string;
beforeAll(async () => {
  tmp = await makeTempDir();
  out = join(tmp.dir, "ctl");
  const io = captureIO();
  const args = [CAR, "--canny", "100,200", "--flow", "--interpolate", "5", "--size", "256", "--frames", "8"];
  expect(await controlsCommand.run([...args, "--preview", "none", "--out", out], io)).toBe(0);
  expect(io.out()).toContain("8 frames ->");
});
afterAll(async () => tmp.cleanup());

describe("controls on car-turn vs the OpenCV golden fixture", () => {
  it("writes the expected folders and no previews with --preview none", async () => {
    expect((await readdir(out)).sort()).toEqual([
      "canny",
      "canny-interp",
      "flow",
      "metrics.json",
      "occlusion",
      "source",
    ]);
    expect(await readdir(join(out, "canny-interp"))).toHaveLength(7 * 6 + 1);
    expect(await readdir(join(out, "flow"))).toHaveLength(7);
  });

  it("source frames (decode + INTER_AREA) and Canny maps are bit-exact", async () => {
    for (let i = 0; i < 8; i++) {
      expect(await countDiff(join(out, "source", f(i)), `${GOLDEN}frames/frame_${g(i)}.png`)).toBe(0);
      expect(await countDiff(join(out, "canny", f(i)), `${GOLDEN}canny_100_200/edge_${g(i)}.png`)).toBe(0);
    }
  });

  it("in-between edge maps equal the fixture's addWeighted maps at t = k/6", async () => {
    for (const i of [0, 3, 6]) {
      for (let k = 0; k <= 5; k++) {
        const golden = `${GOLDEN}interp_100_200/interp_${g(i)}_${String(k).padStart(2, "0")}.png`;
        expect(await countDiff(join(out, "canny-interp", f(i * 6 + k)), golden)).toBe(0);
      }
    }
  });

  it("consistency masks and source warping errors agree with the fixture", async () => {
    const caseJson: unknown = JSON.parse(await readFile(`${GOLDEN}case.json`, "utf8"));
    const pairs =
      typeof caseJson === "object" && caseJson !== null && "warp_error" in caseJson
        ? caseJson.warp_error
        : undefined;
    const golden = JSON.stringify(pairs)
      .match(/"warp_error":[0-9.e-]+/g)
      ?.map((s) => Number(s.split(":")[1]));
    const metrics: unknown = JSON.parse(await readFile(join(out, "metrics.json"), "utf8"));
    const ours = JSON.stringify(metrics)
      .match(/"warpError":\[([^\]]*)\]/)?.[1]
      ?.split(",")
      .map(Number);
    expect(golden).toHaveLength(7);
    expect(ours).toHaveLength(7);
    for (let i = 0; i < 7; i++) expect(Math.abs((ours?.[i] ?? 0) - (golden?.[i] ?? 1))).toBeLessThan(1e-9);
    for (let i = 0; i < 7; i++) {
      // Exact today (OpenCV.js is deterministic); the flow differs from cv2 by ~2e-5 px, so a
      // future OpenCV.js may flip a few pixels that sit on the threshold.
      expect(
        await countDiff(join(out, "occlusion", f(i)), `${GOLDEN}consistency/mask_${g(i)}.png`),
      ).toBeLessThan(66);
    }
  });

  it("metrics.json records settings and the fixture's edge pixel fractions", async () => {
    const text = await readFile(join(out, "metrics.json"), "utf8");
    expect(text).toContain('"schema": "steadyframe-controls/1"');
    expect(text).toMatch(/"edgePixelFraction": \[\s*0\.0729217/);
  });
});

describe("controls: outputs, atomicity and errors", () => {
  it("writes preview videos with the sequence's rate", async () => {
    const dir = join(tmp.dir, "prev");
    expect(
      await controlsCommand.run(
        [CAR, "--size", "64", "--frames", "3", "--interpolate", "1", "--out", dir],
        captureIO(),
      ),
    ).toBe(0);
    expect((await readdir(dir)).filter((n) => n.endsWith(".mp4")).sort()).toEqual([
      "canny-interp.mp4",
      "canny.mp4",
      "source.mp4",
    ]);
    expect(await readAllFrames(join(dir, "canny-interp.mp4"))).toHaveLength(5);
  });

  it("--depth writes clip-normalised depth maps from an ONNX model", async () => {
    // depth = R + 2G + 3B of the normalised input: a 1x1 Conv, enough to check the plumbing.
    const model = await writeTinyConvModel({ outputs: [{ name: "depth", weights: [1, 2, 3], bias: 0 }] });
    const dir = join(tmp.dir, "depth");
    const args = [CAR, "--depth", model, "--size", "32", "--frames", "3", "--preview", "none", "--out", dir];
    expect(await controlsCommand.run(args, captureIO())).toBe(0);
    expect((await readdir(dir)).sort()).toEqual(["depth", "metrics.json", "source"]);
    let lo = 255;
    let hi = 0;
    for (let i = 0; i < 3; i++) {
      const { data, width, height, channels } = await readImageFile(join(dir, "depth", f(i)));
      expect([width, height, channels]).toEqual([32, 32, 1]);
      for (const v of data) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
    }
    expect([lo, hi]).toEqual([0, 255]); // one range over the whole clip
    expect(await readFile(join(dir, "metrics.json"), "utf8")).toContain('"normalization": "clip"');
  });

  it("refuses an existing --out; --overwrite replaces only an earlier controls output", async () => {
    const args = [CAR, "--size", "32", "--frames", "2", "--preview", "none"];
    await expectError(
      controlsCommand.run([...args, "--out", out], captureIO()),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "does not exist yet",
    );
    const foreign = join(tmp.dir, "foreign");
    await mkdir(foreign);
    await writeFile(join(foreign, "keep.txt"), "x");
    await expectError(
      controlsCommand.run([...args, "--overwrite", "--out", foreign], captureIO()),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "earlier controls output",
    );
    expect(await readdir(foreign)).toEqual(["keep.txt"]);
    const again = join(tmp.dir, "again");
    expect(await controlsCommand.run([...args, "--out", again], captureIO())).toBe(0);
    expect(
      await controlsCommand.run([...args, "--frames", "3", "--overwrite", "--out", again], captureIO()),
    ).toBe(0);
    expect(await readdir(join(again, "source"))).toEqual([f(0), f(1), f(2)]);
  });

  it("a video that fails mid-way leaves neither the output nor the temporary folder", async () => {
    const fast = await makeClip(join(tmp.dir, "fast.mp4"), {
      frames: 30,
      extra: ["-c:v", "libx264", "-movflags", "+faststart"],
    });
    const cut = join(tmp.dir, "cut.mp4");
    await writeFile(cut, (await readFile(fast)).subarray(0, 9000));
    const before = (await readdir(tmp.dir)).sort();
    await expectError(
      controlsCommand.run([cut, "--size", "32", "--out", join(tmp.dir, "bad")], captureIO()),
      VideoError,
      "E_VIDEO",
      "truncated",
    );
    expect((await readdir(tmp.dir)).sort()).toEqual(before);
  });

  it("a 1-frame video is refused with a clear message and leaves nothing", async () => {
    const still = await makeClip(join(tmp.dir, "still.mp4"), { frames: 1 });
    const before = (await readdir(tmp.dir)).sort();
    await expectError(
      controlsCommand.run([still, "--size", "32", "--out", join(tmp.dir, "still-out")], captureIO()),
      VideoError,
      "E_VIDEO",
      "has only 1 frame(s); control maps need a video of at least 2 frames",
    );
    expect((await readdir(tmp.dir)).sort()).toEqual(before);
  });

  it("Ctrl-C (the io signal) cancels and cleans up", async () => {
    const controller = new AbortController();
    controller.abort();
    const before = (await readdir(tmp.dir)).sort();
    await expectError(
      controlsCommand.run(
        [CAR, "--size", "32", "--out", join(tmp.dir, "cancel")],
        captureIO(controller.signal),
      ),
      CancelledError,
      "E_CANCELLED",
      "cancelled",
    );
    expect((await readdir(tmp.dir)).sort()).toEqual(before);
  });

  it("bad options -> InvalidArgumentError", async () => {
    const run = (...a: string[]): Promise<number> =>
      controlsCommand.run([CAR, "--out", join(tmp.dir, "x"), ...a], captureIO());
    await expectError(run("--size", "0"), InvalidArgumentError, "E_INVALID_ARGUMENT", "for --size");
    await expectError(run("--canny", "100"), InvalidArgumentError, "E_INVALID_ARGUMENT", "low,high");
    await expectError(
      run("--interpolate-mode", "warp", "--canny", "1,2"),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "blend, flow",
    );
    await expectError(run("--frames=0"), InvalidArgumentError, "E_INVALID_ARGUMENT", "for --frames");
    await expectError(
      controlsCommand.run([CAR], captureIO()),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "for --out",
    );
  });
});

describe("controls: day-one fixes (issue 13: bugs 4, 8, 9, 10, --size, --json)", () => {
  it("--out on /proc is refused at once instead of hanging", async () => {
    const run = controlsCommand.run([CAR, "--out", "/proc/steadyframe-x"], captureIO());
    const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error("hung")), 5000));
    await expectError(
      Promise.race([run, timeout]),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      /--out .*kernel filesystem \(proc\)/,
    );
  });

  it("--out under a file is refused before the video is read; nothing is created", async () => {
    const blocker = join(tmp.dir, "blocker");
    await writeFile(blocker, "x");
    const before = (await readdir(tmp.dir)).sort();
    await expectError(
      controlsCommand.run([join(tmp.dir, "missing.mp4"), "--out", join(blocker, "ctl")], captureIO()),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      /--out .*blocker is a file, not a folder/,
    );
    // a new nested --out whose run fails leaves none of the parent folders it made
    const still = await makeClip(join(tmp.dir, "still1.mp4"), { frames: 1 });
    const withClip = (await readdir(tmp.dir)).sort();
    await expectError(
      controlsCommand.run([still, "--size", "32", "--out", join(tmp.dir, "n1", "n2", "ctl")], captureIO()),
      VideoError,
      "E_VIDEO",
      "at least 2 frames",
    );
    expect((await readdir(tmp.dir)).sort()).toEqual(withClip);
    expect(withClip.filter((n) => !before.includes(n))).toEqual(["still1.mp4"]);
  });

  it("--flow --interpolate 1 works with the default Canny 100,200, as --help says", async () => {
    const dir = join(tmp.dir, "flow-interp");
    const args = [CAR, "--flow", "--interpolate", "1", "--size", "32", "--frames", "3", "--preview", "none"];
    expect(await controlsCommand.run([...args, "--out", dir], captureIO())).toBe(0);
    expect((await readdir(dir)).sort()).toEqual([
      "canny",
      "canny-interp",
      "flow",
      "metrics.json",
      "occlusion",
      "source",
    ]);
    expect(JSON.parse(await readFile(join(dir, "metrics.json"), "utf8"))).toMatchObject({
      canny: { threshold1: 100, threshold2: 200 },
    });
  });

  it("--size N keeps the aspect ratio (short side N, multiples of 8); WxH is exact; --json", async () => {
    const wide = await makeClip(join(tmp.dir, "wide.mp4"), { width: 160, height: 90, frames: 3 });
    const dir = join(tmp.dir, "wide-ctl");
    const io = captureIO();
    const args = [wide, "--size", "32", "--preview", "none", "--json", "--out", dir];
    expect(await controlsCommand.run(args, io)).toBe(0);
    const summary: unknown = JSON.parse(io.out());
    // 160x90 -> short side 32: 56.9 x 32 -> 56 x 32
    expect(summary).toMatchObject({
      schema: "steadyframe-controls-run/1",
      frames: 3,
      size: [56, 32],
      fps: 10,
      metrics: join(dir, "metrics.json"),
      sequences: [
        { name: "source", dir: join(dir, "source"), preview: null },
        { name: "canny", dir: join(dir, "canny"), preview: null },
      ],
    });
    expect(await readImageFile(join(dir, "canny", f(0)))).toMatchObject({ width: 56, height: 32 });
    const exact = join(tmp.dir, "exact-ctl");
    expect(
      await controlsCommand.run([wide, "--size", "40x24", "--preview", "none", "--out", exact], captureIO()),
    ).toBe(0);
    expect(await readImageFile(join(exact, "source", f(0)))).toMatchObject({ width: 40, height: 24 });
  });

  it("a missing --depth model is named as --depth; a depth run leaves no /tmp/mat-debug-<pid>.log", async () => {
    const err = await expectError(
      controlsCommand.run(
        [CAR, "--depth", join(tmp.dir, "none.onnx"), "--out", join(tmp.dir, "d")],
        captureIO(),
      ),
      FileNotFoundError,
      "E_FILE_NOT_FOUND",
      "check the --depth path",
    );
    expect(err.message).not.toContain("--model");
    const model = await writeTinyConvModel({ outputs: [{ name: "depth", weights: [1, 2, 3], bias: 0 }] });
    const args = [CAR, "--depth", model, "--size", "32", "--frames", "2", "--preview", "none"];
    expect(await controlsCommand.run([...args, "--out", join(tmp.dir, "d2")], captureIO())).toBe(0);
    // ORT's telemetry client puts it in $TMPDIR (the test run's own folder), else /tmp
    for (const dir of new Set([tmpdir(), "/tmp"]))
      expect(existsSync(join(dir, `mat-debug-${process.pid}.log`))).toBe(false);
  });
});
