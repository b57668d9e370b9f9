/**
 * `steadyframe image --uni` (issue 9 item 5, image part): a tiny Uni-ControlNet whose context width
 * matches the tiny-sd text encoder (32) is made here from the golden uni.ckpt's key set (same names
 * and shapes, except the 16-wide context / global dims, which become 32; random values), then the CLI
 * generates with local maps, a content image through the golden CLIP vision encoder (projection 32),
 * and the argument checks refuse what does not fit before anything loads.
 */
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/cli/main.js";
import { parseLocalNames, uniSizeFor } from "../src/cli/commands/image-uni.js";
import { readImageFile } from "../src/control/png.js";
import type { HostTensor } from "../src/tensor.js";
import { readTorchStateDict } from "../src/weights/pickle/index.js";
import { readSafetensors, writeSafetensors } from "../src/weights/safetensors.js";
import { captureIO } from "./helpers/cli-io.js";
import { widenContext } from "./helpers/tiny-uni.js";
import { GOLDEN } from "./helpers/golden-fixture.js";

const TINY = join(GOLDEN, "tiny-sd");
const FRAMES = join(GOLDEN, "opencv/car-turn/frames");
const ENCODER = join(GOLDEN, "clip_vision/model");

let tmp: string;
let uni: string;
let adapters: Map<string, HostTensor>;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "uni-cli-"));
  uni = join(tmp, "uni-tiny32.safetensors");
  const widened = widenContext(await readTorchStateDict(join(GOLDEN, "uni_controlnet/uni.ckpt")));
  await writeSafetensors(uni, widened);
  adapters = new Map([...widened].filter(([k]) => /^(local|global)_adapter\./.test(k)));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const base = (out: string, extra: string[] = []): string[] => [
  "image",
  "--uni",
  uni,
  "--model",
  TINY,
  "--prompt",
  "a red car",
  "--steps",
  "2",
  "--width",
  "64",
  "--height",
  "64",
  "--out",
  out,
  ...extra,
];

describe("steadyframe image --uni", () => {
  it("generates with two local maps and a content image (local and global strengths)", async () => {
    const out = join(tmp, "car.png");
    const io = captureIO();
    const code = await main(
      base(out, [
        "--local",
        "canny,depth",
        "--control",
        `${join(FRAMES, "frame_000.png")},${join(FRAMES, "frame_004.png")}`,
        "--global",
        join(FRAMES, "frame_002.png"),
        "--image-encoder",
        ENCODER,
        "--local-strength",
        "0.8",
        "--global-strength",
        "0.6",
      ]),
      io,
    );
    expect(io.err()).not.toMatch(/error/i);
    expect(code).toBe(0);
    expect(io.out()).toMatch(/written: .*car\.png \(64x64, Uni-ControlNet/);
    const picture = await readImageFile(out);
    expect([picture.width, picture.height]).toEqual([64, 64]);
  }, 180_000);

  it("refuses bad arguments before loading anything, naming the flag", async () => {
    const out = join(tmp, "bad.png");
    const cases: [string[], RegExp][] = [
      [["--local", "canny,normal", "--control", "a.png,b.png"], /--local/],
      [["--local", "canny,depth", "--control", join(FRAMES, "frame_000.png")], /--control/],
      [["--local", "canny,canny", "--control", "a.png,b.png"], /each map once/],
      [["--controlnet", TINY], /--controlnet/],
      [["--global", join(FRAMES, "frame_000.png")], /--image-encoder/],
      [["--local-strength", "-1"], /--local-strength/],
      [["--width", "40"], /--width/],
      [["--local", "canny", "--control", join(tmp, "absent.png")], /absent\.png/],
    ];
    for (const [extra, pattern] of cases) {
      const io = captureIO();
      const code = await main(base(out, extra), io);
      expect(code, extra.join(" ")).not.toBe(0);
      expect(io.err(), extra.join(" ")).toMatch(pattern);
    }
    expect(await stat(out).catch(() => undefined)).toBeUndefined();
  });

  it("with --config alone takes the text encoder and VAE from the checkpoint, and says when it has none", async () => {
    const io = captureIO();
    const args = base(join(tmp, "c.png")).map((a) => (a === "--model" ? "--config" : a));
    const code = await main(args, io);
    expect(code).not.toBe(0);
    expect(io.err()).toMatch(/text_encoder weights|cond_stage_model/);
  }, 120_000);

  it("takes UNet, text encoder and VAE from a full single-file uni checkpoint with --config", async () => {
    // tiny-sd's single file (model.diffusion_model / first_stage_model / cond_stage_model) + the adapters.
    const full = await readSafetensors(join(GOLDEN, "tiny-sd-single-file/model.safetensors"));
    const merged = join(tmp, "uni-full.safetensors");
    await writeSafetensors(merged, new Map([...full, ...adapters]));
    const out = join(tmp, "full.png");
    const io = captureIO();
    const args = base(out, ["--local", "hed", "--control", join(FRAMES, "frame_001.png")]).map((a) =>
      a === uni ? merged : a === "--model" ? "--config" : a,
    );
    const code = await main(args, io);
    expect(io.err()).not.toMatch(/error/i);
    expect(code).toBe(0);
    expect((await readImageFile(out)).width).toBe(64);
  }, 180_000);

  it("parses --local names with aliases and sizes images as the demo (short side 512, multiples of 64)", () => {
    expect(parseLocalNames("Canny, depth,pose")).toEqual(["canny", "midas", "openpose"]);
    expect(uniSizeFor(256, 128)).toEqual({ width: 1024, height: 512 });
    expect(uniSizeFor(640, 480)).toEqual({ width: 704, height: 512 });
  });
});
