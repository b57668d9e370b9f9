/**
 * `steadyframe metrics` on outputs of `steadyframe controls` for the bundled car-turn clip: the
 * source frames measured against themselves reproduce the OpenCV golden warping errors and a
 * perfect edge F1; a flickering copy scores worse than its reference.
 */
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, FileNotFoundError, InvalidArgumentError } from "../src/errors.js";
import type { Image } from "../src/image.js";
import { controlsCommand } from "../src/cli/commands/controls.js";
import { defaultMetricsOut, metricsCommand } from "../src/cli/commands/metrics.js";
import { readAllFrames } from "../src/video/read.js";
import { writeVideo } from "../src/video/write.js";
import { captureIO } from "./helpers/cli-io.js";
import { writeTinyConvModel } from "./helpers/tiny-onnx.js";
import { expectError, makeClip, makeTempDir } from "./helpers/video.js";

const CAR = new URL("fixtures/videos/car-turn-9f.mp4", import.meta.url).pathname;
const GOLDEN_CASE = new URL("fixtures/golden/opencv/car-turn/case.json", import.meta.url).pathname;

function numbersAfter(json: string, key: string): number[] {
  const m = new RegExp(`"${key}":\\s*\\[([^\\]]*)\\]`).exec(json);
  return m?.[1]?.split(",").map(Number) ?? [];
}

let tmp: { dir: string; cleanup: () => Promise<void> };
let ctl: string;
beforeAll(async () => {
  tmp = await makeTempDir();
  ctl = join(tmp.dir, "ctl");
  const args = [CAR, "--size", "256", "--frames", "8", "--preview", "none", "--out", ctl];
  expect(await controlsCommand.run(args, captureIO())).toBe(0);
});
afterAll(async () => tmp.cleanup());

