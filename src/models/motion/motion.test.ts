import { describe, expect, it } from "vitest";
import { expectError } from "../../../test/helpers/run-graph.js";
import { ConfigError, GraphError, MissingWeightsError, UnsupportedError } from "../../errors.js";
import { GraphBuilder } from "../../graph/builder.js";
import { mapStore, zeroWeights } from "../../nn/weight-store.js";
import { WeightScope } from "../../nn/weights.js";
import { tensor } from "../../tensor.js";
import { type UNet2DConditionModelConfig, parseUNet2DConditionModelConfig } from "../unet/config.js";
import { sinusoidalPositionTable } from "../unet/embeddings.js";
import { animateDiffStore } from "./animatediff-checkpoint.js";
import { buildUNetMotionModel } from "./build.js";
import {
  MOTION_ADAPTER_DEFAULTS,
  type MotionAdapterConfig,
  motionModuleSites,
  parseMotionAdapterConfig,
} from "./config.js";
import { concatShape } from "./shape-parts.js";
import { UNetMotionModel } from "./unet-motion-model.js";
import { checkAdapterFitsUNet, unetMotionConfig } from "./unet-motion-config.js";

const unet = (changes: Record<string, unknown> = {}): UNet2DConditionModelConfig =>
  parseUNet2DConditionModelConfig("unet/config.json", {
    block_out_channels: [32, 64],
    down_block_types: ["CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types: ["UpBlock2D", "CrossAttnUpBlock2D"],
    cross_attention_dim: 32,
    attention_head_dim: 8,
    norm_num_groups: 8,
    ...changes,
  }).config;
const adapter = (changes: Record<string, unknown> = {}): MotionAdapterConfig =>
  parseMotionAdapterConfig("motion_adapter/config.json", {
    block_out_channels: [32, 64],
    motion_num_attention_heads: 4,
    motion_max_seq_length: 8,
    ...changes,
  }).config;

describe("MotionAdapter config", () => {
  it("has diffusers' MotionAdapter defaults (AnimateDiff v2: 8 down, 1 mid, 12 up modules)", () => {
    expect(MOTION_ADAPTER_DEFAULTS).toEqual({
      block_out_channels: [320, 640, 1280, 1280],
      motion_layers_per_block: 2,
      motion_mid_block_layers_per_block: 1,
      motion_num_attention_heads: 8,
      motion_norm_num_groups: 32,
      motion_max_seq_length: 32,
      use_motion_mid_block: true,
      conv_in_channels: null,
    });
    const sites = motionModuleSites(MOTION_ADAPTER_DEFAULTS);
    expect(sites.map((s) => s.part).filter((p) => p === "down_blocks")).toHaveLength(8);
    expect(sites.filter((s) => s.part === "up_blocks")).toHaveLength(12);
    expect(sites.find((s) => s.part === "mid_block")).toMatchObject({
      path: "mid_block.motion_modules.0",
      channels: 1280,
    });
    expect(sites.find((s) => s.path === "up_blocks.3.motion_modules.2")?.channels).toBe(320);
    expect(motionModuleSites({ ...MOTION_ADAPTER_DEFAULTS, use_motion_mid_block: false })).toHaveLength(20);
  });

  it("ConfigError for a mistyped field", async () => {
    await expectError(
      () => parseMotionAdapterConfig("m.json", { motion_max_seq_length: "32" }),
      ConfigError,
      "E_CONFIG",
      'field "motion_max_seq_length" should be an integer',
    );
  });
});

describe("sinusoidal positions (diffusers SinusoidalPositionalEmbedding.pe)", () => {
  it("pe[p, 2i] = sin(p / 10000^(2i/d)), pe[p, 2i+1] = cos(...)", () => {
    const d = 16;
    const pe = sinusoidalPositionTable(d, 32);
    for (const p of [0, 1, 7, 31])
      for (let i = 0; i < d / 2; i++) {
        const arg = p / 10000 ** ((2 * i) / d);
        expect(pe[p * d + 2 * i]).toBeCloseTo(Math.sin(arg), 5);
        expect(pe[p * d + 2 * i + 1]).toBeCloseTo(Math.cos(arg), 5);
      }
  });

  it("GraphError for an odd width or no positions", async () => {
    await expectError(
      () => sinusoidalPositionTable(7, 4),
      GraphError,
      "E_GRAPH",
      "embed_dim must be an even integer",
    );
    await expectError(
      () => sinusoidalPositionTable(8, 0),
      GraphError,
      "E_GRAPH",
      "max_seq_length must be a positive",
    );
  });
});

describe("UNetMotionModel config (from_unet2d)", () => {
  it("uses UNetMotionModel's fixed settings where it has no config field", () => {
    const c = unetMotionConfig(
      unet({ flip_sin_to_cos: false, freq_shift: 1, upcast_attention: true, center_input_sample: true }),
    );
    expect(c).toMatchObject({
      flip_sin_to_cos: true,
      freq_shift: 0,
      upcast_attention: false,
      center_input_sample: false,
      transformer_layers_per_block: 1,
      only_cross_attention: false,
      mid_block_type: "UNetMidBlock2DCrossAttn",
    });
    expect(c.block_out_channels).toEqual([32, 64]);
  });

  it("UnsupportedError for a non-SiLU UNet, per-block layers and PIA adapters", async () => {
    await expectError(
      () => unetMotionConfig(unet({ act_fn: "gelu" })),
      UnsupportedError,
      "E_UNSUPPORTED",
      'act_fn = "gelu"',
    );
    await expectError(
      () => unetMotionConfig(unet({ layers_per_block: [2, 2] })),
      UnsupportedError,
      "E_UNSUPPORTED",
      "per-block layers_per_block",
    );
    await expectError(
      () => checkAdapterFitsUNet("m.json", adapter({ conv_in_channels: 9 }), unet()),
      UnsupportedError,
      "E_UNSUPPORTED",
      "conv_in_channels = 9",
    );
  });

  it("ConfigError when the adapter does not fit the UNet", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ block_out_channels: [320, 640, 1280, 1280] }, 'field "block_out_channels" should be [32, 64]'],
      [{ motion_layers_per_block: 3 }, 'field "motion_layers_per_block" should be 2'],
      [{ motion_mid_block_layers_per_block: 2 }, 'field "motion_mid_block_layers_per_block" should be 1'],
      [{ motion_num_attention_heads: 0 }, 'field "motion_num_attention_heads"'],
      [{ motion_max_seq_length: 0 }, 'field "motion_max_seq_length"'],
    ];
    for (const [changes, fragment] of cases)
      await expectError(
        () => checkAdapterFitsUNet("m.json", adapter(changes), unet()),
        ConfigError,
        "E_CONFIG",
        fragment,
      );
  });
});

