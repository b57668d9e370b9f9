import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CancelledError } from "../src/errors.js";
import { AutoencoderKL } from "../src/models/vae/autoencoder-kl.js";
import { mapStore } from "../src/nn/weight-store.js";
import type { ProgressEvent } from "../src/progress.js";
import { TorchGenerator } from "../src/random/torch-generator.js";
import { type HostTensor, maxAbsDiff, tensor, toFloat32 } from "../src/tensor.js";
import { openGraphSession } from "../src/train/graph-session.js";
import { TrainingDivergedError } from "../src/train/loop/errors.js";
import { readSafetensors } from "../src/weights/safetensors.js";
import {
  VAE_TRAINING_FILE,
  buildVaeTrainingGraph,
  cropBatch,
  drawCrops,
  initVaeWeights,
  loadFrames,
  trainVae,
  vaeConfigJson,
  vaeSpecOf,
} from "../src/train/vae/index.js";

const CLIP = "test/fixtures/videos/car-turn-9f.mp4";

/** A VAE small enough for CI: factor 2, 8/16 channels, 32x32 crops. */
const TINY = {
  down_block_types: ["DownEncoderBlock2D", "DownEncoderBlock2D"],
  up_block_types: ["UpDecoderBlock2D", "UpDecoderBlock2D"],
  block_out_channels: [8, 16],
  norm_num_groups: 8,
  latent_channels: 4,
  sample_size: 32,
};
const SIZE = 32;
const COMMON = {
  clips: [CLIP],
  config: TINY,
  batch: 2,
  size: SIZE,
  frameSize: 40,
  lr: 1e-3,
  load: { intraOpNumThreads: 1 },
} as const;

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

function meanAbs(a: HostTensor, b: HostTensor): number {
  const x = toFloat32(a).data;
  const y = toFloat32(b).data;
  let s = 0;
  for (let i = 0; i < x.length; i++) s += Math.abs((x[i] ?? 0) - (y[i] ?? 0));
  return s / x.length;
}

/** decode(encode(x).mean): the deterministic reconstruction. */
async function reconstruct(vae: AutoencoderKL, x: HostTensor): Promise<HostTensor<"float32">> {
  return vae.decode((await vae.encode(x)).mean);
}

let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "train-vae-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("VAE training graph", () => {
  it("computes the posterior and the loss of AutoencoderKL's own encoder and decoder graphs", async () => {
    const spec = vaeSpecOf(TINY);
    const weights = initVaeWeights(spec, 3n);
    const { graph, params, latentShape } = buildVaeTrainingGraph(spec, mapStore(weights), {
      batch: 2,
      height: SIZE,
      width: SIZE,
    });
    expect(params.length).toBe(weights.size);
    const frames = await loadFrames([CLIP], 40, { maxFrames: 3 });
    const image = cropBatch(frames, drawCrops(frames, 2, SIZE, new TorchGenerator(5)), SIZE);
    const noise = new TorchGenerator(6).randn([2, ...latentShape]);
    const feeds: Record<string, HostTensor> = { image, noise };
    for (const p of params) feeds[p.name] = await p.initial();
    const session = await openGraphSession(graph, { intraOpNumThreads: 1 });
    const vae = await AutoencoderKL.load({ config: vaeConfigJson(spec.config), store: mapStore(weights) });
    try {
      const out = await session.run(feeds);
      const dist = await vae.encode(image);
      const meanErr = maxAbsDiff(toFloat32(out["mean"] ?? tensor("float32", [0])), toFloat32(dist.mean));
      const z = vae.sample(dist, { noise });
      const recon = await vae.decode(z);
      // L1 summed per image, batch mean; KL 0.5 * sum(mean^2 + var - 1 - logvar) per image, batch mean.
      const rec = meanAbs(image, recon);
      const m = toFloat32(dist.mean).data;
      const lv = toFloat32(dist.logvar).data;
      let kl = 0;
      for (let i = 0; i < m.length; i++)
        kl += 0.5 * ((m[i] ?? 0) ** 2 + Math.exp(lv[i] ?? 0) - 1 - (lv[i] ?? 0));
      kl /= 2;
      const loss = (rec * image.data.length) / 2 + 1e-6 * kl;
      const scalar = (name: string): number => toFloat32(out[name] ?? tensor("float32", [1])).data[0] ?? NaN;
      console.log(
        `training graph vs AutoencoderKL: mean max-abs ${meanErr.toExponential(2)}, rec ${scalar("rec")} vs ${rec}, kl ${scalar("kl")} vs ${kl}`,
      );
      expect(meanErr).toBeLessThan(1e-4);
      expect(Math.abs(scalar("rec") - rec)).toBeLessThan(1e-4 * rec);
      expect(Math.abs(scalar("kl") - kl)).toBeLessThan(1e-4 * kl);
      expect(Math.abs(scalar("loss") - loss)).toBeLessThan(1e-4 * loss);
      // every parameter gets a finite, non-zero gradient
      const grads = params.map((_, i) => toFloat32(out[`grad.${i}`] ?? tensor("float32", [0])).data);
      expect(grads.every((g) => g.length > 0 && g.every(Number.isFinite))).toBe(true);
      expect(grads.filter((g) => g.some((v) => v !== 0)).length).toBe(params.length);
    } finally {
      await session.release();
      await vae.release();
    }
  }, 60_000);
});

