import { mkdtemp, readFile, rm, writeFile, mkdir, copyFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tuneCommand } from "../src/cli/commands/tune.js";
import { FIXTURE_KINDS } from "../src/conformance/registry.js";
import { runConformance } from "../src/conformance/run.js";
import { noisedLatents } from "../src/conformance/kinds/tune-a-video.js";
import { AutoencoderKL } from "../src/models/vae/autoencoder-kl.js";
import { videoTensor } from "../src/pipeline/animatediff.js";
import { generateTuneAVideo } from "../src/pipeline/tune-a-video.js";
import { TorchGenerator } from "../src/random/torch-generator.js";
import { makeNoiseTables } from "../src/schedulers/betas.js";
import { parseSchedulerConfig } from "../src/schedulers/config.js";
import { readAllFrames } from "../src/video/read.js";
import { MissingWeightsError } from "../src/errors.js";
import {
  loadUNet3DConditionModel,
  openUNet3DConditionModel,
  openUNetWeights,
  parseUNet3DConditionModelConfig,
  resolveUNet3D,
  temporalParameterShapes,
  unet3dConfigJson,
} from "../src/models/unet3d/index.js";
import { randomWeights } from "../src/nn/weight-store.js";
import { type HostTensor, maxAbsDiff, tensor, toFloat32 } from "../src/tensor.js";
import { TuneAVideoStepper } from "../src/train/tune-a-video-graph.js";
import { framesToVideo, tuneAVideo } from "../src/train/tune-a-video.js";
import { readSafetensors, writeSafetensors } from "../src/weights/safetensors.js";
import { captureIO } from "./helpers/cli-io.js";
import { GOLDEN } from "./helpers/golden-fixture.js";

const FIXTURE = join(GOLDEN, "tune_a_video");
const TINY_SD = join(GOLDEN, "tiny-sd");
const CLIP = join(import.meta.dirname, "fixtures/videos/car-turn-9f.mp4");

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "steadyframe-tav-test-"));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe("tune_a_video golden fixture (showlab/Tune-A-Video release, diffusers 0.11.1)", () => {
  it("forward, intermediates, probes, training step, DDIM inversion and saved layout pass", async () => {
    const rows = (await runConformance([FIXTURE])).flatMap((r) => r.rows);
    expect(rows.length).toBeGreaterThan(300);
    for (const row of rows) {
      if (!/^step0\.(param|exp_avg|grad\.)/.test(row.tensor))
        console.log(`${row.tensor}: max abs err ${row.maxAbsError.toExponential(2)} (tol ${row.tolerance})`);
      expect(row.pass, `${row.tensor} ${row.note ?? ""} err ${row.maxAbsError}`).toBe(true);
    }
    for (const name of ["forward.noise_pred", "probe.attn1.output", "probe.attn_temp.output", "step0.loss"])
      expect(rows.some((r) => r.tensor === name)).toBe(true);
    expect(rows.some((r) => r.tensor === "ddim_inversion.latents.3")).toBe(true);
    expect(rows.some((r) => r.tensor === "saved_unet.state_dict_keys")).toBe(true);
  });

  it("a trainable module name that matches nothing is passed over, as the release's loop does", async () => {
    const caseJson = JSON.parse(await readFile(join(FIXTURE, "case.json"), "utf8")) as {
      release_hyperparameters: { trainable_modules: string[] };
    };
    caseJson.release_hyperparameters.trainable_modules.push("attn9.to_z");
    const kind = FIXTURE_KINDS.find((k) => k.kind === "tune_a_video")!;
    const rows = await kind.run({ dir: FIXTURE, caseJson });
    expect(rows.filter((r) => !r.pass).map((r) => `${r.tensor}: ${r.note ?? ""}`)).toEqual([]);
    expect(rows.some((r) => r.tensor === "step0.loss")).toBe(true);
  });
});

/** A tuned checkpoint as the release saves it (unet/ with the 3D config), weights as safetensors. */
async function tunedCheckpoint(dir: string, edit?: (m: Map<string, HostTensor>) => void): Promise<void> {
  const base = await openUNetWeights(join(FIXTURE, "unet2d"));
  const tensors = new Map<string, HostTensor>();
  for (const key of base.store.keys()) tensors.set(key, await base.store.source(key).load());
  for (const [k, v] of await readSafetensors(join(FIXTURE, "temporal.safetensors"))) tensors.set(k, v);
  edit?.(tensors);
  await mkdir(join(dir, "unet"), { recursive: true });
  await copyFile(join(FIXTURE, "unet3d_config.json"), join(dir, "unet", "config.json"));
  await writeSafetensors(join(dir, "unet", "diffusion_pytorch_model.safetensors"), tensors);
}