describe("UNetMotionModel graph", () => {
  const scopes = (): [WeightScope, WeightScope] => {
    const g = new GraphBuilder();
    return [WeightScope.bind(g, zeroWeights()), WeightScope.bind(g, zeroWeights())];
  };

  it("declares video inputs and per-frame residual inputs, binds one set of motion modules per layer", () => {
    const [u, a] = scopes();
    const built = buildUNetMotionModel(u, a, unet(), adapter(), { residuals: true });
    expect(built.inputs).toEqual([
      "sample",
      "timestep",
      "encoder_hidden_states",
      ...[0, 1, 2, 3, 4, 5].map((i) => `down_block_additional_residuals.${i}`),
      "mid_block_additional_residual",
    ]);
    expect(built.outputs).toEqual(["noise_pred"]);
    const sample = u.graph.inputs[0];
    expect(sample?.shape).toEqual(["batch", 4, "frames", "height", "width"]);
    const modules = new Set(
      u.graph.initializers
        .map((i) => /^(.*\.motion_modules\.\d+)\./.exec(i.name)?.[1])
        .filter((p) => p !== undefined),
    );
    expect([...modules].sort()).toEqual(
      motionModuleSites(adapter())
        .map((s) => s.path)
        .sort(),
    );
  });

  it("builds the modules of an up block without cross-attention with 32 groups, the others with the UNet's", () => {
    // diffusers 0.26.3: UpBlockMotion's temporal_norm_num_groups is left at 32 by get_up_block.
    const [u, a] = scopes();
    const model = new UNetMotionModel(u, a, unet(), adapter());
    const groups = (m: { motion_modules: readonly { options: { normNumGroups: number } }[] }): number[] =>
      m.motion_modules.map((t) => t.options.normNumGroups);
    expect(model.motion.down_blocks.flatMap(groups)).toEqual([8, 8, 8, 8]);
    expect(model.motion.mid_block && groups(model.motion.mid_block)).toEqual([8]);
    // up_block_types ["UpBlock2D", "CrossAttnUpBlock2D"]
    expect(groups(model.motion.up_blocks[0]!)).toEqual([32, 32, 32]);
    expect(groups(model.motion.up_blocks[1]!)).toEqual([8, 8, 8]);
  });

  it("GraphError when the two scopes bind to different graphs", async () => {
    await expectError(
      () =>
        new UNetMotionModel(
          WeightScope.bind(new GraphBuilder(), zeroWeights()),
          WeightScope.bind(new GraphBuilder(), zeroWeights()),
          unet(),
          adapter(),
        ),
      GraphError,
      "E_GRAPH",
      "must bind to the same graph",
    );
  });

  it("MissingWeightsError saying use_motion_mid_block false for v1 modules (no mid block)", async () => {
    const cfg = adapter({ use_motion_mid_block: false });
    const v1 = new GraphBuilder();
    const probe = WeightScope.bind(v1, zeroWeights());
    buildUNetMotionModel(WeightScope.bind(v1, zeroWeights()), probe, unet(), cfg);
    const v1Weights = v1.initializers
      .filter((i) => i.name.includes("motion_modules"))
      // Linear initializers hold W^T: checkpoint shapes are the reverse.
      .map(
        (i) => [i.name, tensor("float32", i.shape.length === 2 ? [...i.shape].reverse() : i.shape)] as const,
      );
    const store = mapStore(new Map(v1Weights), "mm_v1.safetensors");
    const g = new GraphBuilder();
    await expectError(
      () =>
        buildUNetMotionModel(
          WeightScope.bind(g, zeroWeights()),
          WeightScope.bind(g, store),
          unet(),
          adapter(),
          {
            motionAdapterName: store.name,
          },
        ),
      MissingWeightsError,
      "E_WEIGHTS_MISMATCH",
      "set use_motion_mid_block to false",
    );
  });
});