describe("trainVae", () => {
  it("lowers the reconstruction loss and saves a diffusers vae/ folder AutoencoderKL.load reads back", async () => {
    const out = join(dir, "vae");
    const events: ProgressEvent[] = [];
    const result = await trainVae({ ...COMMON, out, steps: 30, onProgress: (e) => events.push(e) });
    const first = mean(result.recs.slice(0, 5));
    const last = mean(result.recs.slice(-5));
    console.log(
      `rec loss: first 5 ${first.toFixed(4)}, last 5 ${last.toFixed(4)}; ${result.secondsPerStep.toFixed(3)} s/step; scaling_factor ${result.scalingFactor.toFixed(4)}`,
    );
    expect(result.losses).toHaveLength(30);
    expect(last).toBeLessThan(0.8 * first);
    expect(events[0]).toMatchObject({ status: "start", total: 30 });
    expect(events.filter((e) => e.status === "progress")).toHaveLength(30);
    expect(events.at(-1)?.status).toBe("done");

    const config = JSON.parse(await readFile(join(out, "config.json"), "utf8")) as Record<string, unknown>;
    expect(config["_class_name"]).toBe("AutoencoderKL");
    expect(config["scaling_factor"]).toBeCloseTo(result.scalingFactor, 6);
    const record = JSON.parse(await readFile(join(out, VAE_TRAINING_FILE), "utf8")) as { step: number };
    expect(record.step).toBe(30);

    // Whole frames (not crops) of the clip: the trained VAE reconstructs them better than its initial weights.
    const frames = await loadFrames([CLIP], SIZE, { maxFrames: 4 });
    const x = cropBatch(
      frames,
      frames.frames.map((_, i) => ({ frame: i, x: 0, y: 0, flip: false })),
      SIZE,
    );
    const spec = vaeSpecOf(TINY);
    const trained = await AutoencoderKL.load(out);
    const untrained = await AutoencoderKL.load({
      config: vaeConfigJson(spec.config),
      store: mapStore(initVaeWeights(spec, 0n)),
    });
    try {
      const errTrained = meanAbs(x, await reconstruct(trained, x));
      const errUntrained = meanAbs(x, await reconstruct(untrained, x));
      console.log(
        `decode(encode(x)) mean abs error: trained ${errTrained.toFixed(4)}, untrained ${errUntrained.toFixed(4)}`,
      );
      expect(errTrained).toBeLessThan(0.8 * errUntrained);
    } finally {
      await trained.release();
      await untrained.release();
    }
  }, 60_000);

  it("is reproducible: the same seed gives the same losses", async () => {
    const a = await trainVae({ ...COMMON, out: join(dir, "a"), steps: 3, seed: 7n });
    const b = await trainVae({ ...COMMON, out: join(dir, "b"), steps: 3, seed: 7n });
    expect(b.losses).toEqual(a.losses);
  }, 60_000);

  it("stops on a NaN loss with TrainingDivergedError naming the step, keeping the last good save", async () => {
    const out = join(dir, "nan");
    const error = await trainVae({ ...COMMON, out, steps: 20, lr: 1e30, saveEvery: 1 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(TrainingDivergedError);
    const e = error as TrainingDivergedError;
    console.log(e.message);
    expect(e.step).toBeGreaterThan(1);
    expect(e.message).toContain(`step ${e.step}`);
    expect(e.lastCheckpoint).toBe(out);
    const record = JSON.parse(await readFile(join(out, VAE_TRAINING_FILE), "utf8")) as {
      step: number;
      losses: number[];
    };
    expect(record.step).toBe(e.step - 1);
    expect(record.losses.every(Number.isFinite)).toBe(true);
  }, 60_000);

  it("saves and stops with CancelledError when the signal aborts", async () => {
    const out = join(dir, "abort");
    const controller = new AbortController();
    const error = await trainVae({
      ...COMMON,
      out,
      steps: 50,
      signal: controller.signal,
      onStep: (s) => {
        if (s.step === 3) controller.abort();
      },
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CancelledError);
    const record = JSON.parse(await readFile(join(out, VAE_TRAINING_FILE), "utf8")) as { step: number };
    expect(record.step).toBe(3);
    const vae = await AutoencoderKL.load(out);
    await vae.release();
  }, 60_000);
});

describe("trainVae with a pattern subset", () => {
  it("trains only the matched parameters and saves the others as they were", async () => {
    const out = join(dir, "subset");
    const result = await trainVae({ ...COMMON, out, steps: 2, seed: 4n, trainable: ["decoder.conv_out"] });
    expect(result.trainableParameters).toBeLessThan(result.totalParameters);
    const init = initVaeWeights(vaeSpecOf(TINY), 4n);
    const saved = await readSafetensors(join(out, "diffusion_pytorch_model.safetensors"));
    expect([...saved.keys()].sort()).toEqual([...init.keys()].sort());
    for (const [key, t] of saved) {
      const same = maxAbsDiff(toFloat32(t), init.get(key) ?? tensor("float32", [0])) === 0;
      expect([key, same]).toEqual([key, !key.startsWith("decoder.conv_out.")]);
    }
  }, 60_000);
});
