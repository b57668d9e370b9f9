/**
 * The training loop on the tiny UNet (test/fixtures/golden/tiny-sd) and frames of a bundled clip:
 * the loss falls, an interrupted run resumed from its checkpoint equals the uninterrupted run bit
 * for bit, a diverging run stops with the last good checkpoint intact, bad inputs give typed errors,
 * and `steadyframe train` writes a diffusers folder that `steadyframe image` loads.
 */
import { cp, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/cli/main.js";
import { CancelledError, InvalidArgumentError } from "../src/errors.js";
import {
  CheckpointMismatchError,
  TrainingDivergedError,
  type TrainOptions,
  listCheckpoints,
  RECIPES,
  prepareTrainingData,
  stageOptions,
  trainDiffusion,
} from "../src/train/loop/index.js";
import { batchItems } from "../src/train/loop/rng.js";
import type { HostTensor } from "../src/tensor.js";
import { readSafetensors } from "../src/weights/safetensors.js";
import { captureIO } from "./helpers/cli-io.js";
import { GOLDEN } from "./helpers/golden-fixture.js";

const MODEL = join(GOLDEN, "tiny-sd");
const CLIP = "test/fixtures/videos/car-turn-9f.mp4";
let dir = "";
/** Loss of step 1 of the "falls" run (seed 7). */
let firstLoss: number | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sf-train-loop-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Options shared by the runs: 32x32 frames (16x16 latents), cached latents and compiled models. */
function base(out: string, extra: Partial<TrainOptions> = {}): TrainOptions {
  return {
    model: MODEL,
    clips: [{ path: CLIP, prompt: "a red car on a road" }],
    out: join(dir, out),
    steps: 8,
    lr: 1e-3,
    seed: 7n,
    cacheDir: join(dir, "latents"),
    load: { cacheDir: join(dir, "models") },
    ...extra,
  };
}

/** The bytes of a tensor's data. */
const raw = (t: HostTensor | undefined): Buffer =>
  t ? Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength) : Buffer.alloc(0);

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

