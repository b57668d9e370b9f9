/**
 * UNet class embeddings (class-embedding.ts) on a tiny random UNet. diffusers adds the class
 * embedding to the time embedding, so a UNet whose time_embedding.linear_2.bias is shifted by the
 * embedding gives the same noise prediction: each type is checked that way, with an embedding known
 * on the host (a table row, given labels, or a projection whose input weights are zero). The
 * ControlNet adds the same module the same way (checked on its mid-block residual).
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { randomTensor } from "../../../test/helpers/graph-reference.js";
import { expectClose, runGraph } from "../../../test/helpers/run-graph.js";
import { bindGraph, tinySdDir } from "../../../test/helpers/tiny-sd.js";
import { TINY_UNET, tinyUNetNoise } from "../../../test/helpers/tiny-unet.js";
import { lazySource } from "../../graph/weight-source.js";
import { ConfigError } from "../../errors.js";
import { type WeightStore, randomWeights } from "../../nn/weight-store.js";
import { type HostTensor, maxAbsDiff, tensor, toFloat32 } from "../../tensor.js";
import { buildControlNetModel } from "../controlnet/build.js";
import { parseControlNetModelConfig } from "../controlnet/config.js";
import { buildUNet2DConditionModel } from "./build.js";
import { parseUNet2DConditionModelConfig } from "./config.js";

const DIM = 32; // time_embed_dim = 4 * block_out_channels[0]
const base = randomWeights({ seed: 5 });

async function baseValue(key: string, shape: number[]): Promise<Float32Array> {
  return toFloat32(await base.synthesize!(key, shape, "float32").load()).data;
}

/** Random weights with some keys replaced (by a function of their random value). */
function storeWith(
  overrides: Record<string, (v: Float32Array) => Float32Array | Promise<Float32Array>>,
): WeightStore {
  return {
    ...base,
    synthesize: (key, shape, dtype) => {
      const edit = overrides[key];
      if (edit === undefined) return base.synthesize!(key, shape, dtype);
      return lazySource(dtype, shape, async () =>
        tensor("float32", shape, await edit(await baseValue(key, [...shape]))),
      );
    },
  };
}

function noise(
  json: Record<string, unknown>,
  store: WeightStore,
  classLabels?: HostTensor,
): Promise<HostTensor> {
  return tinyUNetNoise(json, store, classLabels ? { class_labels: classLabels } : {});
}

/** The plain UNet with time_embedding.linear_2.bias + shift. */
function shifted(shift: Float32Array): Promise<HostTensor> {
  return noise(
    {},
    storeWith({
      "time_embedding.linear_2.bias": (b) => b.map((v, i) => Math.fround(v + (shift[i] ?? 0))),
    }),
  );
}

const silu = (x: number): number => x / (1 + Math.exp(-x));

/** linear(x) = W x + b with W [out, in] (torch layout). */
function linear(x: Float32Array, weight: Float32Array, bias: Float32Array): Float32Array {
  const out = new Float32Array(bias.length);
  for (let o = 0; o < bias.length; o++) {
    let acc = bias[o] ?? 0;
    for (let i = 0; i < x.length; i++) acc += (weight[o * x.length + i] ?? 0) * (x[i] ?? 0);
    out[o] = acc;
  }
  return out;
}

