/**
 * Training a UNet and a ControlNet together, caption dropout (empty prompts), fresh UNet weights,
 * and a recipe with a VAE stage — the pieces the demo model's recipe (src/train/loop/recipes.ts)
 * is made of — on the tiny model (test/fixtures/golden/tiny-sd) and a bundled clip.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../src/errors.js";
import { parseUNet2DConditionModelConfig } from "../src/models/unet/config.js";
import { CheckpointMismatchError, type TrainOptions, trainDiffusion } from "../src/train/loop/index.js";
import { type TrainingRecipe, runRecipe } from "../src/train/loop/recipes.js";
import { initUNet, unetParameterShapes } from "../src/train/unet-init.js";
import type { HostTensor } from "../src/tensor.js";
import { readSafetensors } from "../src/weights/safetensors.js";
import { GOLDEN } from "./helpers/golden-fixture.js";

const MODEL = join(GOLDEN, "tiny-sd");
const CLIP = "test/fixtures/videos/car-turn-9f.mp4";
let dir = "";

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sf-train-joint-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function base(out: string, extra: Partial<TrainOptions> = {}): TrainOptions {
  return {
    model: MODEL,
    clips: [{ path: CLIP, prompt: "a red car on a road", maxFrames: 4 }],
    out: join(dir, out),
    steps: 3,
    batch: 2,
    lr: 1e-3,
    width: 32,
    height: 32,
    seed: 11n,
    cacheDir: join(dir, "latents"),
    load: { cacheDir: join(dir, "models") },
    ...extra,
  };
}

const bytes = (t: HostTensor | undefined): Buffer =>
  t ? Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength) : Buffer.alloc(0);

/** Keys whose tensors differ between two safetensors files. */
async function changedKeys(a: string, b: string): Promise<string[]> {
  const x = await readSafetensors(a);
  const y = await readSafetensors(b);
  return [...x.keys()].filter((k) => !bytes(x.get(k)).equals(bytes(y.get(k))));
}

describe("UNet + ControlNet trained together", () => {
  it("both learn; step 1 equals the UNet-only loss (zero convolutions); both are published", async () => {
    const unetOnly = await trainDiffusion(base("unet-only", { steps: 1 }));
    const joint = await trainDiffusion(
      base("joint", { train: "unet+controlnet", controlnet: "from-unet", saveEvery: 1 }),
    );
    expect(joint.losses[0]).toBeCloseTo(unetOnly.losses[0] ?? NaN, 6);
    const weights = "diffusion_pytorch_model.safetensors";
    const unetChanged = await changedKeys(join(MODEL, "unet", weights), join(joint.out, "unet", weights));
    expect(unetChanged.length).toBeGreaterThan(50);
    const cn = await readSafetensors(join(joint.out, "controlnet", weights));
    // the zero convolutions left zero after three steps: the ControlNet trained
    const zero = [...cn.keys()].filter(
      (k) => k.startsWith("controlnet_down_blocks.") && k.endsWith("weight"),
    );
    expect(zero.length).toBeGreaterThan(0);
    for (const k of zero) expect(bytes(cn.get(k)).some((b) => b !== 0)).toBe(true);
    const index = JSON.parse(await readFile(join(joint.out, "model_index.json"), "utf8")) as Record<
      string,
      unknown
    >;
    expect(index["controlnet"]).toEqual(["diffusers", "ControlNetModel"]);
    expect(joint.trainableParameters).toBeGreaterThan(unetOnly.trainableParameters);
  });

  it("an interrupted joint run resumed from its checkpoint equals the uninterrupted run", async () => {
    const whole = await trainDiffusion(base("j-whole", { train: "unet+controlnet", steps: 4 }));
    await trainDiffusion(base("j-part", { train: "unet+controlnet", steps: 2, saveEvery: 2 }));
    const resumed = await trainDiffusion(
      base("j-part", { train: "unet+controlnet", steps: 4, resume: true }),
    );
    expect(resumed.losses).toEqual(whole.losses);
    for (const c of ["unet", "controlnet"]) {
      const f = join(c, "diffusion_pytorch_model.safetensors");
      expect(await changedKeys(join(whole.out, f), join(resumed.out, f))).toEqual([]);
    }
    // a UNet-only run cannot continue it
    await expect(trainDiffusion(base("j-part", { steps: 6, resume: true }))).rejects.toThrow(
      CheckpointMismatchError,
    );
  });
});