describe("training loop (tiny UNet, bundled clip)", () => {
  it("the denoising loss falls over 30 steps", async () => {
    const r = await trainDiffusion(base("falls", { steps: 30 }));
    firstLoss = r.losses[0];
    const first = mean(r.losses.slice(0, 5));
    const last = mean(r.losses.slice(-5));
    console.log(
      `loss first 5 ${first.toFixed(4)}, last 5 ${last.toFixed(4)}, ${r.secondsPerStep.toFixed(3)} s/step`,
    );
    expect(r.losses).toHaveLength(30);
    expect(last).toBeLessThan(0.8 * first);
    const svg = await readFile(join(r.out, "loss.svg"), "utf8");
    expect(svg).toContain("<svg");
    expect(svg).toContain("<path");
  }, 60_000);

  it("an interrupted run resumed from its checkpoint equals the uninterrupted run bit for bit", async () => {
    const opts = { steps: 6, batch: 2, noiseOffset: 0.05, prediction: "v_prediction" as const };
    const whole = await trainDiffusion(base("whole", opts));
    const controller = new AbortController();
    const stopped = trainDiffusion({
      ...base("parts", opts),
      signal: controller.signal,
      onStep: (s) => {
        if (s.step === 3) controller.abort();
      },
    });
    await expect(stopped).rejects.toBeInstanceOf(CancelledError);
    expect((await listCheckpoints(join(dir, "parts", "checkpoints"))).map((c) => c.step)).toEqual([3]);
    const resumed = await trainDiffusion({ ...base("parts", opts), resume: true });
    expect(resumed.losses).toEqual(whole.losses);
    expect(resumed.gradNorms).toEqual(whole.gradNorms);
    for (const file of ["unet/diffusion_pytorch_model.safetensors", "trainer_state.safetensors"]) {
      const a = await readFile(join(whole.checkpoint, file));
      const b = await readFile(join(resumed.checkpoint, file));
      expect(a.equals(b), file).toBe(true);
    }
    // the published folder holds the trained UNet (different from the base one)
    const trained = await readSafetensors(join(whole.out, "unet", "diffusion_pytorch_model.safetensors"));
    const baseW = await readSafetensors(join(MODEL, "unet", "diffusion_pytorch_model.safetensors"));
    expect([...trained.keys()]).toEqual([...baseW.keys()]);
    const key = "conv_in.weight";
    expect(raw(trained.get(key)).equals(raw(baseW.get(key)))).toBe(false);
  }, 90_000);

  it("a loss that becomes NaN stops with the step and keeps the last good checkpoint", async () => {
    const run = trainDiffusion(base("nan", { steps: 6, lr: 1e30, saveEvery: 1, maxGradNorm: null }));
    const error = await run.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TrainingDivergedError);
    const diverged = error as TrainingDivergedError;
    expect(diverged.step).toBeGreaterThan(1);
    expect(diverged.message).toContain(`step ${diverged.step}`);
    const root = join(dir, "nan", "checkpoints");
    const kept = await listCheckpoints(root);
    expect(kept.at(-1)?.step).toBe(diverged.step - 1);
    expect(diverged.lastCheckpoint).toBe(kept.at(-1)?.dir);
    expect((await readdir(root)).filter((n) => n.startsWith("."))).toEqual([]); // nothing half-written
    const state = JSON.parse(await readFile(join(kept.at(-1)?.dir ?? "", "trainer_state.json"), "utf8")) as {
      step: number;
      losses: number[];
    };
    expect(state.step).toBe(diverged.step - 1);
    expect(state.losses.every(Number.isFinite)).toBe(true);
    await expect(readdir(join(dir, "nan", "unet"))).rejects.toThrow(); // no model published
  }, 60_000);

  it("a trainable pattern that matches nothing is a typed error before any work", async () => {
    const error = await trainDiffusion(
      base("bad-pattern", { trainable: ["attn1.to_q", "attn9.nothing"] }),
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as Error).message).toContain("attn9.nothing");
    await expect(readdir(join(dir, "bad-pattern"))).rejects.toThrow();
  });

  it("resuming a checkpoint of another architecture or trainable set is refused, naming the file", async () => {
    const first = await trainDiffusion(base("arch", { steps: 2, trainable: ["attn1.to_q"] }));
    expect(first.trainableParameters).toBeGreaterThan(0);
    // the same weights under a config that differs (another architecture as far as the record goes)
    const other = join(dir, "other-model");
    await cp(MODEL, other, { recursive: true });
    const cfgPath = join(other, "unet", "config.json");
    const cfg = JSON.parse(await readFile(cfgPath, "utf8")) as Record<string, unknown>;
    await writeFile(cfgPath, JSON.stringify({ ...cfg, norm_eps: 1e-6 }));
    const wrongArch = await trainDiffusion({
      ...base("arch", { steps: 4, trainable: ["attn1.to_q"] }),
      model: other,
      resume: true,
    }).catch((e: unknown) => e);
    expect(wrongArch).toBeInstanceOf(CheckpointMismatchError);
    expect((wrongArch as Error).message).toContain("trainer_state.json");
    expect((wrongArch as Error).message).toContain("norm_eps");
    const wrongSet = await trainDiffusion(
      base("arch", { steps: 4, trainable: ["attn2"], resume: true }),
    ).catch((e: unknown) => e);
    expect(wrongSet).toBeInstanceOf(CheckpointMismatchError);
    expect((wrongSet as Error).message).toContain("trainable parameters");
    // a fresh run into a folder with checkpoints is refused too (nothing overwritten)
    await expect(
      trainDiffusion(base("arch", { steps: 4, trainable: ["attn1.to_q"] })),
    ).rejects.toBeInstanceOf(InvalidArgumentError);
  }, 60_000);

  it("data: latents cached on disk, captions per frame, Canny control maps, seeded batches", async () => {
    const opts = {
      model: MODEL,
      clips: [{ path: CLIP, prompt: ["a", "b", "c", "d"], maxFrames: 4 }],
      width: 32,
      height: 32,
      seed: 1n,
      cacheDir: join(dir, "latents-data"),
      control: { kind: "canny" as const },
      load: { cacheDir: join(dir, "models") },
    };
    const data = await prepareTrainingData(opts);
    expect(data.latents.shape).toEqual([4, 4, 16, 16]);
    expect(data.controls?.shape).toEqual([4, 3, 32, 32]);
    expect(new Set(data.controls?.data)).toEqual(new Set([0, 1]));
    expect(data.captions).toEqual(["a", "b", "c", "d"]);
    expect(data.embeddings.shape[0]).toBe(4);
    expect(data.cacheFiles).toHaveLength(3);
    const again = await prepareTrainingData(opts);
    expect(raw(again.latents).equals(raw(data.latents))).toBe(true);
    await expect(
      prepareTrainingData({ ...opts, clips: [{ path: CLIP, prompt: ["a"], maxFrames: 4 }] }),
    ).rejects.toBeInstanceOf(InvalidArgumentError);
    // every item once per epoch, in a seeded order
    const epoch = [0, 1, 2].flatMap((s) => batchItems(5n, s, 3, 9));
    expect([...epoch].sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(batchItems(5n, 0, 3, 9)).toEqual(batchItems(5n, 0, 3, 9));
    expect(batchItems(6n, 0, 9, 9)).not.toEqual(epoch);
  }, 60_000);

  it("steadyframe train writes a diffusers folder that steadyframe image loads", async () => {
    const out = join(dir, "cli");
    const io = captureIO();
    const args = ["train", "--model", MODEL, "--data", CLIP, "--prompt", "a red car", "--out", out];
    const code = await main(
      [...args, "--steps", "3", "--lr", "1e-3", "--size", "32x32", "--trainable", "attn1,attn2", "--json"],
      io,
    );
    expect(code, io.err()).toBe(0);
    const summary = JSON.parse(io.out()) as { steps: number; out: string };
    expect(summary.steps).toBe(3);
    expect(io.err()).toContain("loss");
    const png = join(dir, "cli.png");
    const img = captureIO();
    expect(
      await main(
        [
          "image",
          "--model",
          out,
          "--prompt",
          "a red car",
          "--steps",
          "2",
          "--width",
          "32",
          "--height",
          "32",
          "--out",
          png,
        ],
        img,
      ),
      img.err(),
    ).toBe(0);
    const bad = captureIO();
    expect(await main([...args.slice(0, -2), "--out", join(dir, "cli2"), "--prediction", "x0"], bad)).toBe(2);
    expect(bad.err()).toContain("--prediction");
  }, 60_000);

  it("steadyframe train --train controlnet trains the ControlNet on Canny maps; the image pipeline loads it", async () => {
    const cnOut = join(dir, "cli-controlnet");
    const cn = captureIO();
    const cnArgs = ["train", "--model", MODEL, "--data", CLIP, "--prompt", "a red car", "--out", cnOut];
    expect(
      await main([...cnArgs, "--train", "controlnet", "--steps", "2", "--canny", "50,150"], cn),
      cn.err(),
    ).toBe(0);
    const idx = JSON.parse(await readFile(join(cnOut, "model_index.json"), "utf8")) as Record<
      string,
      unknown
    >;
    expect(idx["controlnet"]).toEqual(["diffusers", "ControlNetModel"]);
    const cnImg = captureIO();
    const control = [
      "--controlnet",
      join(cnOut, "controlnet"),
      "--control",
      `${GOLDEN}/pipeline_controlnet/control_image.png`,
    ];
    const imgArgs = [
      "image",
      "--model",
      cnOut,
      "--prompt",
      "a red car",
      "--steps",
      "2",
      "--width",
      "32",
      "--height",
      "32",
    ];
    expect(await main([...imgArgs, ...control, "--out", join(dir, "cn.png")], cnImg), cnImg.err()).toBe(0);
    const unetFile = join("unet", "diffusion_pytorch_model.safetensors");
    expect((await readFile(join(cnOut, unetFile))).equals(await readFile(join(MODEL, unetFile)))).toBe(true); // frozen
    const cnFile = join("controlnet", "diffusion_pytorch_model.safetensors");
    const [after, before] = [
      await readSafetensors(join(cnOut, cnFile)),
      await readSafetensors(join(MODEL, cnFile)),
    ];
    expect(
      raw(after.get("controlnet_mid_block.weight")).equals(raw(before.get("controlnet_mid_block.weight"))),
    ).toBe(false);
  }, 60_000);

  it("--recipe demo: stages chained (each starts from the previous output), other flags refused", async () => {
    const demo = RECIPES["demo"];
    expect(demo?.stages.map((s) => s.train)).toEqual(["vae", "unet+controlnet"]);
    if (!demo) return;
    const out = join(dir, "recipe");
    expect(() => stageOptions(demo, 0, { out })).toThrow(InvalidArgumentError); // the VAE stage
    const second = stageOptions(demo, 1, { out });
    expect(second.model).toBe(join(out, "vae"));
    expect(second.train).toBe("unet+controlnet");
    expect(second.controlnet).toBe("from-unet");
    for (const c of second.clips) await expect(readFile(c.path)).resolves.toBeInstanceOf(Buffer);
    expect(second.clips.map((c) => c.path).join()).not.toContain("man-skiing"); // held out
    const io = captureIO();
    expect(await main(["train", "--recipe", "demo", "--out", out, "--steps", "3"], io)).toBe(2);
    expect(io.err()).toContain("--steps");
    const unknown = captureIO();
    expect(await main(["train", "--recipe", "nope", "--out", out], unknown)).toBe(2);
    expect(unknown.err()).toContain("demo");
  });

  it("a ControlNet initialised from the UNet (from_unet) starts from the UNet's own loss and trains", async () => {
    firstLoss ??= (await trainDiffusion(base("falls-1", { steps: 1 }))).losses[0];
    const r = await trainDiffusion(
      base("from-unet", { steps: 3, train: "controlnet", controlnet: "from-unet" }),
    );
    // zero convolutions: step 1 sees exactly the UNet's prediction (same seed, same noise and batch)
    expect(r.losses[0]).toBeCloseTo(firstLoss ?? NaN, 6);
    const config = JSON.parse(await readFile(join(r.out, "controlnet", "config.json"), "utf8")) as Record<
      string,
      unknown
    >;
    expect(config["conditioning_embedding_out_channels"]).toEqual([16, 32]); // VAE factor 2
    const weights = await readSafetensors(join(r.out, "controlnet", "diffusion_pytorch_model.safetensors"));
    const unet = await readSafetensors(join(MODEL, "unet", "diffusion_pytorch_model.safetensors"));
    expect(raw(weights.get("time_embedding.linear_1.weight")).length).toBe(
      raw(unet.get("time_embedding.linear_1.weight")).length,
    );
    const img = captureIO();
    const args = ["image", "--model", r.out, "--prompt", "a red car", "--steps", "2", "--width", "32"];
    const control = [
      "--controlnet",
      join(r.out, "controlnet"),
      "--control",
      `${GOLDEN}/pipeline_controlnet/control_image.png`,
    ];
    expect(
      await main([...args, "--height", "32", ...control, "--out", join(dir, "fu.png")], img),
      img.err(),
    ).toBe(0);
  }, 60_000);
});
