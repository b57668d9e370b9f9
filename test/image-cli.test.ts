/**
 * `steadyframe image` as a new user meets it (issue 13): diffusers' own configs, control images
 * written by `steadyframe controls`, output paths and arguments checked before any model loads,
 * long prompts, 64-bit seeds, flag names in messages, several images, JSON, devices, img2img.
 */
import { copyFile, cp, mkdir, mkdtemp, readFile, readdir, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/cli/main.js";
import { parseSeed } from "../src/cli/commands/image.js";
import { runConformance } from "../src/conformance/run.js";
import { readImageFile, writePngFile } from "../src/control/png.js";
import { image } from "../src/image.js";
import { toRGB } from "../src/pipeline/images.js";
import { captureIO } from "./helpers/cli-io.js";

const GOLDEN = "test/fixtures/golden";
const TINY = `${GOLDEN}/tiny-sd`;
const CONTROL = `${GOLDEN}/pipeline_controlnet/control_image.png`;

const args = (out: string, extra: string[] = [], model = TINY): string[] => [
  "image",
  "--model",
  model,
  "--prompt",
  "a photo of an astronaut riding a horse on mars",
  "--steps",
  "2",
  "--width",
  "32",
  "--height",
  "32",
  "--scheduler",
  "ddim",
  "--out",
  out,
  ...extra,
];

async function pixels(path: string): Promise<Buffer> {
  return (await sharp(path).raw().toBuffer({ resolveWithObject: true })).data;
}

async function run(argv: string[], signal?: AbortSignal) {
  const io = captureIO(signal);
  const code = await main(argv, io);
  return { code, out: io.out(), err: io.err() };
}

describe("steadyframe image (issue 13)", () => {
  let dir: string;
  /** A tiny-sd copy whose UNet weights are garbage: anything that loads the models fails on them. */
  let broken: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "sf-image-cli-"));
    broken = join(dir, "broken-sd");
    await cp(TINY, broken, { recursive: true });
    await truncate(join(broken, "unet", "diffusion_pytorch_model.safetensors"), 100);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("bug 1: a diffusers folder whose DPM++ scheduler config holds -Infinity generates an image", async () => {
    const model = join(dir, "tiny-sd-dpm");
    await cp(TINY, model, { recursive: true });
    // diffusers' own save_pretrained output (golden copy): "lambda_min_clipped": -Infinity
    await copyFile(
      `${GOLDEN}/schedulers/dpmsolver_multistep/scheduler/scheduler_config.json`,
      join(model, "scheduler", "scheduler_config.json"),
    );
    const out = join(dir, "dpm.png");
    const argv = args(out, [], model).filter(
      (a, i, all) => a !== "--scheduler" && all[i - 1] !== "--scheduler",
    );
    const r = await run(argv);
    expect(r.err).not.toContain("error");
    expect(r.code).toBe(0);
    expect((await pixels(out)).length).toBe(32 * 32 * 3);
  });

  it("bug 1: conformance reads a case.json with Python's NaN", async () => {
    const caseDir = join(dir, "nan-case");
    await cp(`${GOLDEN}/rng`, caseDir, { recursive: true });
    const json = await readFile(join(caseDir, "case.json"), "utf8");
    await writeFile(join(caseDir, "case.json"), json.replace(/^\{/, '{"observed_nan": NaN, '));
    const [result] = await runConformance([caseDir]);
    const rows = result?.rows ?? [];
    expect(rows.map((r) => r.note ?? "").join(" ")).not.toContain("unreadable case.json");
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.filter((r) => !r.pass)).toEqual([]);
  });

  it("bug 3: gray PNGs written by `steadyframe controls` and RGBA PNGs drive the ControlNet as RGB", async () => {
    const controls = join(dir, "controls");
    const c = await run([
      "controls",
      "test/fixtures/videos/car-turn-9f.mp4",
      "--canny",
      "100,200",
      "--frames",
      "2",
      "--size",
      "32x32",
      "--preview",
      "none",
      "--out",
      controls,
    ]);
    expect(c.code, c.err).toBe(0);
    const cannyDir = (await readdir(controls)).find((d) => d.startsWith("canny")) ?? "canny";
    const [first] = (await readdir(join(controls, cannyDir))).filter((f) => f.endsWith(".png")).sort();
    const gray = join(controls, cannyDir, first ?? "");
    const grayImage = await readImageFile(gray);
    expect(grayImage.channels).toBe(1);
    // The same picture as a 3-channel PNG (gray repeated, as PIL's convert("RGB")), built by hand.
    const rgbData = new Uint8Array(grayImage.width * grayImage.height * 3);
    grayImage.data.forEach((g, i) => rgbData.fill(g, i * 3, i * 3 + 3));
    const rgbPath = join(dir, "canny-rgb.png");
    await writePngFile(rgbPath, image(grayImage.width, grayImage.height, 3, rgbData));
    // And the golden control image with a (varying) alpha channel added.
    const rgb = await readImageFile(CONTROL);
    const rgba = new Uint8Array(rgb.width * rgb.height * 4);
    for (let i = 0; i < rgb.width * rgb.height; i++) {
      rgba.set(rgb.data.subarray(i * 3, i * 3 + 3), i * 4);
      rgba[i * 4 + 3] = (i * 37) % 256;
    }
    const rgbaPath = join(dir, "control-rgba.png");
    await writePngFile(rgbaPath, image(rgb.width, rgb.height, 4, rgba));

    const net = ["--controlnet", `${TINY}/controlnet`, "--seed", "3"];
    const outs = ["gray", "rgb", "rgba", "orig"].map((n) => join(dir, `ctl-${n}.png`));
    for (const [path, control] of [
      [outs[0], gray],
      [outs[1], rgbPath],
      [outs[2], rgbaPath],
      [outs[3], CONTROL],
    ] as const) {
      const r = await run(args(path ?? "", [...net, "--control", control]));
      expect(r.code, r.err).toBe(0);
    }
    expect((await pixels(outs[0] ?? "")).equals(await pixels(outs[1] ?? ""))).toBe(true);
    expect((await pixels(outs[2] ?? "")).equals(await pixels(outs[3] ?? ""))).toBe(true);
  });

  it("toRGB repeats gray and drops alpha, as PIL convert('RGB')", () => {
    expect([...toRGB(image(2, 1, 1, Uint8Array.of(7, 200))).data]).toEqual([7, 7, 7, 200, 200, 200]);
    expect([...toRGB(image(1, 1, 4, Uint8Array.of(1, 2, 3, 0))).data]).toEqual([1, 2, 3]);
  });

  it("bug 4: a missing output folder is created; on cancellation it is removed again", async () => {
    const out = join(dir, "new-a", "new-b", "o.png");
    const ok = await run(args(out));
    expect(ok.code, ok.err).toBe(0);
    expect(await readdir(join(dir, "new-a", "new-b"))).toEqual(["o.png"]);
    const controller = new AbortController();
    controller.abort();
    const cancelled = await run(args(join(dir, "new-c", "new-d", "o.png")), controller.signal);
    expect(cancelled.code).toBe(130);
    expect(await readdir(dir)).not.toContain("new-c");
  });

  it.each([
    [["--out", "/proc/steadyframe-test.png"], "--out", "/proc/steadyframe-test.png"],
    [["--out", "FILE/o.png"], "--out", "is a file, not a folder"],
    [["--out", "DIR"], "--out", "is a folder"],
    [["--width", "60"], "--width", "Expected a multiple of 8 for --width but received 60"],
    [["--width", "4"], "--width", "an integer >= 8"],
    [
      ["--latents", `${GOLDEN}/pipeline_controlnet/inputs.safetensors`, "--width", "64"],
      "--latents",
      "[1, 4, 16, 32]",
    ],
    [["--controlnet", `${TINY}/controlnet`, "--control", "nope.png"], "--control", "nope.png"],
    [["--controlnet", `${TINY}/controlnet`, "--control", "README.md"], "--control", "cannot decode"],
    [["--init-image", "nope.png"], "--init-image", "nope.png"],
    [["--strength", "0.5"], "--strength", "--init-image"],
    [["--clip-skip", "2"], "--clip-skip", "from 0 to 1"],
    [["--seed", "18446744073709551616"], "--seed", "2^64-1"],
    [["--num-images", "0"], "--num-images", "an integer from 1"],
    [["--device", "tpu"], "--device", "cpu, cuda, webgpu"],
  ])("bugs 4, 5, 8: %j is refused before any model loads, naming the flag", async (extra, flag, text) => {
    await writeFile(join(dir, "a-file"), "x");
    await mkdir(join(dir, "folder.png"), { recursive: true });
    const fixed = extra.map((a) =>
      a === "FILE/o.png" ? join(dir, "a-file", "o.png") : a === "DIR" ? join(dir, "folder.png") : a,
    );
    const base = args(join(dir, "refused.png"), [], broken);
    const argv = fixed.includes("--out") ? [...base.slice(0, -2), ...fixed] : [...base, ...fixed];
    const r = await run(argv);
    expect(r.err).toContain(flag);
    expect(r.err).toContain(text);
    expect(r.err).not.toContain("diffusion_pytorch_model"); // the broken UNet was never opened
    expect(r.err).not.toContain("of type string");
    expect(r.err).not.toContain("internal error");
    expect([1, 2]).toContain(r.code);
    expect(await readdir(dir)).not.toContain("refused.png");
  });

  it("bug 8: --config with a file says it needs a diffusers folder and how to get one", async () => {
    const yaml = join(dir, "v1-inference.yaml");
    await writeFile(yaml, "model: {}\n");
    const single = `${GOLDEN}/tiny-sd-single-file/model.safetensors`;
    const r = await run(args(join(dir, "y.png"), ["--config", yaml], single));
    expect(r.code).toBe(2);
    expect(r.err).toContain("--config needs a diffusers folder");
    expect(r.err).toContain("huggingface-cli download");
    const none = await run(args(join(dir, "y.png"), [], single));
    expect(none.err).toContain("for --config");
    expect(none.err).not.toContain("configDir");
  });

  it("bug 8: --clip-skip 0 is the default layer and 1 the penultimate", async () => {
    const [a, b, c] = ["cs-none", "cs-0", "cs-1"].map((n) => join(dir, `${n}.png`));
    expect((await run(args(a ?? ""))).code).toBe(0);
    expect((await run(args(b ?? "", ["--clip-skip", "0"]))).code).toBe(0);
    expect((await run(args(c ?? "", ["--clip-skip", "1"]))).code).toBe(0);
    expect((await pixels(a ?? "")).equals(await pixels(b ?? ""))).toBe(true);
    expect((await pixels(a ?? "")).equals(await pixels(c ?? ""))).toBe(false);
  });

  it("bug 7: a prompt over 77 tokens warns with the cut text", async () => {
    const prompt = `${"a ".repeat(75)}purple giraffe`;
    const argv = args(join(dir, "long.png"));
    argv[argv.indexOf("--prompt") + 1] = prompt;
    const r = await run(argv);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toContain('this part was cut: "purple giraffe"');
  });

  it("bug 7: any 64-bit seed is taken as text, exactly (torch seeds with its low 32 bits)", async () => {
    expect(parseSeed("18446744073709551615")).toBe(2n ** 64n - 1n);
    expect(parseSeed("9007199254740993")).toBe(2n ** 53n + 1n);
    expect(parseSeed("-9223372036854775808")).toBe(-(2n ** 63n));
    const [big, low, zero] = ["seed-big", "seed-low", "seed-zero"].map((n) => join(dir, `${n}.png`));
    const r = await run(args(big ?? "", ["--seed", "18446744073709551615"]));
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain("seed 18446744073709551615");
    expect((await run(args(low ?? "", ["--seed", "4294967295"]))).code).toBe(0);
    expect((await run(args(zero ?? "", ["--seed", "0"]))).code).toBe(0);
    expect((await pixels(big ?? "")).equals(await pixels(low ?? ""))).toBe(true);
    expect((await pixels(big ?? "")).equals(await pixels(zero ?? ""))).toBe(false);
  });

  it("--num-images with --json: seeds seed, seed+1 in <out>-<seed>.png, one JSON object on stdout", async () => {
    const out = join(dir, "many", "car.png");
    const r = await run(args(out, ["--seed", "7", "--num-images", "2", "--json"]));
    expect(r.code, r.err).toBe(0);
    const report = JSON.parse(r.out) as {
      images: { path: string; seed: string; seconds: number }[];
      timings: { loadSeconds: number; totalSeconds: number };
    };
    expect(report.images.map((i) => [i.path, i.seed])).toEqual([
      [join(dir, "many", "car-7.png"), "7"],
      [join(dir, "many", "car-8.png"), "8"],
    ]);
    expect(report.timings.totalSeconds).toBeGreaterThan(0);
    const single = join(dir, "seed8.png");
    expect((await run(args(single, ["--seed", "8"]))).code).toBe(0);
    expect((await pixels(single)).equals(await pixels(join(dir, "many", "car-8.png")))).toBe(true);
    expect(r.err).toContain("loading unet"); // model loading shows progress
  });

  it("--device cuda runs, falling back to the CPU with the reason where CUDA is missing", async () => {
    const r = await run(args(join(dir, "cuda.png"), ["--device", "cuda"]));
    expect(r.code, r.err).toBe(0);
    if (r.err.includes("warning: --device cuda")) expect(r.err).toContain("README");
  });

  it("--scheduler unipc and dpmpp_2m_karras (issue 10) each sample their own image, also in img2img", async () => {
    const withScheduler = (out: string, name: string, extra: string[] = []): string[] =>
      args(out, ["--steps", "3", ...extra]).map((a, i, all) => (all[i - 1] === "--scheduler" ? name : a));
    const images: Buffer[] = [];
    for (const name of ["ddim", "dpmpp_2m", "dpmpp_2m_karras", "unipc"]) {
      const out = join(dir, `sched-${name}.png`);
      const r = await run(withScheduler(out, name));
      expect(r.code, r.err).toBe(0);
      images.push(await pixels(out));
    }
    for (let a = 0; a < images.length; a++)
      for (let b = a + 1; b < images.length; b++)
        expect(images[a]?.equals(images[b] ?? Buffer.alloc(0))).toBe(false);
    const i2i = join(dir, "sched-unipc-i2i.png");
    const r = await run(withScheduler(i2i, "unipc", ["--init-image", CONTROL, "--strength", "0.6"]));
    expect(r.code, r.err).toBe(0);
    expect((await pixels(i2i)).equals(images[3] ?? Buffer.alloc(0))).toBe(false);
    const bad = await run(withScheduler(join(dir, "x.png"), "uni_pc"));
    expect(bad.code).not.toBe(0);
    expect(bad.err).toContain("unipc");
  });

  it("--init-image with --strength runs img2img", async () => {
    const [plain, img2img] = ["i2i-plain", "i2i"].map((n) => join(dir, `${n}.png`));
    expect((await run(args(plain ?? ""))).code).toBe(0);
    const r = await run(args(img2img ?? "", ["--init-image", CONTROL, "--strength", "0.5"]));
    expect(r.code, r.err).toBe(0);
    expect((await pixels(plain ?? "")).equals(await pixels(img2img ?? ""))).toBe(false);
  });
});
