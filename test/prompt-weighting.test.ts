import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/cli/main.js";
import { StableDiffusionPipeline } from "../src/pipeline/stable-diffusion.js";
import { maxAbsDiff } from "../src/tensor.js";
import { captureIO } from "./helpers/cli-io.js";

const TINY = "test/fixtures/golden/tiny-sd";
const PROMPT = "a photo of an astronaut riding a horse on mars";
const LONG = Array.from({ length: 12 }, (_, i) => `a (very:1.2) detailed [landscape] number ${i},`).join(" ");

describe("A1111 prompt syntax in the pipelines (tiny model)", () => {
  let pipeline: StableDiffusionPipeline;
  let dir: string;
  beforeAll(async () => {
    pipeline = await StableDiffusionPipeline.load(TINY);
    dir = await mkdtemp(join(tmpdir(), "sf-a1111-"));
  });
  afterAll(async () => {
    await pipeline.release();
    await rm(dir, { recursive: true, force: true });
  });

  const run = (prompt: string, extra: Record<string, unknown> = {}) =>
    pipeline.generate({
      prompt,
      negativePrompt: "blurry, low quality",
      width: 32,
      height: 32,
      numInferenceSteps: 2,
      guidanceScale: 7.5,
      scheduler: "ddim",
      seed: 3,
      ...extra,
    });

  it("leaves a plain short prompt bit-identical to diffusers' encoding", async () => {
    const plain = await run(PROMPT);
    const a1111 = await run(PROMPT, { promptSyntax: "a1111" });
    expect(maxAbsDiff(plain.image, a1111.image)).toBe(0);
    const weighted = await run("a photo of an (astronaut:1.5) riding a horse on mars", {
      promptSyntax: "a1111",
    });
    expect(maxAbsDiff(plain.image, weighted.image)).toBeGreaterThan(0);
  });

  it("encodes a long prompt in 77-token chunks instead of cutting it", async () => {
    const [uncond, cond] = await pipeline.encodeWeightedPrompt(LONG, "blurry");
    expect(cond.shape[1]).toBeGreaterThan(77);
    expect(cond.shape[1]! % 77).toBe(0);
    expect(uncond.shape).toEqual(cond.shape);
    const warnings: string[] = [];
    const result = await run(LONG, { promptSyntax: "a1111", onWarning: (m: string) => warnings.push(m) });
    expect(result.image.shape).toEqual([1, 3, 32, 32]);
    expect(warnings).toEqual([]);
    await run(LONG, { onWarning: (m: string) => warnings.push(m) });
    expect(warnings.join()).toContain("was cut");
  });

  it("`image` refuses an unknown --prompt-syntax before loading", async () => {
    const io = captureIO();
    const code = await main(
      ["image", "--model", TINY, "--prompt", "x", "--prompt-syntax", "comfy", "--out", join(dir, "x.png")],
      io,
    );
    expect(code).not.toBe(0);
    expect(io.err()).toContain("--prompt-syntax");
  });

  it("`video --prompt-syntax a1111` renders a prompt schedule of different chunk counts", async () => {
    const out = join(dir, "video");
    const io = captureIO();
    const code = await main(
      [
        "video",
        "test/fixtures/videos/car-turn-9f.mp4",
        "--model",
        TINY,
        "--controlnet",
        `${TINY}/controlnet`,
        "--prompt-schedule",
        `0:a (red:1.3) car BREAK [snow]|2:${LONG}`,
        "--prompt-syntax",
        "a1111",
        "--size",
        "64x64",
        "--frames",
        "3",
        "--steps",
        "2",
        "--out",
        out,
      ],
      io,
    );
    expect(io.err()).not.toContain("error");
    expect(code).toBe(0);
    expect((await readdir(out)).filter((f) => f.endsWith(".png")).length).toBe(3);
    expect(await readFile(join(out, "run.json"), "utf8")).toContain('"promptSyntax": "a1111"');
  });
});
