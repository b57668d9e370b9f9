/**
 * LoRA (issue 10 item 1): the `lora` golden fixture (diffusers 0.26.3 load_lora_weights + fuse_lora on
 * tiny-sd: kohya/A1111 LoRA+LoCon, diffusers, PEFT and old attention-processor files, two stacked),
 * one error for every key that does not fit, a cache identity per LoRA set and scale, and
 * `steadyframe image --lora` on the tiny model.
 */
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/cli/main.js";
import { parseLoraFlag } from "../src/cli/commands/lora-option.js";
import { runConformance } from "../src/conformance/run.js";
import { InvalidArgumentError, LoraMismatchError } from "../src/errors.js";
import { StableDiffusionPipeline } from "../src/pipeline/stable-diffusion.js";
import { UNet2DConditionModel } from "../src/models/unet/unet-2d-condition.js";
import { parseUNet2DConditionModelConfig } from "../src/models/unet/config.js";
import { openWeightsFile } from "../src/models/component-source.js";
import { type HostTensor, maxAbsDiff, tensor } from "../src/tensor.js";
import { applyLoras, parseLoraKey } from "../src/weights/lora/index.js";
import { readSafetensors, serializeSafetensors } from "../src/weights/safetensors.js";
import { captureIO } from "./helpers/cli-io.js";
import { GOLDEN } from "./helpers/golden-fixture.js";

const FIXTURE = join(GOLDEN, "lora");
const KOHYA = join(FIXTURE, "lora_kohya.safetensors");
const UNET_DIR = join(GOLDEN, "tiny-sd/unet");
const TEXT_DIR = join(GOLDEN, "tiny-sd/text_encoder");

let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sf-lora-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function tinyModels() {
  const unet = await openWeightsFile(join(UNET_DIR, "diffusion_pytorch_model.safetensors"));
  const text = await openWeightsFile(join(TEXT_DIR, "model.safetensors"));
  return {
    unet: { store: unet.store, weightsId: unet.weightsId },
    text_encoder: { store: text.store, weightsId: text.weightsId },
  };
}

const f32 = (shape: number[], fill = 0.01): HostTensor =>
  tensor("float32", shape, new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(fill));

describe("lora golden fixture (diffusers 0.26.3 load_lora_weights / fuse_lora)", () => {
  it("passes the lora conformance kind: every output, every format, the key map", async () => {
    const results = await runConformance([FIXTURE]);
    const rows = results.flatMap((r) => r.rows);
    for (const r of rows)
      console.log(
        `${r.tensor}: max abs err ${r.maxAbsError.toExponential(2)} (tol ${r.tolerance}) ${r.note ?? ""}`,
      );
    expect(rows.filter((r) => !r.pass)).toEqual([]);
    const outputs = await readSafetensors(join(FIXTURE, "outputs.safetensors"));
    const tensors = new Set(rows.map((r) => r.tensor));
    for (const name of outputs.keys()) expect(tensors, name).toContain(name);
    // the three formats of the attention LoRA and the key map of every file
    for (const name of [
      "noise_pred.diffusers.scale1 [lora_peft.safetensors]",
      "noise_pred.diffusers.scale1 [lora_attn_procs.safetensors]",
      "key_map[lora_kohya.safetensors]",
      "key_map[lora_diffusers.safetensors]",
      "key_map[lora_peft.safetensors]",
      "key_map[lora_attn_procs.safetensors]",
    ])
      expect(tensors, name).toContain(name);
    const fusedTol = rows.find((r) => r.tensor.startsWith("fused."))?.tolerance;
    expect(fusedTol).toBe(1e-6);
  });

  it("an unknown output name fails its row instead of passing by omission", async () => {
    const copy = join(dir, "lora-copy");
    await cp(FIXTURE, copy, { recursive: true });
    const caseJson = JSON.parse(await readFile(join(FIXTURE, "case.json"), "utf8")) as Record<
      string,
      unknown
    >;
    caseJson["weights"] = { unet: UNET_DIR, text_encoder: TEXT_DIR };
    delete caseJson["outputs_file"];
    await writeFile(join(copy, "case.json"), JSON.stringify(caseJson));
    const outputs = await readSafetensors(join(FIXTURE, "outputs.safetensors"));
    const base = outputs.get("noise_pred.base") as HostTensor;
    await writeFile(
      join(copy, "outputs.safetensors"),
      serializeSafetensors({ "noise_pred.base": base, "noise_pred.mystery": base }),
    );
    const rows = (await runConformance([copy])).flatMap((r) => r.rows);
    expect(rows.find((r) => r.tensor === "noise_pred.base")?.pass).toBe(true);
    const mystery = rows.find((r) => r.tensor === "noise_pred.mystery");
    expect(mystery?.pass).toBe(false);
    expect(mystery?.note).toContain("unknown output");
  });
});

