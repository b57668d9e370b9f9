import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  mapTensor,
  randomTensor,
  refConv2d,
  refGroupNorm,
  refLinear,
} from "../../../test/helpers/graph-reference.js";
import { expectClose, expectError, runGraph } from "../../../test/helpers/run-graph.js";
import { bindGraph, tinySdDir, tinySdStore } from "../../../test/helpers/tiny-sd.js";
import { ConfigError, MissingWeightsError, UnsupportedError } from "../../errors.js";
import { GraphBuilder } from "../../graph/builder.js";
import type { GraphBuildOptions } from "../../nn/module.js";
import { mapStore, randomWeights } from "../../nn/weight-store.js";
import { type HostTensor, tensor } from "../../tensor.js";
import { buildUNet2DConditionModel } from "./build.js";
import {
  type UNet2DConditionModelConfig,
  parseUNet2DConditionModelConfig,
  readUNet2DConditionModelConfig,
} from "./config.js";
import { CrossAttnDownBlock2D } from "./down-blocks.js";
import { Timesteps, timestepFrequencies } from "./embeddings.js";
import { ResnetBlock2D } from "./resnet.js";
import { Downsample2D, Upsample2D } from "./sampling.js";

const tinyConfig = async (): Promise<UNet2DConditionModelConfig> =>
  (await readUNet2DConditionModelConfig(join(tinySdDir("unet"), "config.json"))).config;

/** An SD2-style config: linear projections, per-block head counts, upcast attention, 3 levels. */
const SD2_STYLE = {
  block_out_channels: [32, 64, 64],
  down_block_types: ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
  up_block_types: ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
  attention_head_dim: [2, 4, 4],
  use_linear_projection: true,
  upcast_attention: true,
  cross_attention_dim: 48,
  layers_per_block: 1,
  norm_num_groups: 8,
  transformer_layers_per_block: [1, 2, 1],
};

async function runRandom(
  json: Record<string, unknown>,
  hw: [number, number],
  options: GraphBuildOptions = {},
): Promise<HostTensor> {
  const { config } = parseUNet2DConditionModelConfig("test config", json);
  const { g, w } = bindGraph(randomWeights({ seed: 3 }), options);
  buildUNet2DConditionModel(w, config);
  const cross = typeof config.cross_attention_dim === "number" ? config.cross_attention_dim : 0;
  const out = await runGraph(g, {
    sample: randomTensor([2, config.in_channels, ...hw], 1),
    timestep: tensor("float32", [2], Float32Array.of(981, 1.5)),
    encoder_hidden_states: randomTensor([2, 7, cross], 2),
  });
  const noise = out["noise_pred"];
  if (!noise) throw new Error("no noise_pred");
  return noise;
}

