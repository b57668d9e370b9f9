/**
 * LCM few-step sampling (issue 10, item 2): the guidance-scale embedding of LCM-distilled UNets
 * (diffusers 0.26.3 `get_guidance_scale_embedding`, `time_embedding.cond_proj`), the pipeline's
 * guidance handling (no classifier-free guidance, batch 1, w = guidance_scale - 1) and
 * `steadyframe image --scheduler lcm --steps 4` on a tiny LCM-distilled UNet and with an LCM-style LoRA.
 * The tiny LCM UNet is tiny-sd's UNet with `time_cond_proj_dim` set and a random `cond_proj` added.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/cli/main.js";
import { parseUNet2DConditionModelConfig } from "../src/models/unet/config.js";
import { buildUNet2DConditionModel } from "../src/models/unet/build.js";
import { guidanceScaleEmbedding } from "../src/models/unet/embeddings.js";
import { mapStore } from "../src/nn/weight-store.js";
import type { DenoisingUNet, UNetInputs } from "../src/pipeline/types.js";
import { textToImage } from "../src/pipeline/text-to-image.js";
import { DDIMScheduler } from "../src/schedulers/ddim.js";
import { type HostTensor, tensor } from "../src/tensor.js";
import { readSafetensors, writeSafetensors } from "../src/weights/safetensors.js";
import { captureIO } from "./helpers/cli-io.js";
import { randomTensor, refLinear } from "./helpers/graph-reference.js";
import { expectClose, runGraph } from "./helpers/run-graph.js";
import { bindGraph } from "./helpers/tiny-sd.js";

const TINY = "test/fixtures/golden/tiny-sd";
const KOHYA = "test/fixtures/golden/lora/lora_kohya.safetensors";
const COND_DIM = 8;

/** The VDM sinusoid written out in float64 from its definition (not the float32 code path). */
function handEmbedding(w: number, dim: number): number[] {
  const half = Math.floor(dim / 2);
  const out: number[] = [];
  for (let i = 0; i < half; i++) out.push(Math.sin(w * 1000 * Math.exp((-i * Math.log(10000)) / (half - 1))));
  for (let i = 0; i < half; i++) out.push(Math.cos(w * 1000 * Math.exp((-i * Math.log(10000)) / (half - 1))));
  if (dim % 2 === 1) out.push(0);
  return out;
}

/** Copies tiny-sd to `dir` with an LCM-distilled UNet: time_cond_proj_dim = COND_DIM and a random cond_proj. */
async function makeLcmModel(dir: string): Promise<HostTensor<"float32">> {
  await cp(TINY, dir, { recursive: true });
  const configPath = join(dir, "unet", "config.json");
  const json = JSON.parse(await readFile(configPath, "utf8")) as Record<string, unknown>;
  json["time_cond_proj_dim"] = COND_DIM;
  await writeFile(configPath, JSON.stringify(json, null, 2));
  const weightsPath = join(dir, "unet", "diffusion_pytorch_model.safetensors");
  const weights = await readSafetensors(weightsPath);
  const ch0 = (json["block_out_channels"] as number[])[0] ?? 0;
  const condProj = randomTensor([ch0, COND_DIM], 11, 0.5);
  weights.set("time_embedding.cond_proj.weight", condProj);
  await writeSafetensors(weightsPath, weights);
  return condProj;
}