describe("lora kind: key_map.json numbers are values, not text", () => {
  it("alpha / rank printed from a float32 passes; a different value fails its row", async () => {
    const copy = join(dir, "lora-keymap");
    await cp(FIXTURE, copy, { recursive: true });
    const caseJson = JSON.parse(await readFile(join(FIXTURE, "case.json"), "utf8")) as Record<
      string,
      unknown
    >;
    caseJson["weights"] = { unet: UNET_DIR, text_encoder: TEXT_DIR };
    await writeFile(join(copy, "case.json"), JSON.stringify(caseJson));
    const keyMap = JSON.parse(await readFile(join(FIXTURE, "key_map.json"), "utf8")) as Record<
      string,
      { alpha_over_rank: number }[]
    >;
    const rowsWith = async (scale: (v: number) => number): Promise<Map<string, boolean>> => {
      const edited = Object.fromEntries(
        Object.entries(keyMap).map(([f, entries]) => [
          f,
          entries.map((e) => ({ ...e, alpha_over_rank: scale(e.alpha_over_rank) })),
        ]),
      );
      await writeFile(join(copy, "key_map.json"), JSON.stringify(edited));
      const rows = (await runConformance([copy])).flatMap((r) => r.rows);
      return new Map(rows.filter((r) => r.tensor.startsWith("key_map[")).map((r) => [r.tensor, r.pass]));
    };
    const widened = await rowsWith((v) => v * (1 + 3e-8)); // a float32 value printed as a double
    expect(widened.size).toBe(4);
    expect([...widened.values()].every(Boolean)).toBe(true);
    const other = await rowsWith((v) => v * 1.001);
    expect([...other.values()].some(Boolean)).toBe(false);
  });
});

describe("LoRA keys that do not fit", () => {
  it("one LoraMismatchError lists every unknown, unmatched and mis-shaped key of every file", async () => {
    const bad = join(dir, "bad.safetensors");
    const good = {
      // a real module, kohya-spelled: placed
      "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": f32([4, 32, 1, 1]),
      "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": f32([32, 4, 1, 1]),
    };
    const unplaceable: Record<string, HostTensor> = {
      // no such UNet module
      "lora_unet_down_blocks_9_attentions_0_proj_in.lora_down.weight": f32([4, 32, 1, 1]),
      "lora_unet_down_blocks_9_attentions_0_proj_in.lora_up.weight": f32([32, 4, 1, 1]),
      "lora_unet_down_blocks_9_attentions_0_proj_in.alpha": f32([], 1),
      // LyCORIS LoHa: unsupported format
      "lora_unet_down_blocks_0_resnets_0_conv1.hada_w1_a": f32([32, 4]),
      // an up without its down
      "lora_unet_down_blocks_0_resnets_0_conv2.lora_up.weight": f32([32, 2, 1, 1]),
      // SDXL's second text encoder: absent here
      "lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": f32([4, 32]),
      "lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_up.weight": f32([37, 4]),
      // a diffusers-format key for a module the UNet lacks
      "unet.mid_block.attentions.0.transformer_blocks.0.attn3.to_q.lora.down.weight": f32([8, 64]),
      "unet.mid_block.attentions.0.transformer_blocks.0.attn3.to_q.lora.up.weight": f32([64, 8]),
      // a GroupNorm (1-D weight) is no LoRA layer
      "lora_unet_conv_norm_out.lora_down.weight": f32([4, 32]),
      "lora_unet_conv_norm_out.lora_up.weight": f32([32, 4]),
      // shapes of another model (SD 2.x-wide): names the key and both shapes
      "lora_unet_mid_block_attentions_0_proj_out.lora_down.weight": f32([4, 1024, 1, 1]),
      "lora_unet_mid_block_attentions_0_proj_out.lora_up.weight": f32([1024, 4, 1, 1]),
      // not a LoRA key at all
      "model.diffusion_model.input_blocks.0.0.weight": f32([4]),
    };
    await writeFile(bad, serializeSafetensors({ ...good, ...unplaceable }));
    const second = join(dir, "second.safetensors");
    await writeFile(
      second,
      serializeSafetensors({
        "lora_te_text_model_nothing_here.lora_down.weight": f32([4, 32]),
        "lora_te_text_model_nothing_here.lora_up.weight": f32([32, 4]),
      }),
    );
    const error = await applyLoras(
      [
        { path: bad, scale: 1 },
        { path: KOHYA, scale: 0.5 },
        { path: second, scale: 1 },
      ],
      await tinyModels(),
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LoraMismatchError);
    const e = error as LoraMismatchError;
    const listed = e.problems
      .map((p) => `${p.file === bad ? "bad" : p.file === second ? "second" : "other"}:${p.key}`)
      .sort();
    expect(listed).toEqual(
      [
        ...Object.keys(unplaceable).map((k) => `bad:${k}`),
        "second:lora_te_text_model_nothing_here.lora_down.weight",
        "second:lora_te_text_model_nothing_here.lora_up.weight",
      ].sort(),
    );
    for (const key of Object.keys(unplaceable)) expect(e.message).toContain(key);
    const misfit = e.problems.find(
      (p) => p.key === "lora_unet_mid_block_attentions_0_proj_out.lora_down.weight",
    );
    expect(misfit?.reason).toContain("[4, 1024, 1, 1]");
    expect(misfit?.reason).toContain("[1024, 4, 1, 1]");
    expect(misfit?.reason).toContain("[64, 64, 1, 1]");
    expect(misfit?.reason).toContain("mid_block.attentions.0.proj_out.weight");
    expect(e.code).toBe("E_LORA_MISMATCH");
  });

  it("reads the key formats people download", () => {
    expect(parseLoraKey("lora_unet_down_blocks_0_attentions_0_proj_in.alpha")).toMatchObject({
      format: "kohya",
      model: "unet",
      part: "alpha",
    });
    expect(parseLoraKey("lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight")).toMatchObject({
      model: "text_encoder",
      part: "up",
    });
    expect(
      parseLoraKey("up_blocks.1.attentions.0.transformer_blocks.0.attn2.processor.to_out_lora.down.weight"),
    ).toMatchObject({
      format: "attn_procs",
      model: "unet",
      name: "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_out.0",
    });
    expect(parseLoraKey("unet.mid_block.attentions.0.proj_in.lora_B.weight")).toMatchObject({
      format: "peft",
      name: "mid_block.attentions.0.proj_in",
      part: "up",
    });
    expect(
      parseLoraKey("text_encoder.text_model.encoder.layers.0.self_attn.to_k_lora.down.weight"),
    ).toMatchObject({
      model: "text_encoder",
      name: "text_model.encoder.layers.0.self_attn.k_proj",
    });
    expect(parseLoraKey("lora_unet_x.hada_w1_a")).toBeUndefined();
  });

  it("parses --lora FILE[:SCALE]", () => {
    expect(parseLoraFlag("style.safetensors")).toEqual({ path: "style.safetensors", scale: 1 });
    expect(parseLoraFlag("style.safetensors:0.8")).toEqual({ path: "style.safetensors", scale: 0.8 });
    expect(parseLoraFlag("C:\\loras\\a.safetensors")).toEqual({ path: "C:\\loras\\a.safetensors", scale: 1 });
    expect(parseLoraFlag("a.safetensors:-1.5")).toEqual({ path: "a.safetensors", scale: -1.5 });
  });
});

