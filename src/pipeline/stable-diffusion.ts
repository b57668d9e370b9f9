/**
 * StableDiffusionPipeline: loads the components of a diffusers pipeline folder (or an original
 * single-file checkpoint plus a folder that supplies configs and tokenizer files) as ONNX Runtime
 * runners, and runs text-to-image with optional ControlNets (./text-to-image.ts).
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { InvalidArgumentError } from "../errors.js";
import { readJsonFile } from "../config/parse.js";
import { CLIPTextModel } from "../models/clip/index.js";
import type { ModelLoadOptions } from "../models/compiled-graph.js";
import { ControlNetModel, fitsUNet } from "../models/controlnet/index.js";
import { parseControlNetModelConfig } from "../models/controlnet/config.js";
import { parseUNet2DConditionModelConfig, type UNet2DConditionModelConfig } from "../models/unet/config.js";
import { UNet2DConditionModel } from "../models/unet/index.js";
import { parseAutoencoderKLConfig } from "../models/vae/config.js";
import { AutoencoderKL } from "../models/vae/index.js";
import type { WeightStore } from "../nn/weight-store.js";
import { fromConfig } from "../schedulers/registry.js";
import { CLIPTokenizer } from "../tokenizer/clip-tokenizer.js";
import { LDM_KEY_MAP_VERSION } from "../weights/key-maps/ldm.js";
import { ldmLayoutFor } from "../weights/key-maps/ldm-layout.js";
import { openCheckpointStore, splitSingleFile } from "../weights/single-file.js";
import { readPipelineFolder } from "./components.js";
import { scale } from "./guidance.js";
import type { LatentEncoder } from "./img2img.js";
import {
  textToImage,
  type ControlUnit,
  type TextToImageOptions,
  type TextToImageResult,
} from "./text-to-image.js";
import type { ControlNet, DenoisingUNet, LatentDecoder, PromptTokenizer, TextEncoder } from "./types.js";

export interface LoadPipelineOptions extends ModelLoadOptions {
  /**
   * (required for single-file checkpoints) a diffusers pipeline folder whose configs, tokenizer and
   * scheduler config describe the checkpoint (a single file carries no architecture).
   */
  readonly configDir?: string;
  /** ControlNets: diffusers folders or original `.pth`/`.safetensors` files (their config comes from the UNet's). */
  readonly controlnets?: readonly string[];
  /** (optional) use the pipeline folder's own `controlnet/` component when no `controlnets` are given. */
  readonly useFolderControlNet?: boolean;
}

export interface GenerateOptions extends Omit<TextToImageOptions, "controls"> {
  /** (optional, default the folder's scheduler class) scheduler name: ddim, euler, dpmpp_2m, ... */
  readonly scheduler?: string;
  /** (optional, default the folder's scheduler_config.json) the scheduler config to use. */
  readonly schedulerConfig?: Readonly<Record<string, unknown>>;
  /** One control image ([1,3,H,W] in [0,1]) per loaded ControlNet, with its scale and schedule. */
  readonly controls?: readonly Omit<ControlUnit, "controlnet">[];
}

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() === true;
}

export class StableDiffusionPipeline {
  private constructor(
    private readonly tokenizer: CLIPTokenizer,
    private readonly textEncoder: CLIPTextModel,
    private readonly unet: Awaited<ReturnType<typeof UNet2DConditionModel.load>>,
    private readonly vae: AutoencoderKL,
    private readonly controlnets: readonly Awaited<ReturnType<typeof ControlNetModel.load>>[],
    readonly unetConfig: UNet2DConditionModelConfig,
    readonly vaeScaleFactor: number,
    private readonly schedulerConfig: Readonly<Record<string, unknown>>,
  ) {}

