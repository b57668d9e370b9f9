/**
 * StableDiffusionPipeline: loads the components of a diffusers pipeline folder (or an original
 * single-file checkpoint plus a folder that supplies configs and tokenizer files) as ONNX Runtime
 * runners, and runs text-to-image with optional ControlNets (./text-to-image.ts).
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { InvalidArgumentError, UnsupportedError } from "../errors.js";
import type { Image } from "../image.js";
import { guidanceMode } from "./denoise.js";
import { readJsonFile } from "../config/parse.js";
import { CLIPTextModel } from "../models/clip/index.js";
import { readCLIPTextConfig } from "../models/clip/config.js";
import type { ModelLoadOptions } from "../models/compiled-graph.js";
import { type ControlNetLoadOptions, ControlNetModel, fitsUNet } from "../models/controlnet/index.js";
import { CONTROLNET_FIELDS_FROM_UNET, parseControlNetModelConfig } from "../models/controlnet/config.js";
import { parseUNet2DConditionModelConfig, type UNet2DConditionModelConfig } from "../models/unet/config.js";
import { UNet2DConditionModel } from "../models/unet/index.js";
import { parseAutoencoderKLConfig } from "../models/vae/config.js";
import { AutoencoderKL } from "../models/vae/index.js";
import { AutoencoderTiny } from "../models/vae-tiny/runner.js";
import type { WeightStore } from "../nn/weight-store.js";
import { fromConfig } from "../schedulers/registry.js";
import { CLIPTokenizer } from "../tokenizer/clip-tokenizer.js";
import { LDM_KEY_MAP_VERSION, type LdmLayout } from "../weights/key-maps/ldm.js";
import { ldmLayoutFor } from "../models/ldm-layout.js";
import { openCheckpointStore, splitSingleFile } from "../weights/single-file.js";
import type { CrossFrameSetting } from "../models/unet/build.js";
import { readPipelineFolder } from "./components.js";
import { type LoraSetting, withLoras } from "./lora.js";
import type { LiveLoraScales } from "../weights/lora/index.js";
import { type EmbeddingSetting, withTextualInversions } from "./textual-inversion.js";
import { type AdapterControl, adaptedUNet, videoAdapter } from "./t2i-adapter.js";
import { type T2IAdapterRunner, loadT2IAdapter } from "../models/t2i-adapter/runner.js";
import { type IpAdapterSetting, IpAdapterConditioner, ipAdaptedUNet, videoIpAdapter } from "./ip-adapter.js";
import { droppedPromptText } from "./prompt-truncation.js";
import { encodePromptsWeighted, encodePromptWeighted, type PromptSyntax } from "./prompt-weighting.js";
import type { HostTensor } from "../tensor.js";
import { scale } from "./guidance.js";
import type { LatentEncoder } from "./img2img.js";
import {
  textToImage,
  type ControlUnit,
  type TextToImageOptions,
  type TextToImageResult,
} from "./text-to-image.js";
import type {
  ControlNet,
  DenoisingUNet,
  LatentDecoder,
  PromptTokenizer,
  TextEncoder,
  VideoComponents,
} from "./types.js";

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
  /**
   * (optional, default false) build the ControlNets for diffusers' guess mode (residual i scaled by
   * torch.logspace(-1, 0, n + 1)[i], the mid block's by the last); `generate` then runs guess mode
   * unless told `guessMode: false`. A `generate` call that asks for the other mode builds that variant
   * of the nets on first use.
   */
  readonly guessMode?: boolean;
  /**
   * (optional) cross-frame self-attention built into the UNet and the ControlNets (the video engine's
   * attention methods: see src/engine/methods/attention-*.ts).
   */
  readonly crossFrame?: CrossFrameSetting;
  /**
   * (optional) a Tiny AutoEncoder (TAESD: a diffusers AutoencoderTiny folder, or the original
   * taesd_decoder / taesd_encoder files) that decodes (and, for img2img starts, encodes) instead of the
   * model's VAE: much faster, slightly less detailed (src/models/vae-tiny).
   */
  readonly tinyVae?: string;
  /**
   * (optional) LoRA files (kohya/A1111, diffusers, PEFT) fused into the UNet and text-encoder weights
   * at load, each with its scale; several add up. Every key that does not fit is reported in one
   * LoraMismatchError before anything is built (./lora.ts, src/weights/lora).
   */
  readonly loras?: readonly LoraSetting[];
  /**
   * (optional, default false) keep the LoRAs unfused, each file's scale a live model input:
   * `pipeline.loraScales.set(i, s)` changes it between runs without a new model (slower per step than
   * fused weights; the compiled models are the same for every scale).
   */
  readonly liveLoras?: boolean;
  /**
   * (optional) textual-inversion embeddings (A1111 .pt/.safetensors, diffusers learned_embeds): their
   * tokens join the tokenizer, their vectors the text encoder's embedding table (./textual-inversion.ts).
   */
  readonly embeddings?: readonly EmbeddingSetting[];
  /** (optional) a diffusers T2IAdapter folder; `generate` then takes `t2iAdapterControl` (./t2i-adapter.ts). */
  readonly t2iAdapter?: string;
  /** (optional) an IP-Adapter file and its image encoder; `generate` then takes `ipAdapterImage` (./ip-adapter.ts). */
  readonly ipAdapter?: IpAdapterSetting;
}

