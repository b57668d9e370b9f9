/**
 * A ControlNet initialised from a UNet, as diffusers' `ControlNetModel.from_unet` (0.26.3): the
 * config takes the UNet's encoder fields; conv_in, time_embedding, down_blocks and mid_block copy
 * the UNet's weights; the zero convolutions (controlnet_down_blocks, controlnet_mid_block and
 * controlnet_cond_embedding.conv_out) start at zero, so the new ControlNet leaves the UNet's output
 * unchanged; the other conditioning-embedding convolutions get PyTorch's default Conv2d init
 * (kaiming_uniform with a = sqrt(5): weight and bias uniform in ±1/sqrt(fan_in)), drawn from a
 * seeded torch-compatible generator (the values differ from a torch run; the distribution is the
 * same). The conditioning embedding downsamples by the VAE factor: diffusers' default widths
 * (16, 32, 96, 256) cut to log2(factor) + 1 entries.
 */
import { InvalidArgumentError } from "../../errors.js";
import { GraphBuilder } from "../../graph/builder.js";
import { lazySource } from "../../graph/weight-source.js";
import {
  CONTROLNET_FIELDS_FROM_UNET,
  type ControlNetModelConfig,
  parseControlNetModelConfig,
} from "../../models/controlnet/config.js";
import { buildControlNetModel } from "../../models/controlnet/build.js";
import type { UNet2DConditionModelConfig } from "../../models/unet/config.js";
import type { TensorFileLike, WeightInfo, WeightStore } from "../../nn/weight-store.js";
import { WeightScope } from "../../nn/weights.js";
import { type HostTensor, type Shape, numel, tensor, toFloat32 } from "../../tensor.js";
import { generatorFor } from "./rng.js";

/** Generator stream of the initial conditioning-embedding weights (see rng.ts). */
const INIT_STREAM = 4n;

const UNET_FIELDS = [
  ...CONTROLNET_FIELDS_FROM_UNET,
  "class_embed_type",
  "num_class_embeds",
  "projection_class_embeddings_input_dim",
  "encoder_hid_dim",
  "encoder_hid_dim_type",
  "addition_embed_type",
  "addition_time_embed_dim",
] as const;

export interface InitialControlNet {
  readonly config: ControlNetModelConfig;
  /** config.json as diffusers writes it. */
  readonly configJson: Readonly<Record<string, unknown>>;
  /** The initial weights in diffusers keys and layout. */
  readonly weights: TensorFileLike;
}

/** The ControlNet `ControlNetModel.from_unet(unet)` makes (see the file comment). */
export function controlNetFromUNet(
  unetConfig: UNet2DConditionModelConfig,
  unetWeights: TensorFileLike,
  vaeFactor: number,
  seed: bigint,
): InitialControlNet {
  const steps = Math.log2(vaeFactor);
  if (!Number.isInteger(steps) || steps < 0 || steps > 3)
    throw new InvalidArgumentError("VAE factor", "1, 2, 4 or 8", vaeFactor);
  const unet = unetConfig as unknown as Record<string, unknown>;
  const configJson: Record<string, unknown> = {
    _class_name: "ControlNetModel",
    _diffusers_version: "0.26.3",
    ...Object.fromEntries(UNET_FIELDS.filter((k) => k in unet).map((k) => [k, unet[k]])),
    mid_block_type: "UNetMidBlock2DCrossAttn",
    conditioning_channels: 3,
    conditioning_embedding_out_channels: [16, 32, 96, 256].slice(0, steps + 1),
    controlnet_conditioning_channel_order: "rgb",
    global_pool_conditions: false,
  };
  const file = "controlnet/config.json (from the UNet)";
  const { config } = parseControlNetModelConfig(file, configJson);

  // The keys and shapes the model binds: build it once over a store that records every request.
  const wanted = new Map<string, Shape>();
  const recorder: WeightStore = {
    name: "ControlNetModel.from_unet",
    keys: () => [],
    info: () => undefined,
    source: (key) => {
      throw new InvalidArgumentError("key", "a synthesized key", key);
    },
    synthesize: (key, shape, dtype) => {
      wanted.set(key, shape);
      return lazySource(dtype, shape, () => Promise.resolve(tensor("float32", shape)));
    },
  };
  buildControlNetModel(WeightScope.bind(new GraphBuilder({ name: "controlnet_keys" }), recorder), config, {
    configFile: file,
  });

  const plan = new Map<string, { info: WeightInfo; read: () => Promise<HostTensor> }>();
  for (const [key, shape] of wanted) {
    const fromUnet = unetWeights.info(key);
    if (fromUnet && numel(fromUnet.shape) === numel(shape)) {
      plan.set(key, {
        info: { dtype: "float32", shape: fromUnet.shape },
        read: async () => toFloat32(await unetWeights.read(key)),
      });
      continue;
    }
    const zero =
      key.startsWith("controlnet_down_blocks.") ||
      key.startsWith("controlnet_mid_block.") ||
      key.startsWith("controlnet_cond_embedding.conv_out.");
    const info: WeightInfo = { dtype: "float32", shape };
    if (zero || !key.startsWith("controlnet_cond_embedding.")) {
      plan.set(key, { info, read: () => Promise.resolve(tensor("float32", shape)) });
      continue;
    }
    const weightKey = key.replace(/\.bias$/, ".weight");
    const fanIn = numel((wanted.get(weightKey) ?? shape).slice(1));
    const bound = 1 / Math.sqrt(Math.max(1, fanIn));
    const index = [...wanted.keys()].indexOf(key);
    plan.set(key, {
      info,
      read: () => {
        const u = generatorFor(seed, INIT_STREAM, index).rand(shape).data;
        return Promise.resolve(
          tensor(
            "float32",
            shape,
            u.map((x) => Math.fround((2 * x - 1) * bound)),
          ),
        );
      },
    });
  }
  const weights: TensorFileLike = {
    path: "ControlNetModel.from_unet",
    keys: () => plan.keys(),
    info: (key) => plan.get(key)?.info,
    read: async (key) => {
      const p = plan.get(key);
      if (!p) throw new InvalidArgumentError("key", "a ControlNet key", key);
      return p.read();
    },
  };
  return { config, configJson, weights };
}