  /** Loads a diffusers folder (model_index.json) or a single-file checkpoint (with `configDir`). */
  static async load(model: string, options: LoadPipelineOptions = {}): Promise<StableDiffusionPipeline> {
    const singleFile = await isFile(model);
    if (singleFile && options.configDir === undefined) {
      throw new InvalidArgumentError(
        "configDir",
        "a diffusers folder with the configs of this checkpoint",
        undefined,
        {
          hint: `${model} is a single-file checkpoint, which holds no architecture; pass --config <diffusers folder>`,
        },
      );
    }
    const folder = await readPipelineFolder(singleFile ? (options.configDir ?? "") : model);
    const dirOf = (name: "unet" | "vae" | "text_encoder" | "tokenizer" | "scheduler"): string => {
      const c = folder.components.get(name);
      if (c === undefined) {
        throw new InvalidArgumentError(
          model,
          `a pipeline with a ${name} component`,
          "none in model_index.json",
        );
      }
      return c.dir;
    };
    const unetJson = await readJsonFile(join(dirOf("unet"), "config.json"));
    const configs = {
      unet: parseUNet2DConditionModelConfig(join(dirOf("unet"), "config.json"), unetJson).config,
      vae: parseAutoencoderKLConfig(
        join(dirOf("vae"), "config.json"),
        await readJsonFile(join(dirOf("vae"), "config.json")),
      ).config,
    };
    const schedulerJson = await readJsonFile(join(dirOf("scheduler"), "scheduler_config.json"));
    const schedulerConfig = (
      typeof schedulerJson === "object" && schedulerJson !== null ? schedulerJson : {}
    ) as Record<string, unknown>;

    // Component sources: the folder's own, or the single file's stores with the folder's configs.
    let stores: ReadonlyMap<string, WeightStore> | undefined;
    let weightsId: string | undefined;
    if (singleFile) {
      const info = await stat(model);
      // The key map picks the tensors: its version is part of the cached model's identity.
      weightsId = `${model}:${info.size}:${info.mtimeMs}:${LDM_KEY_MAP_VERSION}`;
      const split = splitSingleFile(await openCheckpointStore(model), {
        ...ldmLayoutFor("unet", join(dirOf("unet"), "config.json"), unetJson),
        vaeLevels: configs.vae.block_out_channels.length,
      });
      stores = split.components;
    }
    const source = async (name: "unet" | "vae" | "text_encoder", ldm: "unet" | "vae" | "text_encoder") => {
      const dir = dirOf(name);
      const store = stores?.get(ldm);
      if (stores === undefined) return dir;
      if (store === undefined)
        throw new InvalidArgumentError(model, `a checkpoint with ${name} weights`, "none found");
      return {
        config: await readJsonFile(join(dir, "config.json")),
        store,
        configName: join(dir, "config.json"),
        weightsId: `${weightsId}#${name}`,
      };
    };

    const unetSource = async () => {
      const s = await source("unet", "unet");
      return typeof s === "string" ? s : { config: configs.unet, store: s.store, weightsId: s.weightsId };
    };

    const controlnetSources = options.controlnets ?? [];
    const folderControlNet = folder.components.get("controlnet");
    const useFolderNet =
      controlnetSources.length === 0 && options.useFolderControlNet === true && folderControlNet;
    const netPaths = useFolderNet ? [folderControlNet.dir] : controlnetSources;
    const load: ModelLoadOptions = options;
    const [tokenizer, textEncoder, unet, vae] = await Promise.all([
      CLIPTokenizer.fromPretrained(dirOf("tokenizer")),
      CLIPTextModel.load(await source("text_encoder", "text_encoder"), load),
      UNet2DConditionModel.load(await unetSource(), { ...load, residuals: netPaths.length > 0 }),
      AutoencoderKL.load(await source("vae", "vae"), load),
    ]);
    const controlnets = [];
    for (const path of netPaths) {
      controlnets.push(await loadControlNet(path, configs.unet, load));
    }
    const vaeScaleFactor = 2 ** (configs.vae.block_out_channels.length - 1);
    return new StableDiffusionPipeline(
      tokenizer,
      textEncoder,
      unet,
      vae,
      controlnets,
      configs.unet,
      vaeScaleFactor,
      schedulerConfig,
    );
  }

  get controlnetCount(): number {
    return this.controlnets.length;
  }

  /** Runs text-to-image; `scheduler` picks the sampler (its config comes from the pipeline folder). */
  async generate(options: GenerateOptions): Promise<TextToImageResult> {
    const {
      scheduler: schedulerName,
      schedulerConfig = this.schedulerConfig,
      controls = [],
      ...rest
    } = options;
    if (controls.length !== this.controlnets.length) {
      throw new InvalidArgumentError(
        "controls",
        `${this.controlnets.length} control image(s), one per ControlNet`,
        controls.length,
      );
    }
    const className =
      typeof schedulerConfig["_class_name"] === "string" ? schedulerConfig["_class_name"] : "PNDMScheduler";
    const tokenizer: PromptTokenizer = { tokenize: (prompts) => this.tokenizer.encodeBatch(prompts) };
    const textEncoder: TextEncoder = {
      encode: async (ids, o) =>
        (await this.textEncoder.encode(ids, o?.clipSkip === undefined ? {} : { clipSkip: o.clipSkip }))
          .promptEmbeds,
    };
    const vae: LatentDecoder = {
      scalingFactor: this.vae.scalingFactor,
      decode: (z) => this.vae.decode(z, { batchSize: 1 }),
    };
    const unet: DenoisingUNet = this.unet;
    const encoder = vaeLatentEncoder(this.vae);
    return textToImage(
      {
        tokenizer,
        textEncoder,
        unet,
        vae,
        scheduler: fromConfig(schedulerName ?? className, schedulerConfig),
        vaeScaleFactor: this.vaeScaleFactor,
        latentChannels: this.unetConfig.in_channels,
        encoder,
      },
      {
        ...rest,
        controls: controls.map((c, i) => ({ ...c, controlnet: this.controlnets[i] as ControlNet })),
      },
    );
  }