export interface GenerateOptions extends Omit<TextToImageOptions, "controls"> {
  /** (optional, default the folder's scheduler class) scheduler name: ddim, euler, dpmpp_2m, ... */
  readonly scheduler?: string;
  /** (optional, default the folder's scheduler_config.json) the scheduler config to use. */
  readonly schedulerConfig?: Readonly<Record<string, unknown>>;
  /** One control image ([1,3,H,W] in [0,1]) per loaded ControlNet, with its scale and schedule. */
  readonly controls?: readonly Omit<ControlUnit, "controlnet">[];
  /**
   * (optional, default the load option) ControlNet guess mode. As in diffusers it is switched on
   * whatever this says when the (first) ControlNet's config has `global_pool_conditions`.
   */
  readonly guessMode?: boolean;
  /** (optional) receives warnings, e.g. the text cut from a prompt longer than the tokenizer's 77 tokens. */
  readonly onWarning?: (message: string) => void;
  /**
   * (optional, default "plain") "plain": diffusers' prompts (cut at 77 tokens, with a warning);
   * "a1111": A1111 weights `(word:1.3)`, `BREAK` and 75-token chunks (./prompt-weighting.ts).
   */
  readonly promptSyntax?: PromptSyntax;
  /** (optional) the control image of the loaded T2I-Adapter and its scale (./t2i-adapter.ts). */
  readonly t2iAdapterControl?: AdapterControl;
  /** (optional) the reference image(s) of the loaded IP-Adapter and its scale (diffusers set_ip_adapter_scale, default 1). */
  readonly ipAdapterImage?: { readonly images: readonly Image[]; readonly scale?: number };
}

type ControlNetRunner = Awaited<ReturnType<typeof ControlNetModel.load>>;

/** What `StableDiffusionPipeline.inspect` reads from a pipeline's configs (nothing is loaded). */
export interface PipelineSummary {
  /** True when `model` is a single-file checkpoint (its configs come from `configDir`). */
  readonly singleFile: boolean;
  readonly unetConfig: UNet2DConditionModelConfig;
  /** 2 ** (len(vae block_out_channels) - 1): 8 for SD. */
  readonly vaeScaleFactor: number;
  /** The text encoder's num_hidden_layers: clip skip ranges over 0 .. layers - 1. */
  readonly textEncoderLayers: number;
}

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() === true;
}

export class StableDiffusionPipeline {
  private constructor(
    private readonly tokenizer: CLIPTokenizer,
    private readonly textEncoder: CLIPTextModel,
    private readonly unet: Awaited<ReturnType<typeof UNet2DConditionModel.load>>,
    private readonly vae: AutoencoderKL | AutoencoderTiny,
    private readonly controlnets: readonly ControlNetRunner[],
    readonly unetConfig: UNet2DConditionModelConfig,
    readonly vaeScaleFactor: number,
    private readonly schedulerConfig: Readonly<Record<string, unknown>>,
    /** Loads the ControlNets again, built for guess mode or not. */
    private readonly loadControlNets: (guessMode: boolean) => Promise<ControlNetRunner[]>,
  ) {}