describe("UNet2DConditionModel graph", () => {
  it("requests exactly the tiny checkpoint's keys, with symbolic batch/height/width", async () => {
    const store = await tinySdStore("unet");
    const { g, w } = bindGraph(store);
    const built = buildUNet2DConditionModel(w, await tinyConfig());
    expect(built.weights.missing).toEqual([]);
    expect(built.weights.unexpected).toEqual([]);
    expect(g.initializers.map((i) => i.name).sort()).toEqual([...store.keys()].sort());
    expect(built.inputs).toEqual(["sample", "timestep", "encoder_hidden_states"]);
    expect(g.inputs.map((v) => v.shape)).toEqual([
      ["batch", 4, "height", "width"],
      ["batch"],
      ["batch", "sequence", 32],
    ]);
    expect(g.outputs[0]?.name).toBe("noise_pred");
    expect(g.outputs[0]?.shape).toEqual(["batch", 4, "height", "width"]);
    // attn1 + attn2 in 2 (down) + 1 (mid) + 3 (up) transformers
    expect(g.nodes.filter((n) => n.opType === "MultiHeadAttention").length).toBe(2 * 6);
  });

  it("lists every mis-shaped key in one MissingWeightsError when the config does not fit", async () => {
    const { w } = bindGraph(await tinySdStore("unet"));
    const config = { ...(await tinyConfig()), block_out_channels: [32, 96] };
    const error = await expectError(
      () => buildUNet2DConditionModel(w, config),
      MissingWeightsError,
      "E_WEIGHTS_MISMATCH",
      "with the wrong shape",
    );
    expect(error.message).toContain(
      "down_blocks.1.resnets.0.conv1.weight is [64,32,3,3], expected [96,32,3,3]",
    );
    expect(error.misshaped.map((m) => m.key)).toContain("mid_block.attentions.0.proj_in.weight");
    expect(error.misshaped.length).toBeGreaterThan(20);
    expect(error.message).toContain("check that the config.json belongs to this checkpoint");
  });

  it("SD2-style config (linear projection, per-block heads, upcast, odd sizes) builds and runs on random weights", async () => {
    const { config } = parseUNet2DConditionModelConfig("sd2", SD2_STYLE);
    const { g, w } = bindGraph(randomWeights());
    const built = buildUNet2DConditionModel(w, config);
    const block = built.model.down_blocks[1];
    expect(block).toBeInstanceOf(CrossAttnDownBlock2D);
    const attn1 =
      block instanceof CrossAttnDownBlock2D ? block.attentions[0]?.transformer_blocks[0]?.attn1 : undefined;
    expect([attn1?.heads, attn1?.dimHead]).toEqual([4, 16]);
    const projIn = g.initializers.find((i) => i.name === "down_blocks.0.attentions.0.proj_in.weight");
    expect(projIn?.source.shape).toEqual([32, 32]);
    expect(
      g.initializers.some(
        (i) => i.name === "down_blocks.1.attentions.0.transformer_blocks.1.attn2.to_k.weight",
      ),
    ).toBe(true);
    const out = await runRandom(SD2_STYLE, [18, 14]);
    expect(out.shape).toEqual([2, 4, 18, 14]);
    expect(out.data.every((v) => Number.isFinite(Number(v)))).toBe(true);
    // The plain-ONNX lowerings (MatMul attention, GroupNormalization-21) agree with the default ones.
    expectClose(await runRandom(SD2_STYLE, [18, 14], { attention: "matmul", groupNorm: "onnx" }), out, {
      atol: 1e-4,
      rtol: 1e-4,
    });
  });

  it("less common fields: only_cross_attention, center_input_sample, extra activations, no mid block, downsample_padding 0", async () => {
    const out = await runRandom(
      {
        ...SD2_STYLE,
        only_cross_attention: [true, false, false],
        center_input_sample: true,
        time_embedding_act_fn: "mish",
        timestep_post_act: "silu",
        act_fn: "gelu",
        mid_block_type: null,
        downsample_padding: 0,
        conv_in_kernel: 1,
        time_embedding_dim: 48,
      },
      [16, 16],
    );
    expect(out.shape).toEqual([2, 4, 16, 16]);
    expect(out.data.every((v) => Number.isFinite(Number(v)))).toBe(true);
  });

  it("refuses unsupported config fields by name", async () => {
    const base = await tinyConfig();
    const cases: [Partial<Record<keyof UNet2DConditionModelConfig, unknown>>, string][] = [
      [{ class_embed_type: "timestep", class_embeddings_concat: true }, "class_embeddings_concat"],
      [{ addition_embed_type: "text_time" }, "addition_embed_type"],
      [{ time_cond_proj_dim: 2 }, "time_cond_proj_dim"],
      [{ dual_cross_attention: true }, "dual_cross_attention"],
      [{ encoder_hid_dim: 32 }, "encoder_hid_dim"],
      [{ attention_type: "gated" }, "attention_type"],
      [{ mid_block_type: "UNetMidBlock2DSimpleCrossAttn" }, "mid_block_type"],
      [{ down_block_types: ["SimpleCrossAttnDownBlock2D", "DownBlock2D"] }, "down_block_types[0]"],
      [{ up_block_types: ["UpBlock2D", "AttnUpBlock2D"] }, "up_block_types[1]"],
      [{ act_fn: "tanh" }, "act_fn"],
      [{ conv_out_kernel: 2 }, "conv_out_kernel"],
      [{ cross_attention_dim: [32, 64] }, "cross_attention_dim"],
    ];
    for (const [change, field] of cases) {
      const { w } = bindGraph(randomWeights());
      const config = { ...base, ...change } as UNet2DConditionModelConfig;
      await expectError(
        () => buildUNet2DConditionModel(w, config),
        UnsupportedError,
        "E_UNSUPPORTED",
        `UNet2DConditionModel config field ${field} =`,
      );
    }
  });

  it("refuses per-block lists of the wrong length with a ConfigError", async () => {
    const base = await tinyConfig();
    const { w } = bindGraph(randomWeights());
    await expectError(
      () => buildUNet2DConditionModel(w, { ...base, attention_head_dim: [8, 8, 8] }),
      ConfigError,
      "E_CONFIG",
      'unet/config.json: field "attention_head_dim" should be one value or a list of 2 (one per down block)',
    );
    const { w: w2 } = bindGraph(randomWeights());
    await expectError(
      () => buildUNet2DConditionModel(w2, { ...base, transformer_layers_per_block: [[1, 1], 1] }),
      ConfigError,
      "E_CONFIG",
      'field "reverse_transformer_layers_per_block" should be a list (required when',
    );
  });
});