  async release(): Promise<void> {
    await Promise.all([
      this.textEncoder.release(),
      this.unet.release(),
      this.vae.release(),
      ...this.controlnets.map((c) => c.release()),
    ]);
  }
}

/** The VAE as img2img's encoder: posterior sample drawn from the run's generator, times scaling_factor. */
export function vaeLatentEncoder(vae: AutoencoderKL): LatentEncoder {
  return {
    encode: async (image, generator) => {
      const dist = await vae.encode(image, { batchSize: 1 });
      return scale(vae.sample(dist, { noise: generator.randn(dist.mean.shape) }), vae.scalingFactor);
    },
  };
}

/** A ControlNet folder, or an original single file whose config follows the UNet's (as diffusers does). */
async function loadControlNet(
  path: string,
  unetConfig: UNet2DConditionModelConfig,
  options: ModelLoadOptions,
) {
  if (!(await isFile(path))) {
    const net = await ControlNetModel.load(path, options);
    fitsUNet(
      parseControlNetModelConfig(join(path, "config.json"), await readJsonFile(join(path, "config.json")))
        .config,
      unetConfig,
    );
    return net;
  }
  const layout = ldmLayoutFor("controlnet", `${path} (config derived from the UNet)`, {
    layers_per_block: unetConfig.layers_per_block,
  });
  const store = splitSingleFile(await openCheckpointStore(path), layout).components.get("controlnet");
  if (store === undefined) {
    throw new InvalidArgumentError("controlnet", "a ControlNet checkpoint (keys control_model.*)", path);
  }
  const config = parseControlNetModelConfig(
    `${path} (config derived from the UNet)`,
    controlNetConfigFromUNet(unetConfig, store),
  ).config;
  const info = await stat(path);
  return ControlNetModel.load(
    { config, store, weightsId: `${path}:${info.size}:${info.mtimeMs}:${LDM_KEY_MAP_VERSION}` },
    options,
  );
}

/**
 * The config of an original ControlNet file: the UNet's encoder fields, and the conditioning-embedding
 * widths read off the hint convs (conv_in -> c0; blocks pair up as c_i -> c_i, c_i -> c_{i+1}).
 */
export function controlNetConfigFromUNet(
  unet: UNet2DConditionModelConfig,
  store: WeightStore,
): Record<string, unknown> {
  const outChannels = (key: string): number | undefined => store.info(key)?.shape[0];
  const widths: number[] = [];
  const first = outChannels("controlnet_cond_embedding.conv_in.weight");
  if (first !== undefined) widths.push(first);
  for (let i = 1; outChannels(`controlnet_cond_embedding.blocks.${i}.weight`) !== undefined; i += 2) {
    widths.push(outChannels(`controlnet_cond_embedding.blocks.${i}.weight`) ?? 0);
  }
  const keys = [
    "in_channels",
    "flip_sin_to_cos",
    "freq_shift",
    "down_block_types",
    "only_cross_attention",
    "block_out_channels",
    "layers_per_block",
    "downsample_padding",
    "mid_block_scale_factor",
    "act_fn",
    "norm_num_groups",
    "norm_eps",
    "cross_attention_dim",
    "transformer_layers_per_block",
    "attention_head_dim",
    "num_attention_heads",
    "use_linear_projection",
    "upcast_attention",
    "resnet_time_scale_shift",
  ] as const;
  const config: Record<string, unknown> = Object.fromEntries(keys.map((k) => [k, unet[k]]));
  config["conditioning_embedding_out_channels"] = widths;
  config["conditioning_channels"] = store.info("controlnet_cond_embedding.conv_in.weight")?.shape[1] ?? 3;
  return config;
}