  /** The T2I-Adapter (load option `t2iAdapter`), if any. */
  private t2iAdapter: T2IAdapterRunner | undefined;

  /** With the load option `liveLoras`: the LoRA scales the UNet and text encoder read on every run. */
  loraScales: LiveLoraScales | undefined;

  /** The IP-Adapter and its image encoder (load option `ipAdapter`), if any (the video engine may use it). */
  ipAdapter: IpAdapterConditioner | undefined;

  /** The ControlNets' variant for the other guess mode, once built (released with the pipeline). */
  private otherControlNets: Promise<ControlNetRunner[]> | undefined;

  /**
   * Reads model_index.json and the UNet, VAE and text encoder configs only (no weights, no graphs),
   * so arguments can be checked in a second before a load that takes minutes.
   */
  static async inspect(
    model: string,
    options: Pick<LoadPipelineOptions, "configDir"> = {},
  ): Promise<PipelineSummary> {
    const singleFile = await isFile(model);
    const dir = singleFile ? options.configDir : model;
    if (dir === undefined) {
      throw new InvalidArgumentError(
        "configDir",
        "a diffusers folder with the configs of this checkpoint",
        dir,
        {
          hint: `${model} is a single-file checkpoint, which holds no architecture`,
        },
      );
    }
    const folder = await readPipelineFolder(dir, { requireWeights: !singleFile });
    const configOf = (name: "unet" | "vae" | "text_encoder"): string => {
      const c = folder.components.get(name);
      if (c === undefined) {
        throw new InvalidArgumentError(
          dir,
          `a pipeline with a ${name} component`,
          "none in model_index.json",
        );
      }
      return join(c.dir, "config.json");
    };
    const unet = configOf("unet");
    const vae = configOf("vae");
    const unetConfig = parseUNet2DConditionModelConfig(unet, await readJsonFile(unet)).config;
    const vaeConfig = parseAutoencoderKLConfig(vae, await readJsonFile(vae)).config;
    const textConfig = (await readCLIPTextConfig(configOf("text_encoder"))).config;
    return {
      singleFile,
      unetConfig,
      vaeScaleFactor: 2 ** (vaeConfig.block_out_channels.length - 1),
      textEncoderLayers: textConfig.num_hidden_layers,
    };
  }

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
    const folder = singleFile
      ? await readPipelineFolder(options.configDir ?? "", { requireWeights: false })
      : await readPipelineFolder(model);
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
      const textConfig = join(dirOf("text_encoder"), "config.json");
      const split = splitSingleFile(await openCheckpointStore(model), {
        ...ldmLayoutFor("unet", join(dirOf("unet"), "config.json"), unetJson),
        vaeLevels: configs.vae.block_out_channels.length,
        ...pickTextLayers(ldmLayoutFor("text_encoder", textConfig, await readJsonFile(textConfig))),
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
    // Progress: one "loading <component>" task per model; writing a model's ONNX file (first use of
    // a checkpoint) reports as "<component>: write weights".
    const tracked = async <T>(task: string, run: () => Promise<T>): Promise<T> => {
      options.onProgress?.({ status: "start", task });
      const result = await run();
      options.onProgress?.({ status: "done", task });
      return result;
    };
    const loadFor = (name: string): ModelLoadOptions => {
      const report = options.onProgress;
      if (report === undefined) return load;
      return { ...load, onProgress: (e) => report({ ...e, task: `${name}: ${e.task}` }) };
    };
    const loadNets = async (guessMode: boolean): Promise<ControlNetRunner[]> => {
      const nets = [];
      for (const path of netPaths) {
        const netOptions = {
          ...loadFor(path),
          guessMode,
          broadcastPooled: true,
          ...(options.crossFrame ? { crossFrame: options.crossFrame } : {}),
        };
        nets.push(await tracked(`loading ${path}`, () => loadControlNet(path, configs.unet, netOptions)));
      }
      return nets;
    };
    const fused =
      (options.loras ?? []).length === 0
        ? undefined
        : await withLoras(
            options.loras ?? [],
            {
              unet: await unetSource(),
              unetConfig: configs.unet,
              textEncoder: await source("text_encoder", "text_encoder"),
            },
            options.liveLoras === true ? { live: true } : {},
          );
    const tokenizer = await CLIPTokenizer.fromPretrained(dirOf("tokenizer"));
    const inverted = await withTextualInversions(
      options.embeddings ?? [],
      tokenizer,
      fused?.textEncoder ?? (await source("text_encoder", "text_encoder")),
    );
    const [textEncoder, unet, vae] = await Promise.all([
      tracked("loading text_encoder", async () =>
        CLIPTextModel.load(inverted.textEncoder, loadFor("text_encoder")),
      ),
      tracked("loading unet", async () =>
        UNet2DConditionModel.load(fused?.unet ?? (await unetSource()), {
          ...loadFor("unet"),
          residuals: netPaths.length > 0,
          intrablockResiduals: options.t2iAdapter !== undefined,
          ipAdapter: options.ipAdapter !== undefined,
          ...(options.crossFrame ? { crossFrame: options.crossFrame } : {}),
        }),
      ),
      // The VAE compiles each half on first use unless told otherwise: text-to-image never writes the encoder.
      tracked("loading vae", async (): Promise<AutoencoderKL | AutoencoderTiny> => {
        const vaeOptions = { ...loadFor("vae"), compile: options.compile ?? "first-use" } as const;
        return options.tinyVae === undefined
          ? AutoencoderKL.load(await source("vae", "vae"), vaeOptions)
          : AutoencoderTiny.load(options.tinyVae, vaeOptions);
      }),
    ]);
    const vaeScaleFactor = 2 ** (configs.vae.block_out_channels.length - 1);
    if (vae instanceof AutoencoderTiny && vae.downsampleFactor !== vaeScaleFactor) {
      await Promise.all([textEncoder.release(), unet.release(), vae.release()]);
      throw new InvalidArgumentError(
        "--tiny-vae",
        `a tiny autoencoder with the model VAE's size factor ${vaeScaleFactor}`,
        vae.downsampleFactor,
        { hint: "use the TAESD made for this model family (taesd for SD 1.x/2.x)" },
      );
    }
    const controlnets = await loadNets(options.guessMode === true);
    const adapterDir = options.t2iAdapter;
    const adapter =
      adapterDir === undefined
        ? undefined
        : await tracked(`loading ${adapterDir}`, () => loadT2IAdapter(adapterDir, loadFor(adapterDir)));
    const pipeline = new StableDiffusionPipeline(
      tokenizer,
      textEncoder,
      unet,
      vae,
      controlnets,
      configs.unet,
      vaeScaleFactor,
      schedulerConfig,
      loadNets,
    );
    pipeline.t2iAdapter = adapter;
    pipeline.loraScales = fused?.live;
    const ip = options.ipAdapter;
    pipeline.ipAdapter =
      ip === undefined
        ? undefined
        : await tracked(`loading ${ip.file}`, () => IpAdapterConditioner.load(unet, ip, loadFor(ip.file)));
    return pipeline;
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
      guessMode: askedGuessMode,
      onWarning,
      promptSyntax = "plain",
      t2iAdapterControl,
      ipAdapterImage,
      ...rest
    } = options;
    if ((ipAdapterImage === undefined) !== (this.ipAdapter === undefined)) {
      throw new InvalidArgumentError(
        "ipAdapterImage",
        this.ipAdapter ? "a reference image for the loaded IP-Adapter" : "nothing (no ipAdapter was loaded)",
        ipAdapterImage === undefined ? undefined : "a reference image",
      );
    }
    if (this.ipAdapter && this.t2iAdapter) {
      throw new UnsupportedError("an IP-Adapter together with a T2I-Adapter in one run", {
        hint: "use one of them (or a ControlNet with the IP-Adapter)",
      });
    }
    if ((t2iAdapterControl === undefined) !== (this.t2iAdapter === undefined)) {
      throw new InvalidArgumentError(
        "t2iAdapterControl",
        this.t2iAdapter ? "a control image for the loaded T2I-Adapter" : "nothing (no t2iAdapter was loaded)",
        t2iAdapterControl === undefined ? undefined : "a control image",
      );
    }
    if (controls.length !== this.controlnets.length) {
      throw new InvalidArgumentError(
        "controls",
        `${this.controlnets.length} control image(s), one per ControlNet`,
        controls.length,
      );
    }
    // diffusers: guess_mode = guess_mode or controlnet(.nets[0]).config.global_pool_conditions
    const pooled = this.controlnets[0]?.config.global_pool_conditions === true;
    const guessMode = (askedGuessMode ?? this.controlnets[0]?.guessMode ?? false) || pooled;
    const nets = await this.controlNetsFor(guessMode);
    const weighted =
      promptSyntax === "a1111" && rest.promptEmbeds === undefined
        ? await this.encodeWeightedPrompt(rest.prompt, rest.negativePrompt ?? "", rest.clipSkip)
        : undefined;
    for (const [which, text] of weighted || rest.promptEmbeds
      ? []
      : ([
          ["prompt", rest.prompt],
          ["negative prompt", rest.negativePrompt ?? ""],
        ] as const)) {
      const dropped = droppedPromptText(this.tokenizer, text);
      if (dropped !== undefined) {
        onWarning?.(
          `the ${which} is longer than CLIP's ${this.tokenizer.modelMaxLength} tokens; this part was cut: "${dropped}"`,
        );
      }
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
    const unet: DenoisingUNet =
      this.t2iAdapter && t2iAdapterControl
        ? await adaptedUNet(this.unet, this.t2iAdapter, t2iAdapterControl, {
            ...(rest.signal ? { signal: rest.signal } : {}),
          })
        : this.ipAdapter && ipAdapterImage
          ? ipAdaptedUNet(
              this.unet,
              await this.ipAdapter.condition(ipAdapterImage.images, ipAdapterImage.scale ?? 1, {
                ...(rest.signal ? { signal: rest.signal } : {}),
              }),
              { cfg: guidanceMode(this.unet, rest.guidanceScale ?? 7.5).cfg },
            )
          : this.unet;
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
        ...(weighted ? { promptEmbeds: { uncond: weighted[0], cond: weighted[1] } } : {}),
        guessMode,
        controls: controls.map((c, i) => ({ ...c, controlnet: nets[i] as ControlNet })),
      },
    );
  }

  /**
   * [uncond, cond] embeddings [1, 77 * k, C] of a prompt and negative prompt in A1111 syntax (weights,
   * BREAK, 75-token chunks; ./prompt-weighting.ts), the shorter padded to the same chunk count.
   */
  async encodeWeightedPrompt(
    prompt: string,
    negativePrompt: string,
    clipSkip?: number,
  ): Promise<[HostTensor<"float32">, HostTensor<"float32">]> {
    return encodePromptWeighted(
      this.tokenizer,
      this.weightedTextEncoder(),
      prompt,
      negativePrompt,
      clipSkip === undefined ? {} : { clipSkip },
    );
  }

  private weightedTextEncoder(): TextEncoder {
    return {
      encode: async (ids, o) =>
        (await this.textEncoder.encode(ids, o?.clipSkip === undefined ? {} : { clipSkip: o.clipSkip }))
          .promptEmbeds,
    };
  }

  /**
   * The loaded components as the video engine takes them (src/engine/generate-video.ts): a fresh
   * scheduler per batch from `scheduler` (default: the folder's class) and its config.
   */
  videoComponents(scheduler?: string, schedulerConfig = this.schedulerConfig): VideoComponents {
    const className =
      typeof schedulerConfig["_class_name"] === "string" ? schedulerConfig["_class_name"] : "PNDMScheduler";
    const name = scheduler ?? className;
    fromConfig(name, schedulerConfig); // fails now, not at the first batch, on a bad name or config
    return {
      tokenizer: { tokenize: (prompts) => this.tokenizer.encodeBatch(prompts) },
      textEncoder: {
        encode: async (ids, o) =>
          (await this.textEncoder.encode(ids, o?.clipSkip === undefined ? {} : { clipSkip: o.clipSkip }))
            .promptEmbeds,
      },
      unet: this.unet,
      controlnets: this.controlnets,
      ...(this.t2iAdapter ? { adapter: videoAdapter(this.unet, this.t2iAdapter) } : {}),
      ...(this.ipAdapter ? { ipAdapter: videoIpAdapter(this.unet, this.ipAdapter) } : {}),
      vae: { scalingFactor: this.vae.scalingFactor, decode: (z) => this.vae.decode(z, { batchSize: 1 }) },
      encoder: vaeLatentEncoder(this.vae),
      makeScheduler: () => fromConfig(name, schedulerConfig),
      vaeScaleFactor: this.vaeScaleFactor,
      latentChannels: this.unetConfig.in_channels,
      encodeWeightedPrompts: (prompts, negative, clipSkip) =>
        encodePromptsWeighted(
          this.tokenizer,
          this.weightedTextEncoder(),
          prompts,
          negative,
          clipSkip === undefined ? {} : { clipSkip },
        ),
    };
  }

  /**
   * The ControlNets built for `guessMode` (the guess-mode scaling is part of the graph): the loaded
   * ones, or the other variant, built on first use. Nets with global_pool_conditions do not scale.
   */
  private async controlNetsFor(guessMode: boolean): Promise<readonly ControlNetRunner[]> {
    const loaded = this.controlnets;
    if (loaded.every((n) => n.guessMode === guessMode || n.config.global_pool_conditions)) return loaded;
    this.otherControlNets ??= this.loadControlNets(guessMode);
    return this.otherControlNets;
  }

  async release(): Promise<void> {
    await Promise.all([
      this.textEncoder.release(),
      this.unet.release(),
      this.vae.release(),
      this.t2iAdapter?.release(),
      this.ipAdapter?.release(),
      ...this.controlnets.map((c) => c.release()),
      this.otherControlNets?.then((nets) => Promise.all(nets.map((c) => c.release()))),
    ]);
  }
}

