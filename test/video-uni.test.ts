/**
 * `steadyframe video --uni` on a tiny Uni-ControlNet (test/helpers/tiny-uni.ts over the golden
 * uni.ckpt key set, context width 32) with tiny-sd's text encoder, VAE and scheduler, on the bundled
 * car-turn clip: the study's strategies with local conditions only (maps of the source, of the previous
 * output, interpolated), global only (a content image), both, and content-flow with the previous frame
 * as content; the local strength acts (0 differs from 1);
 * flags that cannot work are refused before anything loads.
 */
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/cli/main.js";
import { readTorchStateDict } from "../src/weights/pickle/index.js";
import { writeSafetensors } from "../src/weights/safetensors.js";
import { captureIO } from "./helpers/cli-io.js";
import { GOLDEN } from "./helpers/golden-fixture.js";
import { widenContext } from "./helpers/tiny-uni.js";

const CLIP = "test/fixtures/videos/car-turn-9f.mp4";
const ENCODER = join(GOLDEN, "clip_vision/model");
const CONTENT = join(GOLDEN, "opencv/car-turn/frames/frame_002.png");
let dir = "";
let uni = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sf-video-uni-"));
  uni = join(dir, "uni-tiny32.safetensors");
  await writeSafetensors(
    uni,
    widenContext(await readTorchStateDict(join(GOLDEN, "uni_controlnet/uni.ckpt"))),
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const run = async (argv: string[]) => {
  const io = captureIO();
  const code = await main(argv, io);
  return { code, out: io.out(), err: io.err() };
};
const args = (out: string, extra: string[]): string[] => [
  "video",
  CLIP,
  "--model",
  join(GOLDEN, "tiny-sd"),
  "--uni",
  uni,
  "--prompt",
  "a red car on a road",
  "--size",
  "64x64",
  "--frames",
  "3",
  "--steps",
  "2",
  "--scheduler",
  "ddim",
  "--cache-dir",
  join(dir, "cache"),
  "--out",
  out,
  ...extra,
];
const frames = async (d: string) =>
  Promise.all(
    (await readdir(d))
      .filter((f) => f.endsWith(".png"))
      .sort()
      .map((f) => readFile(join(d, f))),
  );

describe("steadyframe video --uni", () => {
  it.each([
    ["local only", ["--local", "canny", "--attention", "first"] as string[]],
    [
      "true generation (maps of the previous output)",
      ["--local", "canny", "--controls-from", "previous-output"],
    ],
    ["edge interpolation", ["--local", "canny", "--controls-from", "interpolated", "--interpolate", "1"]],
    ["global only", ["--global", CONTENT, "--image-encoder", ENCODER]],
    ["both", ["--local", "canny", "--global", CONTENT, "--image-encoder", ENCODER, "--noise", "shared"]],
    [
      "content-flow with the previous frame as content",
      [
        "--controls-from",
        "content-flow",
        "--attention",
        "per-frame",
        "--global",
        "previous",
        "--image-encoder",
        ENCODER,
      ],
    ],
  ] as const)(
    "%s: renders every frame and records the Uni settings",
    async (name, extra) => {
      const out = join(dir, name.replace(/\W+/g, "-"));
      const r = await run(args(out, [...extra]));
      expect(r.err, r.err).not.toMatch(/error/i);
      expect(r.code).toBe(0);
      expect((await frames(out)).length).toBe(3);
      const runJson = JSON.parse(await readFile(join(out, "run.json"), "utf8")) as {
        settings: { uni?: { local: string[]; global: string | null } };
        methods: { id: string }[];
      };
      const flags: readonly string[] = extra;
      expect(runJson.settings.uni?.local).toEqual(flags.includes("canny") ? ["canny"] : []);
      if (flags.includes("previous"))
        expect(runJson.methods.map((m) => m.id)).toContain("reference:previous-output");
    },
    240_000,
  );

  it("the local strength acts: 0 and 1 give different frames", async () => {
    const outs = ["s0", "s1"].map((n) => join(dir, n));
    for (const [k, out] of outs.entries()) {
      const r = await run(args(out, ["--local", "canny", "--local-strength", String(k)]));
      expect(r.code, r.err).toBe(0);
    }
    const [a, b] = await Promise.all(outs.map(frames));
    expect(a?.some((png, i) => Buffer.compare(png, b?.[i] ?? Buffer.alloc(0)) !== 0)).toBe(true);
  }, 240_000);

  it.each([
    [["--local", "canny", "--controlnet", join(GOLDEN, "tiny-sd/controlnet")], "--controlnet"],
    [["--local", "hed"], "--hed"],
    [["--local", "canny,normal"], "condition"],
    [["--global", CONTENT], "--image-encoder"],
    [
      [
        "--global",
        "previous",
        "--image-encoder",
        ENCODER,
        "--controls-from",
        "content-flow",
        "--local",
        "canny",
      ],
      "--local",
    ],
  ] as const)("refuses %j naming %s", async (extra, flag) => {
    const r = await run(args(join(dir, "refused"), [...extra]));
    expect(r.code).not.toBe(0);
    expect(r.err).toContain(flag);
  });

  it("--local without --uni is refused", async () => {
    const r = await run(
      args(join(dir, "x"), ["--local", "canny"]).filter(
        (a, i, all) => a !== "--uni" && all[i - 1] !== "--uni",
      ),
    );
    expect(r.code).not.toBe(0);
    expect(r.err).toContain("--uni");
  });
});