describe("guidance-scale embedding", () => {
  it("matches the sinusoid computed by hand (w = guidance_scale - 1, even and odd widths)", () => {
    let worst = 0;
    for (const dim of [8, 256, 9]) {
      for (const g of [1, 1.5, 8.5]) {
        const got = guidanceScaleEmbedding([g - 1], dim);
        const want = handEmbedding(g - 1, dim);
        expect(got.length).toBe(dim);
        want.forEach((v, i) => (worst = Math.max(worst, Math.abs((got[i] ?? NaN) - v))));
      }
    }
    // float32 arguments up to 7500: one ulp is 4.9e-4, so sin/cos may differ by about that much.
    expect(worst).toBeLessThan(2e-3);
    // w = 0 (guidance 1): sin(0) = 0 for the first half, cos(0) = 1 for the second.
    expect(Array.from(guidanceScaleEmbedding([0], 8))).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
  });

  it("the UNet adds cond_proj(timestep_cond) to time_proj before linear_1", async () => {
    const { config } = parseUNet2DConditionModelConfig("lcm config", {
      ...JSON.parse(await readFile(join(TINY, "unet", "config.json"), "utf8")),
      time_cond_proj_dim: COND_DIM,
    });
    const weights = await readSafetensors(join(TINY, "unet", "diffusion_pytorch_model.safetensors"));
    const condProj = randomTensor([32, COND_DIM], 5, 0.5);
    weights.set("time_embedding.cond_proj.weight", condProj);
    const { g, w } = bindGraph(mapStore(weights));
    const built = buildUNet2DConditionModel(w, config, { intermediates: true });
    expect(built.inputs).toContain("timestep_cond");
    const cond = tensor("float32", [2, COND_DIM], guidanceScaleEmbedding([3.5, 0.5], COND_DIM));
    const feeds = {
      sample: randomTensor([2, 4, 8, 8], 1),
      timestep: tensor("float32", [2], Float32Array.of(999, 259)),
      encoder_hidden_states: randomTensor([2, 7, 32], 2),
    };
    const out = await runGraph(g, { ...feeds, timestep_cond: cond });
    const tProj = out["intermediate.time_proj"] as HostTensor<"float32">;
    // the reference: silu(linear_1(t_emb + cond @ W_c^T)) -> linear_2, from the stored weights
    const get = (k: string) => weights.get(k) as HostTensor<"float32">;
    const sample = refLinear(cond, condProj, null);
    const summed = tensor(
      "float32",
      tProj.shape,
      tProj.data.map((v, i) => v + (sample.data[i] ?? 0)),
    );
    const h1 = refLinear(summed, get("time_embedding.linear_1.weight"), get("time_embedding.linear_1.bias"));
    const act = tensor(
      "float32",
      h1.shape,
      h1.data.map((v) => v / (1 + Math.exp(-v))),
    );
    const want = refLinear(act, get("time_embedding.linear_2.weight"), get("time_embedding.linear_2.bias"));
    expectClose(out["intermediate.time_embedding"], want, { atol: 1e-4, rtol: 1e-4 });
    // zeros for timestep_cond equal diffusers' timestep_cond=None (no bias): the plain tiny UNet
    const zero = await runGraph(g, { ...feeds, timestep_cond: tensor("float32", [2, COND_DIM]) });
    const plain = bindGraph(
      mapStore(await readSafetensors(join(TINY, "unet", "diffusion_pytorch_model.safetensors"))),
    );
    const plainConfig = parseUNet2DConditionModelConfig(
      "tiny",
      JSON.parse(await readFile(join(TINY, "unet", "config.json"), "utf8")),
    ).config;
    buildUNet2DConditionModel(plain.w, plainConfig);
    const base = await runGraph(plain.g, feeds);
    expectClose(zero["noise_pred"], base["noise_pred"] as HostTensor, { atol: 1e-5, rtol: 1e-5 });
    // and the guidance embedding changes the prediction
    const diff = (out["noise_pred"] as HostTensor<"float32">).data.reduce(
      (m, v, i) => Math.max(m, Math.abs(v - ((base["noise_pred"] as HostTensor<"float32">).data[i] ?? 0))),
      0,
    );
    expect(diff).toBeGreaterThan(1e-3);
  });

  it("textToImage runs an LCM-distilled UNet with batch 1 and timestep_cond = embedding(g - 1)", async () => {
    const calls: UNetInputs[] = [];
    const unet: DenoisingUNet = {
      guidanceEmbeddingDim: COND_DIM,
      forward: async (inputs) => {
        calls.push(inputs);
        return tensor(
          "float32",
          inputs.sample.shape,
          inputs.sample.data.map((v) => 0.1 * v),
        );
      },
    };
    let prompts: readonly string[] = [];
    await textToImage(
      {
        tokenizer: {
          tokenize: (p) => {
            prompts = p;
            return tensor("int64", [p.length, 77]);
          },
        },
        textEncoder: { encode: async (ids) => tensor("float32", [ids.shape[0] ?? 1, 77, 32]) },
        unet,
        vae: {
          scalingFactor: 1,
          decode: async () => tensor("float32", [1, 3, 16, 16], new Float32Array(768)),
        },
        scheduler: new DDIMScheduler(),
        vaeScaleFactor: 2,
        latentChannels: 4,
      },
      { prompt: "a cat", width: 16, height: 16, numInferenceSteps: 2, guidanceScale: 8.5, seed: 1 },
    );
    expect(prompts).toEqual(["a cat"]);
    expect(calls).toHaveLength(2);
    for (const call of calls) {
      expect(call.sample.shape[0]).toBe(1);
      expect(call.timestepCond?.shape).toEqual([1, COND_DIM]);
      expect(Array.from(call.timestepCond?.data ?? [])).toEqual(
        Array.from(guidanceScaleEmbedding([7.5], COND_DIM)),
      );
    }
  });
});