/** The VAE as img2img's encoder: posterior sample drawn from the run's generator, times scaling_factor. */
export function vaeLatentEncoder(vae: AutoencoderKL | AutoencoderTiny): LatentEncoder {
  // A tiny autoencoder's encoder gives the latents themselves: no posterior, no noise drawn (diffusers).
  if (vae instanceof AutoencoderTiny)
    return { encode: async (image) => scale(await vae.encode(image, { batchSize: 1 }), vae.scalingFactor) };
  return {
    encode: async (image, generator) => {
      const dist = await vae.encode(image, { batchSize: 1 });
      return scale(vae.sample(dist, { noise: generator.randn(dist.mean.shape) }), vae.scalingFactor);
    },
  };
}

/** A ControlNet folder, or an original single file whose config follows the UNet's (as diffusers does); checked against the UNet. */
export async function loadControlNet(
  path: string,
  unetConfig: UNet2DConditionModelConfig,
  options: ControlNetLoadOptions,
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
  const config: Record<string, unknown> = Object.fromEntries(
    CONTROLNET_FIELDS_FROM_UNET.map((k) => [k, unet[k]]),
  );
  config["conditioning_embedding_out_channels"] = widths;
  config["conditioning_channels"] = store.info("controlnet_cond_embedding.conv_in.weight")?.shape[1] ?? 3;
  return config;
}

/** The text encoder's layer count, the one field of its LDM layout the single-file split needs. */
function pickTextLayers(layout: LdmLayout): Pick<LdmLayout, "textLayers"> {
  return layout.textLayers === undefined ? {} : { textLayers: layout.textLayers };
}
