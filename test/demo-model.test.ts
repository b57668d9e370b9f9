/**
 * The committed demo model (models/steadyframe-demo, trained by `steadyframe train --recipe demo`;
 * docs/demo-model.md): a diffusers folder within the 25 MB budget that the video pipeline loads,
 * and whose frames follow the Canny edges of a clip it never saw (man-skiing is held out of the
 * recipe) clearly better than the same architecture at its initial weights.
 */
import { mkdtemp, readFile, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/cli/main.js";
import { RECIPES } from "../src/train/loop/recipes.js";
import { writeInitialCopy } from "../src/train/unet-init.js";
import { captureIO } from "./helpers/cli-io.js";

const MODEL = "models/steadyframe-demo";
const CLIP = "data/demo-clips/man-skiing-128.mp4";
let dir = "";

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sf-demo-model-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function folderBytes(path: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(path, { withFileTypes: true })) {
    const p = join(path, entry.name);
    total += entry.isDirectory() ? await folderBytes(p) : (await stat(p)).size;
  }
  return total;
}

/** Renders the first frames of the held-out clip from its Canny edges; returns the render's edge F1. */
async function edgeF1Of(model: string, out: string): Promise<number> {
  const io = captureIO();
  const args = [
    "video",
    CLIP,
    "--model",
    model,
    "--controlnet",
    join(model, "controlnet"),
    "--control",
    "canny",
    "--prompt",
    "a man skiing down a snowy slope",
    "--size",
    "128x128",
    "--frames",
    "3",
    "--steps",
    "12",
    "--guidance",
    "3",
    "--seed",
    "42",
    "--out",
    `${out}/`,
  ];
  expect(await main(args, io), io.err()).toBe(0);
  const metrics = JSON.parse(await readFile(join(out, "metrics.json"), "utf8")) as { edgeF1: number };
  return metrics.edgeF1;
}

describe("the demo model", () => {
  it("is a diffusers ControlNet pipeline folder within 25 MB, every weight stored as float16", async () => {
    expect(await folderBytes(MODEL)).toBeLessThanOrEqual(25 * 1024 * 1024);
    const index = JSON.parse(await readFile(join(MODEL, "model_index.json"), "utf8")) as Record<
      string,
      unknown
    >;
    for (const c of ["unet", "vae", "text_encoder", "tokenizer", "scheduler", "controlnet"])
      expect(index[c], c).toBeDefined();
    for (const c of ["unet", "vae", "controlnet"]) {
      const file = join(MODEL, c, "diffusion_pytorch_model.safetensors");
      const bytes = await readFile(file);
      const header = JSON.parse(
        bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString("utf8"),
      ) as Record<string, { dtype?: string }>;
      const dtypes = new Set(
        Object.entries(header).flatMap(([k, v]) => (k === "__metadata__" ? [] : [v.dtype])),
      );
      expect([...dtypes], c).toEqual(["F16"]);
    }
    // the recipe that made it holds the clip out
    expect(RECIPES["demo"]?.clips.map((c) => c.path).join()).not.toContain("man-skiing");
  });

  it("follows the edges of a clip it never saw, far better than its architecture at initial weights", async () => {
    const trained = await edgeF1Of(MODEL, join(dir, "demo"));
    const initial = join(dir, "initial");
    await writeInitialCopy(MODEL, initial, RECIPES["demo"]?.seed ?? 0n);
    const random = await edgeF1Of(initial, join(dir, "random"));
    expect(trained).toBeGreaterThan(random + 0.1);
    expect(trained).toBeGreaterThan(0.45);
  });
});
