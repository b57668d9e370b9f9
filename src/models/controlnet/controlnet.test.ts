import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { randomTensor } from "../../../test/helpers/graph-reference.js";
import { expectError, runGraph } from "../../../test/helpers/run-graph.js";
import { bindGraph, tinySdDir, tinySdStore } from "../../../test/helpers/tiny-sd.js";
import { MissingWeightsError, UnsupportedError } from "../../errors.js";
import { randomWeights } from "../../nn/weight-store.js";
import { tensor } from "../../tensor.js";
import { buildControlNetModel } from "./build.js";
import { ControlNetConditioningEmbedding } from "./conditioning-embedding.js";
import {
  type ControlNetModelConfig,
  parseControlNetModelConfig,
  readControlNetModelConfig,
} from "./config.js";

const tinyConfig = async (): Promise<ControlNetModelConfig> =>
  (await readControlNetModelConfig(join(tinySdDir("controlnet"), "config.json"))).config;

describe("ControlNetModel graph", () => {
  it("requests exactly the tiny checkpoint's keys; names its inputs and residual outputs", async () => {
    const store = await tinySdStore("controlnet");
    const { g, w } = bindGraph(store);
    const built = buildControlNetModel(w, await tinyConfig());
    expect(g.initializers.map((i) => i.name).sort()).toEqual([...store.keys()].sort());
    expect(built.inputs).toEqual([
      "sample",
      "timestep",
      "encoder_hidden_states",
      "controlnet_cond",
      "conditioning_scale",
    ]);
    expect(built.outputs).toEqual([
      ...Array.from({ length: 6 }, (_, i) => `down_block_res_samples.${i}`),
      "mid_block_res_sample",
    ]);
    expect(g.inputs.find((v) => v.name === "conditioning_scale")?.shape).toEqual([]);
    expect(built.model.numDownResiduals).toBe(6);
  });

  it("lists mis-shaped conditioning embedding keys when conditioning_embedding_out_channels is wrong", async () => {
    const { w } = bindGraph(await tinySdStore("controlnet"));
    const config = { ...(await tinyConfig()), conditioning_embedding_out_channels: [8, 24] };
    const error = await expectError(
      () => buildControlNetModel(w, config),
      MissingWeightsError,
      "E_WEIGHTS_MISMATCH",
      "with the wrong shape",
    );
    expect(error.message).toContain(
      "controlnet_cond_embedding.blocks.1.weight is [16,8,3,3], expected [24,8,3,3]",
    );
  });

  it("refuses unsupported fields by name", async () => {
    const base = await tinyConfig();
    const cases: [Partial<ControlNetModelConfig>, string][] = [
      [{ mid_block_type: "UNetMidBlock2D" }, "mid_block_type"],
      [{ addition_embed_type: "text_time" }, "addition_embed_type"],
      [{ resnet_time_scale_shift: "scale_shift" }, "resnet_time_scale_shift"],
    ];
    for (const [change, field] of cases) {
      const { w } = bindGraph(randomWeights());
      await expectError(
        () => buildControlNetModel(w, { ...base, ...change }),
        UnsupportedError,
        "E_UNSUPPORTED",
        `ControlNetModel config field ${field} =`,
      );
    }
  });

  it("an SD2-style ControlNet (linear projection, per-block heads, 3 levels) runs on random weights", async () => {
    const { config } = parseControlNetModelConfig("sd2 controlnet", {
      block_out_channels: [32, 64, 64],
      down_block_types: ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
      attention_head_dim: [2, 4, 4],
      use_linear_projection: true,
      upcast_attention: true,
      cross_attention_dim: 48,
      layers_per_block: 1,
      norm_num_groups: 8,
      conditioning_embedding_out_channels: [8, 16, 16],
    });
    const { g, w } = bindGraph(randomWeights());
    const built = buildControlNetModel(w, config, { guessMode: true });
    const out = await runGraph(g, {
      sample: randomTensor([1, 4, 10, 6], 1),
      timestep: tensor("float32", [1], Float32Array.of(10)),
      encoder_hidden_states: randomTensor([1, 5, 48], 2),
      controlnet_cond: randomTensor([1, 3, 40, 24], 3),
      conditioning_scale: tensor("float32", [], Float32Array.of(0.7)),
    });
    expect(built.outputs.length).toBe(1 + 2 + 2 + 1 + 1);
    expect(out["down_block_res_samples.0"]?.shape).toEqual([1, 32, 10, 6]);
    expect(out["down_block_res_samples.2"]?.shape).toEqual([1, 32, 5, 3]);
    expect(out["down_block_res_samples.4"]?.shape).toEqual([1, 64, 3, 2]);
    expect(out["mid_block_res_sample"]?.shape).toEqual([1, 64, 3, 2]);
  });
});

describe("ControlNetConditioningEmbedding", () => {
  it("downsamples by 2 ** (len(block_out_channels) - 1) to the embedding width", async () => {
    const { g, w } = bindGraph(randomWeights());
    const embed = new ControlNetConditioningEmbedding(w.at("e"), {
      conditioningEmbeddingChannels: 12,
      blockOutChannels: [4, 8, 16],
    });
    expect(embed.blocks.length).toBe(4);
    g.output(embed.forward(g.input("cond", "float32", ["batch", 3, "h", "w"])), "y");
    expect(w.finish().bound).toBe(2 + 4 * 2 + 2);
    const out = await runGraph(g, { cond: randomTensor([2, 3, 32, 24], 1) });
    expect(out["y"]?.shape).toEqual([2, 12, 8, 6]);
  });
});