describe("steadyframe image --scheduler lcm --steps 4", () => {
  let dir: string;
  let lcmModel: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "sf-lcm-"));
    lcmModel = join(dir, "tiny-lcm");
    await makeLcmModel(lcmModel);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const args = (model: string, out: string, extra: string[]): string[] => [
    "image",
    "--model",
    model,
    "--prompt",
    "a red car",
    "--steps",
    "4",
    "--scheduler",
    "lcm",
    "--width",
    "32",
    "--height",
    "32",
    "--seed",
    "7",
    "--out",
    out,
    ...extra,
  ];
  async function run(argv: string[]): Promise<{ code: number; err: string }> {
    const io = captureIO();
    const code = await main(argv, io);
    return { code, err: io.err() };
  }
  const pixels = async (path: string): Promise<Buffer> => await sharp(path).raw().toBuffer();
  const meanAbsDiff = (a: Buffer, b: Buffer): number => {
    let s = 0;
    for (let i = 0; i < a.length; i++) s += Math.abs((a[i] ?? 0) - (b[i] ?? 0));
    return s / a.length;
  };

  it("an LCM-distilled UNet: the guidance scale changes the image through the embedding, deterministically", async () => {
    const outs = ["g8.png", "g8-again.png", "g2.png"].map((f) => join(dir, f));
    for (const [i, g] of ["8", "8", "2"].entries()) {
      const r = await run(args(lcmModel, outs[i] ?? "", ["--guidance", g]));
      expect(r.err).not.toMatch(/error/i);
      expect(r.code).toBe(0);
    }
    const [a, b, c] = await Promise.all(outs.map(pixels));
    expect(meanAbsDiff(a as Buffer, b as Buffer)).toBe(0);
    expect(meanAbsDiff(a as Buffer, c as Buffer)).toBeGreaterThan(0.5);
  });

  it("steadyframe video on the LCM-distilled UNet: no CFG batch (cross-frame attention lays out 1 video)", async () => {
    const out = join(dir, "lcm-video");
    const r = await run([
      "video",
      "--model",
      lcmModel,
      "--prompt",
      "a red car",
      "--frames",
      "2",
      "--steps",
      "4",
      "--scheduler",
      "lcm",
      "--guidance",
      "8",
      "--size",
      "32x32",
      "--out",
      out,
    ]);
    expect(r.err).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    const run1 = JSON.parse(await readFile(join(out, "run.json"), "utf8")) as Record<string, unknown>;
    expect(run1).toBeDefined();
  });

  it("an LCM-LoRA on a normal UNet: low-scale CFG (1.5) and no CFG (1) both generate and differ", async () => {
    const withCfg = join(dir, "lora-cfg.png");
    const noCfg = join(dir, "lora-nocfg.png");
    for (const [out, g] of [
      [withCfg, "1.5"],
      [noCfg, "1"],
    ] as const) {
      const r = await run(args(TINY, out, ["--lora", KOHYA, "--guidance", g]));
      expect(r.err).not.toMatch(/error/i);
      expect(r.code).toBe(0);
    }
    expect(meanAbsDiff(await pixels(withCfg), await pixels(noCfg))).toBeGreaterThan(0.5);
  });
});