describe("tuned checkpoints in the release layout", () => {
  it("load and reproduce the fixture's forward", async () => {
    const dir = join(work, "tuned");
    await tunedCheckpoint(dir);
    const outputs = await readSafetensors(join(FIXTURE, "outputs.safetensors"));
    const inputs = await readSafetensors(join(FIXTURE, "inputs.safetensors"));
    const unet = await loadUNet3DConditionModel(dir, { frames: 4 });
    try {
      expect(unet.source.inflated).toBe(true);
      const noisy = outputs.get("noisy_latents.step0") as HostTensor;
      const t = Number((inputs.get("step0.timesteps") as HostTensor).data[0]);
      const pred = await unet.forward({
        sample: noisy,
        timestep: t,
        encoderHiddenStates: inputs.get("encoder_hidden_states") as HostTensor,
      });
      const err = maxAbsDiff(pred, outputs.get("forward.noise_pred") as HostTensor);
      console.log(`reloaded tuned checkpoint: forward.noise_pred max abs err ${err.toExponential(2)}`);
      expect(err).toBeLessThan(5e-5);
    } finally {
      await unet.release();
    }
  });

  it("report every missing, unexpected and mis-shaped key together", async () => {
    const dir = join(work, "broken");
    const missing = "mid_block.attentions.0.transformer_blocks.0.attn_temp.to_k.weight";
    const misshaped = "down_blocks.1.attentions.0.transformer_blocks.0.norm_temp.weight";
    await tunedCheckpoint(dir, (m) => {
      m.delete(missing);
      m.set(misshaped, tensor("float32", [3], new Float32Array(3)));
      m.set(
        "down_blocks.0.attentions.0.transformer_blocks.0.attn_tmp.to_q.weight",
        tensor("float32", [2, 2]),
      );
    });
    const error = await loadUNet3DConditionModel(dir, { frames: 4 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(MissingWeightsError);
    const message = String((error as Error).message);
    expect(message).toContain(missing);
    expect(message).toContain(misshaped);
    expect(message).toContain("attn_tmp.to_q.weight");
  });

  it("refuse a config of another class, naming the field", async () => {
    const dir = join(work, "wrong-class");
    await tunedCheckpoint(dir);
    const config = JSON.parse(await readFile(join(dir, "unet", "config.json"), "utf8")) as Record<
      string,
      unknown
    >;
    await writeFile(
      join(dir, "unet", "config.json"),
      JSON.stringify({ ...config, _class_name: "ControlNetModel" }),
    );
    await expect(resolveUNet3D(dir)).rejects.toThrow(/_class_name/);
  });
});

/** The clip's VAE latents (posterior mean * scaling_factor) as [1, C, F, h, w]. */
async function clipLatents(frames: number, size: number): Promise<HostTensor<"float32">> {
  const images = await readAllFrames(CLIP, {
    stride: 2,
    maxFrames: frames,
    resize: { width: size, height: size },
  });
  const vae = await AutoencoderKL.load(join(TINY_SD, "vae"));
  try {
    const z = await vae.encodeLatents(videoTensor(images), { mode: "mean" });
    return framesToVideo(toFloat32(z));
  } finally {
    await vae.release();
  }
}

describe("one-shot tuning on the tiny model", () => {
  it("steps on the bundled clip reduce the loss", async () => {
    const latents = await clipLatents(4, 32);
    const unet = await resolveUNet3D(TINY_SD, { temporalSeed: 1 });
    const ctx = await readSafetensors(join(FIXTURE, "inputs.safetensors"));
    const ehs = toFloat32(ctx.get("encoder_hidden_states") as HostTensor); // [1, 77, 32] = tiny-sd's width
    const noise = new TorchGenerator(3).randn([...latents.shape]);
    const t = 400;
    const { noisy } = noisedLatents(
      makeNoiseTables(
        parseSchedulerConfig(
          "DDPMScheduler",
          JSON.parse(await readFile(join(TINY_SD, "scheduler/scheduler_config.json"), "utf8")),
        ).config,
      ).alphasCumprod,
      latents,
      noise,
      [t],
    );
    const stepper = await TuneAVideoStepper.open(
      unet.store,
      unet.config,
      { latentShape: latents.shape as [number, number, number, number, number], sequence: 77 },
      { learningRate: 1e-3 },
    );
    try {
      const batch = { noisy, timesteps: [t], encoderHiddenStates: ehs, target: noise };
      const losses: number[] = [];
      for (let i = 0; i < 3; i++) losses.push((await stepper.step(batch)).loss);
      losses.push((await stepper.evaluate(batch)).loss);
      console.log(`fixed-batch loss per step: ${losses.map((l) => l.toFixed(5)).join(" -> ")}`);
      for (let i = 1; i < losses.length; i++) expect(losses[i]).toBeLessThan(losses[i - 1] ?? 0);
      expect(stepper.params.length).toBeGreaterThan(0);
      expect(stepper.params.every((p) => /attn1\.to_q|attn2\.to_q|attn_temp/.test(p.name))).toBe(true);
    } finally {
      await stepper.release();
    }
  });

  it("tuneAVideo saves the release layout atomically and the folder loads back", async () => {
    const out = join(work, "tuned-car");
    const seen: number[] = [];
    const result = await tuneAVideo({
      model: TINY_SD,
      video: CLIP,
      prompt: "a car turning",
      out,
      maxTrainSteps: 2,
      nSampleFrames: 4,
      sampleFrameRate: 2,
      width: 32,
      height: 32,
      learningRate: 1e-3,
      seed: 5,
      onStep: (e) => seen.push(e.loss),
    });
    expect(result.steps).toBe(2);
    expect(seen.every(Number.isFinite)).toBe(true);
    const config = JSON.parse(await readFile(join(out, "unet", "config.json"), "utf8")) as Record<
      string,
      unknown
    >;
    expect(config["_class_name"]).toBe("UNet3DConditionModel");
    expect(config["mid_block_type"]).toBe("UNetMidBlock3DCrossAttn");
    const index = JSON.parse(await readFile(join(out, "model_index.json"), "utf8")) as Record<
      string,
      unknown
    >;
    expect(index["unet"]).toEqual(["tuneavideo.models.unet", "UNet3DConditionModel"]);
    const tuned = await resolveUNet3D(out);
    const base = await resolveUNet3D(TINY_SD, { temporalSeed: 5 });
    expect(tuned.inflated).toBe(true);
    expect(new Set(tuned.store.keys())).toEqual(new Set(base.store.keys()));
    const q = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight";
    const k = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k.weight";
    const temp = "down_blocks.0.attentions.0.transformer_blocks.0.attn_temp.to_out.0.weight";
    const load = async (s: typeof base, key: string) => toFloat32(await s.store.source(key).load());
    expect(maxAbsDiff(await load(tuned, q), await load(base, q))).toBeGreaterThan(0); // trained
    expect(maxAbsDiff(await load(tuned, k), await load(base, k))).toBe(0); // frozen
    expect(Array.from((await load(base, temp)).data).every((v) => v === 0)).toBe(true); // release zero-init
    expect(maxAbsDiff(await load(tuned, temp), await load(base, temp))).toBeGreaterThan(0);
    const unet = await loadUNet3DConditionModel(out, { frames: 4 });
    try {
      const latents = tensor("float32", [1, 4, 4, 16, 16], new Float32Array(4 * 4 * 256).fill(0.1));
      const ctx = await readSafetensors(join(FIXTURE, "inputs.safetensors"));
      const pred = await unet.forward({
        sample: latents,
        timestep: 10,
        encoderHiddenStates: ctx.get("encoder_hidden_states") as HostTensor,
      });
      expect(pred.shape).toEqual([1, 4, 4, 16, 16]);
      expect(Array.from(pred.data).every(Number.isFinite)).toBe(true);
    } finally {
      await unet.release();
    }
    await expect(
      tuneAVideo({
        model: TINY_SD,
        video: CLIP,
        prompt: "x",
        out,
        maxTrainSteps: 1,
        nSampleFrames: 4,
        width: 32,
        height: 32,
      }),
    ).rejects.toThrow(/does not exist yet/);
  });

  it("refuses a clip shorter than the tuning length, before any work", async () => {
    await expect(
      tuneAVideo({
        model: TINY_SD,
        video: CLIP,
        prompt: "x",
        out: join(work, "short"),
        nSampleFrames: 8,
        sampleFrameRate: 2,
        width: 32,
        height: 32,
      }),
    ).rejects.toThrow(/at least 8 frames/);
  });
});

describe("steadyframe tune and generation", () => {
  it("Ctrl-C after a step saves the steps done; the folder generates a video", async () => {
    const out = join(work, "cli-tuned");
    const controller = new AbortController();
    const io = captureIO(controller.signal);
    const args = [CLIP, "--model", TINY_SD, "--prompt", "a car", "--out", out, "--steps", "5"];
    const running = tuneCommand.run([...args, "--frames", "4", "--size", "32", "--lr", "1e-3", "--json"], io);
    // Abort once the first step's loss line is out (non-interactive output prints the first step).
    const poll = setInterval(() => {
      if (io.err().includes("tune [")) controller.abort();
    }, 50);
    const code = await running.finally(() => clearInterval(poll));
    expect(code).toBe(130);
    const summary = JSON.parse(io.out()) as { steps: number; cancelled: boolean; losses: number[] };
    expect(summary.cancelled).toBe(true);
    expect(summary.steps).toBeGreaterThanOrEqual(1);
    expect(summary.steps).toBeLessThan(5);
    const record = JSON.parse(await readFile(join(out, "tune_a_video.json"), "utf8")) as Record<
      string,
      unknown
    >;
    expect(record["steps_done"]).toBe(summary.steps);

    const result = await generateTuneAVideo({ tuned: out, prompt: "a red car", numInferenceSteps: 2 });
    expect(result.frames.length).toBe(4);
    expect(result.frames.every((f) => f.width === 32 && f.height === 32)).toBe(true);
    expect(result.invertedLatents?.shape).toEqual([1, 4, 4, 16, 16]);
    expect(Array.from(result.latents.data).every(Number.isFinite)).toBe(true);
  });

  it("checks every flag before loading anything", async () => {
    const io = captureIO();
    await expect(tuneCommand.run([CLIP, "--model", TINY_SD, "--prompt", "x"], io)).rejects.toThrow(/--out/);
    await expect(
      tuneCommand.run(
        [CLIP, "--model", TINY_SD, "--prompt", "x", "--out", join(work, "n"), "--lr", "-1"],
        io,
      ),
    ).rejects.toThrow(/--lr/);
    await expect(
      tuneCommand.run(
        [join(work, "missing.mp4"), "--model", TINY_SD, "--prompt", "x", "--out", join(work, "m")],
        io,
      ),
    ).rejects.toThrow(/<video>/);
  });
});

describe("UNet3DConditionModel from other UNet configs", () => {
  it("builds an SD2-style UNet (linear projections, per-block heads, upcast) and runs it", async () => {
    const raw = {
      _class_name: "UNet2DConditionModel",
      block_out_channels: [16, 32],
      down_block_types: ["CrossAttnDownBlock2D", "DownBlock2D"],
      up_block_types: ["UpBlock2D", "CrossAttnUpBlock2D"],
      attention_head_dim: [2, 4],
      use_linear_projection: true,
      upcast_attention: true,
      cross_attention_dim: 24,
      layers_per_block: 1,
      norm_num_groups: 8,
      sample_size: 8,
    };
    const { config } = parseUNet3DConditionModelConfig("sd2-like/config.json", raw);
    const temporal = [...temporalParameterShapes(config).keys()];
    expect(temporal.length).toBe(4 * 7); // transformers: down 0, mid, up 1 (two layers); 7 keys each
    expect(temporal.every((k) => /transformer_blocks\.0\.(attn_temp|norm_temp)\./.test(k))).toBe(true);
    const saved = unet3dConfigJson(raw);
    expect(saved["down_block_types"]).toEqual(["CrossAttnDownBlock3D", "DownBlock3D"]);
    expect(saved["up_block_types"]).toEqual(["UpBlock3D", "CrossAttnUpBlock3D"]);
    const unet = await openUNet3DConditionModel(
      {
        config,
        inflated: false,
        raw,
        store: randomWeights({ seed: 2 }),
        weightsId: null,
        configName: "sd2-like/config.json",
        dir: "",
      },
      { frames: 3 },
    );
    try {
      const sample = new TorchGenerator(0).randn([2, 4, 3, 8, 8]);
      const ehs = new TorchGenerator(1).randn([2, 5, 24]);
      const pred = await unet.forward({ sample, timestep: 500, encoderHiddenStates: ehs });
      expect(pred.shape).toEqual([2, 4, 3, 8, 8]);
      expect(Array.from(pred.data).every(Number.isFinite)).toBe(true);
    } finally {
      await unet.release();
    }
  });
});
