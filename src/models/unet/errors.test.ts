import { describe, it } from "vitest";
import { expectError } from "../../../test/helpers/run-graph.js";
import { ConfigError, GraphError, UnsupportedError } from "../../errors.js";
import { GraphBuilder } from "../../graph/builder.js";
import { randomWeights } from "../../nn/weight-store.js";
import { WeightScope } from "../../nn/weights.js";
import { diffusersActivation } from "./activation.js";
import { parseTransformerLayers } from "./block-config.js";
import { buildUNet2DConditionModel } from "./build.js";
import { type UNet2DConditionModelConfig, parseUNet2DConditionModelConfig } from "./config.js";
import { Timesteps } from "./embeddings.js";
import { UNet2DConditionModel } from "./unet-2d-condition.js";

const TINY = {
  block_out_channels: [32, 64],
  down_block_types: ["CrossAttnDownBlock2D", "DownBlock2D"],
  up_block_types: ["UpBlock2D", "CrossAttnUpBlock2D"],
  cross_attention_dim: 32,
  norm_num_groups: 8,
};
const config = (changes: Record<string, unknown> = {}): UNet2DConditionModelConfig =>
  parseUNet2DConditionModelConfig("unet/config.json", { ...TINY, ...changes }).config;
const scope = (): WeightScope => WeightScope.bind(new GraphBuilder(), randomWeights());

describe("UNet config and graph errors", () => {
  it("ConfigError for lists that do not match the blocks", async () => {
    await expectError(
      () => buildUNet2DConditionModel(scope(), config({ up_block_types: ["UpBlock2D"] })),
      ConfigError,
      "E_CONFIG",
      'field "up_block_types" should be a list of 2 (as many as down_block_types)',
    );
    await expectError(
      () => buildUNet2DConditionModel(scope(), config({ block_out_channels: [32, 64, 64] })),
      ConfigError,
      "E_CONFIG",
      'field "block_out_channels" should be a list of 2',
    );
    await expectError(
      () => parseTransformerLayers("f.json", "transformer_layers_per_block", [1, 0], 2),
      ConfigError,
      "E_CONFIG",
      "a positive integer or a list of 2",
    );
    await expectError(
      () =>
        buildUNet2DConditionModel(
          scope(),
          config({
            transformer_layers_per_block: [[1, 1, 1], 1],
            reverse_transformer_layers_per_block: [
              [1, 1, 1],
              [1, 1, 1],
            ],
          }),
        ),
      ConfigError,
      "E_CONFIG",
      'field "transformer_layers_per_block[0]" should be a list of 2 per-layer depths',
    );
    await expectError(
      () => buildUNet2DConditionModel(scope(), config({ reverse_transformer_layers_per_block: [1, 1] })),
      ConfigError,
      "E_CONFIG",
      'field "reverse_transformer_layers_per_block" should be null or a list of 2 per-layer lists',
    );
  });

  it("UnsupportedError for an unknown activation and a missing group count", async () => {
    await expectError(
      () => buildUNet2DConditionModel(scope(), config({ time_embedding_act_fn: "tanh" })),
      UnsupportedError,
      "E_UNSUPPORTED",
      'activation "tanh"',
    );
    await expectError(
      () => diffusersActivation(new GraphBuilder(), new GraphBuilder().input("x", "float32", [1]), "elu"),
      UnsupportedError,
      "E_UNSUPPORTED",
      "get_activation knows",
    );
    await expectError(
      () => buildUNet2DConditionModel(scope(), config({ norm_num_groups: null })),
      UnsupportedError,
      "E_UNSUPPORTED",
      "norm_num_groups = null",
    );
  });

  it("GraphError for bad timesteps and a residual count that does not match the skips", async () => {
    const g = new GraphBuilder();
    await expectError(
      () => new Timesteps({ numChannels: 1, flipSinToCos: true, downscaleFreqShift: 0 }),
      GraphError,
      "E_GRAPH",
      "num_channels must be an integer >= 2",
    );
    await expectError(
      () =>
        new Timesteps({ numChannels: 8, flipSinToCos: true, downscaleFreqShift: 0 }).forward(
          g,
          g.input("t", "float32", [2, 1]),
        ),
      GraphError,
      "E_GRAPH",
      "timesteps must be 1-D [batch]",
    );
    const w = scope();
    const model = new UNet2DConditionModel(w, config());
    const x = w.graph.input("x", "float32", [1, 4, 8, 8]);
    const inputs = {
      sample: x,
      timestep: w.graph.input("t", "float32", [1]),
      encoderHiddenStates: w.graph.input("c", "float32", [1, 3, 32]),
    };
    await expectError(
      () => model.forward({ ...inputs, downBlockAdditionalResiduals: [x] }),
      GraphError,
      "E_GRAPH",
      "got 1 down block residuals but the UNet has 6 skip connections",
    );
  });
});