describe("the fused model's cache identity", () => {
  it("differs between two scales (and files), so a cached model is never reused for another", async () => {
    const models = await tinyModels();
    const at = async (scale: number) => (await applyLoras([{ path: KOHYA, scale }], models)).models;
    const [one, other, again] = [await at(1), await at(0.6), await at(1)];
    expect(one.unet?.weightsId).not.toBe(other.unet?.weightsId);
    expect(one.text_encoder?.weightsId).not.toBe(other.text_encoder?.weightsId);
    expect(one.unet?.weightsId).not.toBe(models.unet.weightsId);
    expect(one.unet?.weightsId).toBe(again.unet?.weightsId);
    // an attention-only LoRA without text-encoder keys leaves the text encoder's identity alone
    const attn = await applyLoras([{ path: join(FIXTURE, "lora_diffusers.safetensors"), scale: 1 }], models);
    expect(attn.models.text_encoder?.weightsId).toBe(models.text_encoder.weightsId);
    expect(attn.models.unet?.weightsId).not.toBe(one.unet?.weightsId);

    // the compiled-model cache: one folder per scale; the same scale reuses its model
    const cacheDir = join(dir, "cache");
    const config = parseUNet2DConditionModelConfig(
      join(UNET_DIR, "config.json"),
      JSON.parse(await readFile(join(UNET_DIR, "config.json"), "utf8")),
    ).config;
    const load = async (m: typeof one) => {
      const unet = m.unet;
      if (unet === undefined || unet.weightsId === null) throw new Error("no identity");
      const runner = await UNet2DConditionModel.load(
        { config, store: unet.store, weightsId: unet.weightsId },
        { cacheDir },
      );
      const result = { path: runner.modelPath, reused: runner.reused };
      await runner.release();
      return result;
    };
    const a = await load(one);
    const b = await load(other);
    const c = await load(again);
    expect(a.path).not.toBe(b.path);
    expect(c.path).toBe(a.path);
    expect(c.reused).toBe(true);
  });
});

