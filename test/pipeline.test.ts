import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/cli/main.js";
import { runConformance } from "../src/conformance/run.js";
import { readSafetensors } from "../src/weights/safetensors.js";
import { captureIO } from "./helpers/cli-io.js";

const GOLDEN = "test/fixtures/golden";
const FIXTURE = `${GOLDEN}/pipeline_controlnet`;
const PROMPT = "a photo of an astronaut riding a horse on mars";

async function pixels(path: string): Promise<Buffer> {
  return (await sharp(path).raw().toBuffer({ resolveWithObject: true })).data;
}

const tinyArgs = (out: string, extra: string[] = []): string[] => [
  "image",
  "--model",
  `${GOLDEN}/tiny-sd`,
  "--prompt",
  PROMPT,
  "--negative-prompt",
  "blurry, low quality",
  "--steps",
  "4",
  "--guidance",
  "7.5",
  "--width",
  "32",
  "--height",
  "32",
  "--scheduler",
  "ddim",
  "--latents",
  `${FIXTURE}/inputs.safetensors`,
  "--out",
  out,
  ...extra,
];

describe("Stable Diffusion pipeline", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "sf-pipe-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reproduces diffusers' StableDiffusionControlNetPipeline step by step", async () => {
    const results = await runConformance([FIXTURE]);
    const rows = results.flatMap((r) => r.rows);
    expect(rows.length).toBeGreaterThan(40);
    expect(rows.filter((r) => !r.pass)).toEqual([]);
  });

  it("`steadyframe image` with a ControlNet writes the golden picture", async () => {
    const out = join(dir, "cn.png");
    const cli = captureIO();
    const code = await main(
      tinyArgs(out, [
        "--controlnet",
        `${GOLDEN}/tiny-sd/controlnet`,
        "--control",
        `${FIXTURE}/control_image.png`,
      ]),
      cli,
    );
    expect(cli.err()).not.toContain("error");
    expect(code).toBe(0);
    const golden = (await readSafetensors(`${FIXTURE}/outputs.safetensors`)).get("image_uint8");
    const ours = await pixels(out);
    expect(golden?.shape).toEqual([1, 32, 32, 3]);
    let worst = 0;
    ours.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - (golden?.data[i] as number)))));
    expect(worst).toBeLessThanOrEqual(1); // case.json: one level where a value sits on a rounding boundary
  });

  it("runs without a ControlNet, deterministically per seed", async () => {
    const a = join(dir, "a.png");
    const b = join(dir, "b.png");
    const c = join(dir, "c.png");
    const base = tinyArgs("", [])
      .slice(0, -2)
      .filter((_, i, all) => all[i - 1] !== "--latents" && all[i] !== "--latents");
    expect(await main([...base, "--seed", "7", "--out", a], captureIO())).toBe(0);
    expect(await main([...base, "--seed", "7", "--out", b], captureIO())).toBe(0);
    expect(await main([...base, "--seed", "8", "--out", c], captureIO())).toBe(0);
    expect((await pixels(a)).equals(await pixels(b))).toBe(true);
    expect((await pixels(a)).equals(await pixels(c))).toBe(false);
  });

  it("loads the single-file checkpoint and .pth ControlNet to the same picture as the folder", async () => {
    const folder = join(dir, "folder.png");
    const single = join(dir, "single.png");
    const cn = ["--control", `${FIXTURE}/control_image.png`];
    expect(
      await main(tinyArgs(folder, ["--controlnet", `${GOLDEN}/tiny-sd/controlnet`, ...cn]), captureIO()),
    ).toBe(0);
    const args = tinyArgs(single, ["--controlnet", `${GOLDEN}/tiny-sd-single-file/controlnet.pth`, ...cn]);
    args[2] = `${GOLDEN}/tiny-sd-single-file/model.safetensors`;
    const cli = captureIO();
    expect(await main([...args, "--config", `${GOLDEN}/tiny-sd`], cli), cli.err()).toBe(0);
    expect((await pixels(single)).equals(await pixels(folder))).toBe(true);
  });

  it.each([
    [["--width", "30"], "Expected a multiple of 8 for --width but received 30"],
    [["--controlnet", `${GOLDEN}/tiny-sd/controlnet`], "one control image per --controlnet"],
    [["--steps", "0"], "Expected an integer >= 1 for --steps"],
    [["--scheduler", "foo"], 'for --scheduler but received "foo"'],
  ])("refuses %j with a clear message and writes nothing", async (extra, message) => {
    const out = join(dir, "bad.png");
    const cli = captureIO();
    expect(await main(tinyArgs(out, extra), cli)).toBe(2);
    expect(cli.err()).toContain(message);
    expect(await readdir(dir)).not.toContain("bad.png");
  });

  it("asks for --config with a single-file checkpoint", async () => {
    const cli = captureIO();
    const args = tinyArgs(join(dir, "x.png"));
    args[2] = `${GOLDEN}/tiny-sd-single-file/model.safetensors`;
    expect(await main(args, cli)).toBe(2);
    expect(cli.err()).toContain("pass --config <diffusers folder>");
  });

  it("stops when cancelled and leaves no file", async () => {
    const controller = new AbortController();
    controller.abort();
    const cli = captureIO(controller.signal);
    const out = join(dir, "cancelled.png");
    expect(await main(tinyArgs(out), cli)).toBe(130);
    expect(cli.err()).toContain("cancelled");
    expect((await readdir(dir)).filter((f) => f.includes("cancelled"))).toEqual([]);
  });
});