describe("UNet2DConditionModel class embeddings (diffusers 0.26.3)", () => {
  it("num_class_embeds: a table row added to the time embedding", async () => {
    const table = await baseValue("class_embedding.weight", [3, DIM]);
    const labels = tensor("int64", [2], BigInt64Array.of(2n, 2n));
    const ours = await noise({ num_class_embeds: 3 }, base, labels);
    expectClose(ours, await shifted(table.slice(2 * DIM, 3 * DIM)), { atol: 2e-5 });
    // another row is another prediction
    const other = await noise({ num_class_embeds: 3 }, base, tensor("int64", [2], BigInt64Array.of(0n, 0n)));
    expect(maxAbsDiff(other, ours)).toBeGreaterThan(1e-3);
  });

  it('"identity": the labels themselves', async () => {
    const row = randomTensor([DIM], 7).data;
    const labels = tensor("float32", [2, DIM], new Float32Array([...row, ...row]));
    expectClose(await noise({ class_embed_type: "identity" }, base, labels), await shifted(row), {
      atol: 2e-5,
    });
  });

  it('"projection" / "simple_projection" / "timestep": the layers as diffusers names them', async () => {
    const zeroIn = { "class_embedding.linear_1.weight": (v: Float32Array) => v.map(() => 0) };
    // projection: TimestepEmbedding(5, 32) with silu; zero input weights -> linear_2(silu(b1)), whatever the labels
    const b1 = await baseValue("class_embedding.linear_1.bias", [DIM]);
    const w2 = await baseValue("class_embedding.linear_2.weight", [DIM, DIM]);
    const b2 = await baseValue("class_embedding.linear_2.bias", [DIM]);
    const constant = linear(b1.map(silu), w2, b2);
    const projected = await noise(
      { class_embed_type: "projection", projection_class_embeddings_input_dim: 5 },
      storeWith(zeroIn),
      randomTensor([2, 5], 8),
    );
    expectClose(projected, await shifted(constant), { atol: 5e-5 });
    // timestep: time_proj(labels) then TimestepEmbedding(8, 32) with act_fn: the same constant
    const timestep = await noise(
      { class_embed_type: "timestep" },
      storeWith({ "class_embedding.linear_1.weight": (v) => v.map(() => 0) }),
      tensor("float32", [2], Float32Array.of(3, 500)),
    );
    expectClose(timestep, await shifted(constant), { atol: 5e-5 });
    // simple_projection: a Linear(5, 32); zero weight -> its bias
    const bias = await baseValue("class_embedding.bias", [DIM]);
    const simple = await noise(
      { class_embed_type: "simple_projection", projection_class_embeddings_input_dim: 5 },
      storeWith({ "class_embedding.weight": (v) => v.map(() => 0) }),
      randomTensor([2, 5], 9),
    );
    expectClose(simple, await shifted(bias), { atol: 2e-5 });
  });

  it("refuses an unknown type and a projection without its input width", () => {
    const build = (json: Record<string, unknown>): unknown => {
      const { config } = parseUNet2DConditionModelConfig("c", { ...TINY_UNET, ...json });
      return buildUNet2DConditionModel(bindGraph(base).w, config);
    };
    expect(() => build({ class_embed_type: "learned" })).toThrow(ConfigError);
    expect(() => build({ class_embed_type: "projection" })).toThrow(/projection_class_embeddings_input_dim/);
  });
});

describe("ControlNetModel class embeddings (diffusers 0.26.3)", () => {
  const CN_DIM = 128; // 4 * block_out_channels[0] of the tiny ControlNet

  async function residuals(
    json: Record<string, unknown>,
    store: WeightStore,
    classLabels?: HostTensor,
  ): Promise<HostTensor> {
    const raw = JSON.parse(await readFile(join(tinySdDir("controlnet"), "config.json"), "utf8")) as object;
    const { config } = parseControlNetModelConfig("c", { ...raw, ...json });
    const { g, w } = bindGraph(store);
    buildControlNetModel(w, config);
    const out = await runGraph(g, {
      sample: randomTensor([2, 4, 8, 8], 1),
      timestep: tensor("float32", [2], Float32Array.of(700, 3)),
      encoder_hidden_states: randomTensor([2, 5, 32], 2),
      controlnet_cond: randomTensor([2, 3, 16, 16], 3),
      conditioning_scale: tensor("float32", [], Float32Array.of(1)),
      ...(classLabels ? { class_labels: classLabels } : {}),
    });
    return out["mid_block_res_sample"]!;
  }

  it("num_class_embeds: the row is added to the time embedding, as in the UNet", async () => {
    const table = await baseValue("class_embedding.weight", [2, CN_DIM]);
    const labelled = await residuals(
      { num_class_embeds: 2 },
      base,
      tensor("int64", [2], BigInt64Array.of(1n, 1n)),
    );
    const shiftedBias = await residuals(
      {},
      storeWith({
        "time_embedding.linear_2.bias": (b) => b.map((v, i) => Math.fround(v + (table[CN_DIM + i] ?? 0))),
      }),
    );
    expectClose(labelled, shiftedBias, { atol: 2e-5 });
    expect(maxAbsDiff(labelled, await residuals({}, base))).toBeGreaterThan(1e-4);
  });
});