describe("metrics", () => {
  it("source frames vs themselves: golden warping errors, edge F1 = 1, JSON written", async () => {
    const io = captureIO();
    const out = join(tmp.dir, "self.json");
    expect(await metricsCommand.run([join(ctl, "source"), "--controls", ctl, "--out", out], io)).toBe(0);
    expect(io.out()).toMatch(/8 frames at 256x256, reference .*source/);
    expect(io.out()).toMatch(/edge F1\s+1 /);
    const json = await readFile(out, "utf8");
    const golden = [...(await readFile(GOLDEN_CASE, "utf8")).matchAll(/"warp_error": ([0-9.e-]+)/g)].map(
      (m) => Number(m[1]),
    );
    const ours = numbersAfter(json, "pairs");
    expect(golden).toHaveLength(7);
    expect(ours).toHaveLength(7);
    ours.forEach((e, i) => expect(Math.abs(e - (golden[i] ?? 1))).toBeLessThan(1e-9));
    expect(JSON.parse(json)).toMatchObject({ schema: "steadyframe-metrics/1", frames: 8, size: [256, 256] });
  });

  it("a flickering copy has a higher warp error and flicker index than its reference", async () => {
    const source = await readAllFrames(join(ctl, "source"));
    const flicker: Image[] = source.map((f, i) => ({
      ...f,
      data: f.data.map((v) => Math.max(0, Math.min(255, v + (i % 2 === 0 ? 20 : -20)))),
    }));
    const dir = join(tmp.dir, "flicker");
    await writeVideo(dir, flicker);
    const io = captureIO();
    const out = join(tmp.dir, "flicker.json");
    expect(await metricsCommand.run([dir, "--reference", join(ctl, "source"), "--out", out], io)).toBe(0);
    const result: unknown = JSON.parse(await readFile(out, "utf8"));
    const text = JSON.stringify(result);
    const get = (path: RegExp): number => Number(path.exec(text)?.[1]);
    expect(get(/"warpError":\{[^}]*"mean":([0-9.e-]+)/)).toBeGreaterThan(
      5 * get(/"warpError":\{[^}]*"reference":([0-9.e-]+)/),
    );
    expect(get(/"flickerIndex":\{"video":([0-9.e-]+)/)).toBeGreaterThan(0.1);
    expect(get(/"flickerIndex":\{[^}]*"reference":([0-9.e-]+)/)).toBeLessThan(0.01);
  });

  it("writes <video>.metrics.json to the current folder by default, never beside the input", async () => {
    const inputs = join(tmp.dir, "inputs");
    await mkdir(inputs);
    const clip = await makeClip(join(inputs, "gen.mp4"), { width: 96, height: 96, frames: 4 });
    const work = join(tmp.dir, "work");
    await mkdir(work);
    const cwd = process.cwd();
    process.chdir(work);
    try {
      expect(
        await metricsCommand.run(
          [clip, "--reference", CAR, "--frames", "3", "--align", "index"],
          captureIO(),
        ),
      ).toBe(0);
    } finally {
      process.chdir(cwd);
    }
    expect(await readdir(inputs)).toEqual(["gen.mp4"]);
    expect(JSON.parse(await readFile(join(work, "gen.metrics.json"), "utf8"))).toMatchObject({
      frames: 3,
      size: [96, 96],
    });
    expect(defaultMetricsOut("a/b/clip.mp4", "/w")).toBe("/w/clip.metrics.json");
    expect(defaultMetricsOut("ctl/source/", "/w")).toBe("/w/source.metrics.json");
  });

  it("--depth compares depth maps with the reference (a video against itself: pearson 1)", async () => {
    const model = await writeTinyConvModel({ outputs: [{ name: "depth", weights: [1, 2, 3], bias: 0 }] });
    const out = join(tmp.dir, "depth.json");
    const args = [join(ctl, "source"), "--controls", ctl, "--frames", "3", "--depth", model, "--out", out];
    expect(await metricsCommand.run(args, captureIO())).toBe(0);
    const text = await readFile(out, "utf8");
    expect(Number(/"meanPearson": ([0-9.e-]+)/.exec(text)?.[1])).toBeCloseTo(1, 6);
    expect(Number(/"meanAlignedMse": ([0-9.e-]+)/.exec(text)?.[1])).toBeLessThan(1e-9);
  });

  it("errors: one frame, --depth without a reference, bad controls folder, bad options", async () => {
    const one = await makeClip(join(tmp.dir, "one.mp4"), { frames: 1 });
    await expectError(
      metricsCommand.run([one], captureIO()),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "at least 2 frames",
    );
    await expectError(
      metricsCommand.run([CAR, "--depth", "m.onnx"], captureIO()),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "--reference (or --controls)",
    );
    const bad = join(tmp.dir, "badctl");
    await mkdir(bad);
    await writeFile(join(bad, "metrics.json"), '{"size": "big"}');
    await expectError(
      metricsCommand.run([CAR, "--controls", bad], captureIO()),
      ConfigError,
      "E_CONFIG",
      'field "size" should be [width, height]',
    );
    await expectError(
      metricsCommand.run([CAR, "--frames", "1"], captureIO()),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "for --frames",
    );
    await expectError(
      metricsCommand.run([], captureIO()),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "exactly one video path",
    );
  });
});

describe("metrics: output path, alignment and messages (issue 13: bugs 4, 6, 8, 10)", () => {
  it("checks --out before decoding: a file as parent, /proc; creates missing parents only on success", async () => {
    const broken = join(tmp.dir, "broken.mp4");
    await writeFile(broken, "not a video");
    const blocker = join(tmp.dir, "blocker");
    await writeFile(blocker, "x");
    // the output is refused first, although the video is broken too
    await expectError(
      metricsCommand.run([broken, "--out", join(blocker, "m.json")], captureIO()),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      /--out .*blocker is a file, not a folder/,
    );
    await expectError(
      metricsCommand.run([broken, "--out", "/proc/steadyframe-m.json"], captureIO()),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      /--out .*kernel filesystem \(proc\)/,
    );
    // a run that fails after the check leaves no parent folders behind
    const one = await makeClip(join(tmp.dir, "one-frame.mp4"), { frames: 1 });
    await expectError(
      metricsCommand.run([one, "--out", join(tmp.dir, "made", "sub", "m.json")], captureIO()),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "at least 2 frames",
    );
    expect(await readdir(tmp.dir)).not.toContain("made");
    const out = join(tmp.dir, "made", "sub", "m.json");
    expect(await metricsCommand.run([CAR, "--frames", "2", "--out", out], captureIO())).toBe(0);
    expect(JSON.parse(await readFile(out, "utf8"))).toMatchObject({ frames: 2 });
  });

  it("refuses clips of different lengths or rates unless --align says how, then warns", async () => {
    const short = await makeClip(join(tmp.dir, "short.mp4"), { frames: 5, rate: 10 });
    const long = await makeClip(join(tmp.dir, "long.mp4"), { frames: 9, rate: 10 });
    const fast = await makeClip(join(tmp.dir, "fast20.mp4"), { frames: 9, rate: 20 });
    const out = join(tmp.dir, "align.json");
    await expectError(
      metricsCommand.run([short, "--reference", long, "--out", out], captureIO()),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      /the video has 5 frames at 10 fps, the reference 9 at 10 fps; pass --align index/,
    );
    await expectError(
      metricsCommand.run([fast, "--reference", long, "--out", out], captureIO()),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      /9 frames at 20 fps, the reference 9 at 10 fps/,
    );
    const io = captureIO();
    expect(await metricsCommand.run([short, "--reference", long, "--align", "index", "--out", out], io)).toBe(
      0,
    );
    expect(io.err()).toMatch(/warning: --align index: .*i < 5.*0 video and 4 reference frames left out/);
    expect(JSON.parse(await readFile(out, "utf8"))).toMatchObject({
      frames: 5,
      alignment: { mode: "index", referenceIndex: [0, 1, 2, 3, 4] },
    });
    const io2 = captureIO();
    expect(await metricsCommand.run([fast, "--reference", long, "--align", "time", "--out", out], io2)).toBe(
      0,
    );
    expect(io2.err()).toMatch(/warning: --align time: compared each of the first 9 video frames/);
    // 20 fps against 10 fps: video frame i pairs with reference frame round(i / 2)
    expect(JSON.parse(await readFile(out, "utf8"))).toMatchObject({
      frames: 9,
      alignment: { mode: "time", referenceIndex: [0, 1, 1, 2, 2, 3, 3, 4, 4] },
    });
  });

  it("--controls errors name the folder and what is expected; --depth errors name --depth", async () => {
    const missing = join(tmp.dir, "no-such-controls");
    const err = await expectError(
      metricsCommand.run([CAR, "--controls", missing], captureIO()),
      FileNotFoundError,
      "E_FILE_NOT_FOUND",
      `--controls folder not found: ${missing}`,
    );
    expect(err.message).toContain("output folder of 'steadyframe controls'");
    expect(err.message).not.toContain("(file)");
    const empty = join(tmp.dir, "empty-controls");
    await mkdir(empty);
    await expectError(
      metricsCommand.run([CAR, "--controls", empty], captureIO()),
      FileNotFoundError,
      "E_FILE_NOT_FOUND",
      "--controls metrics.json not found",
    );
    await expectError(
      metricsCommand.run(
        [join(ctl, "source"), "--controls", ctl, "--depth", join(tmp.dir, "nope.onnx")],
        captureIO(),
      ),
      FileNotFoundError,
      "E_FILE_NOT_FOUND",
      "--depth model not found",
    );
  });
});