describe("caption dropout (--empty-prompts)", () => {
  it("a share of 1 trains exactly as captions that are all empty; 0.5 differs; bad shares are refused", async () => {
    const all = await trainDiffusion(base("drop-all", { emptyPrompts: 1 }));
    const empty = await trainDiffusion(
      base("captions-empty", { clips: [{ path: CLIP, prompt: "", maxFrames: 4 }] }),
    );
    expect(all.losses).toEqual(empty.losses);
    const half = await trainDiffusion(base("drop-half", { emptyPrompts: 0.5 }));
    const none = await trainDiffusion(base("drop-none"));
    expect(half.losses).not.toEqual(none.losses);
    await expect(trainDiffusion(base("drop-bad", { emptyPrompts: 1.5 }))).rejects.toThrow(
      InvalidArgumentError,
    );
    // resuming with another share is refused
    await expect(
      trainDiffusion(base("drop-half", { emptyPrompts: 0.2, steps: 5, resume: true })),
    ).rejects.toThrow(/emptyPrompts/);
  });
});

describe("fresh UNet weights", () => {
  it("have every key and shape of a diffusers UNet of that config, with torch's default init", async () => {
    const json = JSON.parse(await readFile(join(MODEL, "unet", "config.json"), "utf8")) as Record<
      string,
      unknown
    >;
    const { config } = parseUNet2DConditionModelConfig("unet/config.json", json);
    const shapes = unetParameterShapes(config);
    const stored = await readSafetensors(join(MODEL, "unet", "diffusion_pytorch_model.safetensors"));
    expect([...shapes.keys()].sort()).toEqual([...stored.keys()].sort());
    for (const [k, s] of shapes) expect(s, k).toEqual(stored.get(k)?.shape);
    const { weights } = initUNet(json, 3n);
    const conv = weights.get("conv_in.weight");
    const bound = 1 / Math.sqrt(4 * 3 * 3);
    expect(conv && Math.max(...conv.data.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(conv && Math.max(...conv.data.map(Math.abs))).toBeGreaterThan(bound * 0.9);
    expect([...(weights.get("conv_norm_out.weight")?.data ?? [])].every((v) => v === 1)).toBe(true);
    expect([...(weights.get("conv_norm_out.bias")?.data ?? [])].every((v) => v === 0)).toBe(true);
    // seeded per key: the same seed gives the same weights, another seed others
    expect(bytes(initUNet(json, 3n).weights.get("conv_in.weight"))).toEqual(bytes(conv));
    expect(bytes(initUNet(json, 4n).weights.get("conv_in.weight"))).not.toEqual(bytes(conv));
  });
});

describe("a recipe with a VAE stage", () => {
  it("trains a VAE, writes a fresh UNet of the recipe's config, then trains on it; a resume skips done stages", async () => {
    const recipe: TrainingRecipe = {
      name: "mini",
      description: "test recipe",
      model: MODEL,
      clips: [{ path: CLIP, prompt: "a car", maxFrames: 3 }],
      width: 32,
      height: 32,
      seed: 5n,
      unet: {
        block_out_channels: [32, 32],
        down_block_types: ["DownBlock2D", "CrossAttnDownBlock2D"],
        up_block_types: ["CrossAttnUpBlock2D", "UpBlock2D"],
        layers_per_block: 1,
        attention_head_dim: 8,
        cross_attention_dim: 32,
      },
      stages: [
        { name: "vae", train: "vae", steps: 2, lr: 1e-3, batch: 2, saveEvery: 1, crop: 16 },
        {
          name: "joint",
          train: "unet+controlnet",
          controlnet: "from-unet",
          steps: 2,
          lr: 1e-3,
          batch: 2,
          saveEvery: 1,
        },
      ],
    };
    const out = join(dir, "mini");
    const load = { cacheDir: join(dir, "models") };
    const results = await runRecipe(recipe, { out, load });
    expect(results.map((r) => r.steps)).toEqual([2, 2]);
    const unet = JSON.parse(await readFile(join(out, "vae", "unet", "config.json"), "utf8")) as Record<
      string,
      unknown
    >;
    expect(unet["down_block_types"]).toEqual(["DownBlock2D", "CrossAttnDownBlock2D"]);
    expect(unet["sample_size"]).toBe(8); // 32 px over the demo VAE's factor 4
    const vaeIndex = JSON.parse(await readFile(join(out, "vae", "model_index.json"), "utf8")) as Record<
      string,
      unknown
    >;
    expect(vaeIndex["controlnet"]).toBeUndefined(); // the base model's ControlNet fits another VAE factor
    const vaeConfig = JSON.parse(await readFile(join(out, "joint", "vae", "config.json"), "utf8")) as Record<
      string,
      unknown
    >;
    expect(vaeConfig["block_out_channels"]).toEqual([32, 64, 64]);
    const final = JSON.parse(await readFile(join(out, "joint", "model_index.json"), "utf8")) as Record<
      string,
      unknown
    >;
    expect(final["controlnet"]).toEqual(["diffusers", "ControlNetModel"]);
    // both stages complete: a resume trains nothing
    expect(await runRecipe(recipe, { out, load, resume: true })).toEqual([]);
  });
});