describe("UNet blocks", () => {
  it("Timesteps: float32 sinusoid with flip_sin_to_cos (cos first)", async () => {
    const freqs = timestepFrequencies(8, 0);
    expect(Array.from(freqs)).toEqual([
      1,
      Math.fround(Math.exp(Math.fround(Math.fround(-Math.log(10000)) / 4))),
      freqs[2],
      freqs[3],
    ]);
    expect(freqs[3]).toBeCloseTo(10000 ** -0.75, 6);
    const g = new GraphBuilder();
    const t = g.input("t", "float32", ["batch"]);
    g.output(
      new Timesteps({ numChannels: 8, flipSinToCos: true, downscaleFreqShift: 0 }).forward(g, t),
      "emb",
    );
    g.output(
      new Timesteps({ numChannels: 7, flipSinToCos: false, downscaleFreqShift: 1 }).forward(g, t),
      "odd",
    );
    const out = await runGraph(g, { t: tensor("float32", [2], Float32Array.of(500, 0.5)) });
    const emb = out["emb"];
    const expected = [500, 0.5].flatMap((v) => [
      ...Array.from(freqs, (f) => Math.cos(v * f)),
      ...Array.from(freqs, (f) => Math.sin(v * f)),
    ]);
    expectClose(emb, tensor("float32", [2, 8], Float32Array.from(expected)), { atol: 2e-5 });
    expect(out["odd"]?.shape).toEqual([2, 7]);
    expect(out["odd"]?.data[6]).toBe(0);
  });

  it("ResnetBlock2D matches a plain reference (shortcut, time embedding, output scale)", async () => {
    const p = (shape: number[], seed: number): HostTensor<"float32"> => randomTensor(shape, seed, 0.5);
    const weights = {
      "r.norm1.weight": p([4], 1),
      "r.norm1.bias": p([4], 2),
      "r.conv1.weight": p([6, 4, 3, 3], 3),
      "r.conv1.bias": p([6], 4),
      "r.time_emb_proj.weight": p([6, 5], 5),
      "r.time_emb_proj.bias": p([6], 6),
      "r.norm2.weight": p([6], 7),
      "r.norm2.bias": p([6], 8),
      "r.conv2.weight": p([6, 6, 3, 3], 9),
      "r.conv2.bias": p([6], 10),
      "r.conv_shortcut.weight": p([6, 4, 1, 1], 11),
      "r.conv_shortcut.bias": p([6], 12),
    };
    const { g, w } = bindGraph(mapStore(weights));
    const block = new ResnetBlock2D(w.at("r"), {
      inChannels: 4,
      outChannels: 6,
      tembChannels: 5,
      groups: 2,
      eps: 1e-5,
      outputScaleFactor: 2,
    });
    w.finish();
    g.output(
      block.forward(
        g.input("x", "float32", ["batch", 4, "h", "w"]),
        g.input("temb", "float32", ["batch", 5]),
      ),
      "y",
    );
    const [x, temb] = [randomTensor([2, 4, 5, 5], 20), randomTensor([2, 5], 21)];
    const silu = (t: HostTensor<"float32">): HostTensor<"float32"> =>
      mapTensor(t, (v) => v / (1 + Math.exp(-v)));
    const pad = { pads: [1, 1, 1, 1] as const };
    let h = refConv2d(
      silu(refGroupNorm(x, 2, 1e-5, weights["r.norm1.weight"], weights["r.norm1.bias"])),
      weights["r.conv1.weight"],
      weights["r.conv1.bias"],
      pad,
    );
    const t = refLinear(silu(temb), weights["r.time_emb_proj.weight"], weights["r.time_emb_proj.bias"]);
    h = mapTensor(h, (v, i) => v + (t.data[Math.floor(i / 25)] ?? 0));
    h = refConv2d(
      silu(refGroupNorm(h, 2, 1e-5, weights["r.norm2.weight"], weights["r.norm2.bias"])),
      weights["r.conv2.weight"],
      weights["r.conv2.bias"],
      pad,
    );
    const short = refConv2d(x, weights["r.conv_shortcut.weight"], weights["r.conv_shortcut.bias"]);
    const expected = mapTensor(h, (v, i) => ((short.data[i] ?? 0) + v) / 2);
    expectClose((await runGraph(g, { x, temb }))["y"], expected, { atol: 1e-5 });
  });

  it("Downsample2D halves (rounding up) and Upsample2D doubles or takes the skip's size", async () => {
    const { g, w } = bindGraph(randomWeights());
    const x = g.input("x", "float32", [1, 4, "h", "w"]);
    const down = new Downsample2D(w.at("d"), { channels: 4 }).forward(x);
    const up = new Upsample2D(w.at("u"), { channels: 4 });
    g.output(down, "down");
    g.output(up.forward(down), "up2x");
    g.output(up.forward(down, x), "upLike");
    const out = await runGraph(g, { x: randomTensor([1, 4, 9, 6], 1) });
    expect(out["down"]?.shape).toEqual([1, 4, 5, 3]);
    expect(out["up2x"]?.shape).toEqual([1, 4, 10, 6]);
    expect(out["upLike"]?.shape).toEqual([1, 4, 9, 6]);
    expect(w.finish().bound).toBe(4);
  });
});