describe("unfused LoRAs with live scales", () => {
  it("match the fused model at each scale, change scale without a new model, and keep one cache folder", async () => {
    const cacheDir = join(dir, "live-cache");
    const MODEL = join(GOLDEN, "tiny-sd");
    const render = async (sd: StableDiffusionPipeline) =>
      (
        await sd.generate({
          prompt: "a red car",
          width: 64,
          height: 64,
          numInferenceSteps: 2,
          guidanceScale: 7.5,
          seed: 5,
          scheduler: "ddim",
        })
      ).image;
    const fusedAt = async (scale: number) => {
      const sd = await StableDiffusionPipeline.load(MODEL, { loras: [{ path: KOHYA, scale }], cacheDir });
      try {
        return await render(sd);
      } finally {
        await sd.release();
      }
    };
    const [half, full] = [await fusedAt(0.5), await fusedAt(1)];
    const live = await StableDiffusionPipeline.load(MODEL, {
      loras: [{ path: KOHYA, scale: 0.5 }],
      liveLoras: true,
      cacheDir,
    });
    try {
      expect(live.loraScales?.scales).toEqual([0.5]);
      const a = await render(live);
      live.loraScales?.set(0, 1);
      const b = await render(live);
      // unfused x·W + s·(x·down)·up vs x·(W + s·up·down): float32 rounding only
      expect(maxAbsDiff(a, half)).toBeLessThan(1e-4);
      expect(maxAbsDiff(b, full)).toBeLessThan(1e-4);
      expect(maxAbsDiff(half, full)).toBeGreaterThan(1e-3);
      expect(() => live.loraScales?.set(1, 1)).toThrow(InvalidArgumentError);
    } finally {
      await live.release();
    }
    // another scale loads the same compiled models from the cache (the identity names files, not scales)
    const unets = async () => (await readdir(cacheDir)).filter((n) => n.startsWith("unet")).length;
    const before = await unets();
    const again = await StableDiffusionPipeline.load(MODEL, {
      loras: [{ path: KOHYA, scale: 0.2 }],
      liveLoras: true,
      cacheDir,
    });
    await again.release();
    expect(before).toBe(3); // fused 0.5, fused 1, live
    expect(await unets()).toBe(before);
  }, 180_000);
});

describe("steadyframe image --lora", () => {
  const args = (out: string, extra: string[] = []): string[] => [
    "image",
    "--model",
    join(GOLDEN, "tiny-sd"),
    "--prompt",
    "a red car",
    "--steps",
    "2",
    "--width",
    "32",
    "--height",
    "32",
    "--scheduler",
    "ddim",
    "--cache-dir",
    join(dir, "image-cache"),
    "--out",
    out,
    ...extra,
  ];
  const run = async (argv: string[]) => {
    const io = captureIO();
    const code = await main(argv, io);
    return { code, out: io.out(), err: io.err() };
  };

  it("generates on the tiny model with two stacked LoRAs, and the LoRAs change the image", async () => {
    const plain = join(dir, "plain.png");
    const styled = join(dir, "styled.png");
    expect((await run(args(plain))).code).toBe(0);
    const r = await run(
      args(styled, ["--lora", `${KOHYA}:0.7`, "--lora", join(FIXTURE, "lora_peft.safetensors")]),
    );
    expect(r.err).not.toContain("error");
    expect(r.code).toBe(0);
    expect(r.out).toContain(styled);
    expect(Buffer.compare(await readFile(plain), await readFile(styled))).not.toBe(0);
  });

  it("refuses a missing --lora file before loading, and documents --lora in image and video --help", async () => {
    const missing = await run(args(join(dir, "x.png"), ["--lora", join(dir, "nope.safetensors:0.5")]));
    expect(missing.code).not.toBe(0);
    expect(missing.err).toContain("nope.safetensors");
    for (const command of ["image", "video"]) {
      const help = await run([command, "--help"]);
      expect(help.out).toMatch(/--lora (<file\[:scale\]>|FILE\[:SCALE\])/);
      expect(help.out).toContain("--lora-live");
    }
  });

  it("--lora-live generates with two stacked unfused LoRAs, and wants a --lora", async () => {
    const out = join(dir, "live.png");
    const r = await run(
      args(out, ["--lora", `${KOHYA}:0.7`, "--lora", join(FIXTURE, "lora_peft.safetensors"), "--lora-live"]),
    );
    expect(r.err).not.toContain("error");
    expect(r.code).toBe(0);
    const alone = await run(args(join(dir, "y.png"), ["--lora-live"]));
    expect(alone.code).not.toBe(0);
    expect(alone.err).toContain("--lora-live");
  });
});