describe("AnimateDiff checkpoint store", () => {
  it("renames keys, drops pos_encoder and adds every module's pos_embed.pe table", async () => {
    const cfg = adapter();
    const t = tensor("float32", [2]);
    const store = animateDiffStore(
      mapStore({
        "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.norms.0.weight": t,
        "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.pos_encoder.pe":
          t,
      }),
      cfg,
    );
    const keys = [...store.keys()];
    expect(keys).toContain("down_blocks.0.motion_modules.0.transformer_blocks.0.norm1.weight");
    expect(keys.filter((k) => k.endsWith("pos_embed.pe"))).toHaveLength(motionModuleSites(cfg).length);
    expect(keys.some((k) => k.includes("pos_encoder"))).toBe(false);
    const pe = await store.source("up_blocks.0.motion_modules.2.transformer_blocks.0.pos_embed.pe").load();
    expect(pe.shape).toEqual([1, 8, 64]);
    expect(Array.from(pe.data as Float32Array)).toEqual(Array.from(sinusoidalPositionTable(64, 8)));
  });
});

describe("concatShape", () => {
  it("folds constant parts and concatenates runtime ones", () => {
    const g = new GraphBuilder();
    expect(concatShape(g, [[-1], g.int64s([3]), [0, 0]]).constant?.data).toEqual(
      BigInt64Array.from([-1n, 3n, 0n, 0n]),
    );
    const f = g.input("f", "int64", [1]);
    const v = concatShape(g, [[-1], f, [8]]);
    expect(v.constant).toBeUndefined();
    expect(v.shape).toEqual([3]);
  });
});
