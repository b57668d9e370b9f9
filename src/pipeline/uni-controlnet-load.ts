/**
 * Loads everything `generateUni` (./uni-controlnet.ts) runs on: the Uni-ControlNet checkpoint's UNet
 * and adapters (../models/uni-controlnet), and the tokenizer, text encoder and VAE of SD 1.5 — from a
 * diffusers SD-1.5 folder (`model`; its UNet is not loaded), or from the uni.ckpt itself (which holds
 * `cond_stage_model.*` and `first_stage_model.*`, mapped by the LDM key map) with the configs and
 * tokenizer of a diffusers config folder (`configDir`) — and, for a content image, a CLIP ViT-L/14
 * image encoder (../models/clip-vision, transformers CLIPVisionModelWithProjection folder).
 */
import { join } from "node:path";
import { InvalidArgumentError } from "../errors.js";
import { readJsonFile } from "../config/parse.js";
import { CLIPTextModel } from "../models/clip/index.js";
import { ClipVisionRunner } from "../models/clip-vision/index.js";
import type { ModelLoadOptions } from "../models/compiled-graph.js";
import { ldmLayoutFor } from "../models/ldm-layout.js";
import { type UniControlNet, loadUniControlNet } from "../models/uni-controlnet/runner.js";
import { uniLdmLayout } from "../models/uni-controlnet/config.js";
import { parseAutoencoderKLConfig } from "../models/vae/config.js";
import { AutoencoderKL } from "../models/vae/index.js";
import { CLIPTokenizer } from "../tokenizer/clip-tokenizer.js";
import { splitSingleFile } from "../weights/single-file.js";
import { readPipelineFolder } from "./components.js";
import type { UniComponents } from "./uni-controlnet.js";
import type { CrossFrameSetting } from "../models/unet/build.js";

export interface UniPipelineLoadOptions extends ModelLoadOptions {
  /** (give this or configDir) a diffusers SD-1.5 folder: tokenizer, text encoder and VAE come from it. */
  readonly model?: string;
  /** (give this or model) a diffusers config folder: tokenizer and configs; weights from the uni.ckpt. */
  readonly configDir?: string;
  /** (optional) a CLIPVisionModelWithProjection folder (openai/clip-vit-large-patch14) for content images. */
  readonly imageEncoder?: string;
  /** (optional, default 8) attention heads of the Uni-ControlNet (not in the checkpoint). */
  readonly numHeads?: number;
  /** (optional) cross-frame self-attention built into the UNet and the local adapter (video engine). */
  readonly crossFrame?: CrossFrameSetting;
}

export interface UniPipeline {
  readonly components: UniComponents;
  readonly uni: UniControlNet;
  /** The VAE runner (the video engine's img2img starts encode with it). */
  readonly vae?: AutoencoderKL;
  release(): Promise<void>;
}

/** Loads a Uni-ControlNet pipeline (see the module comment). */
export async function loadUniPipeline(
  uniPath: string,
  options: UniPipelineLoadOptions,
): Promise<UniPipeline> {
  const dir = options.model ?? options.configDir;
  if (dir === undefined || (options.model !== undefined && options.configDir !== undefined)) {
    throw new InvalidArgumentError("model / configDir", "exactly one of them", dir, {
      hint: "a diffusers SD-1.5 folder (its text encoder and VAE are used), or a config folder to take them from the uni.ckpt",
    });
  }
  const folder = await readPipelineFolder(dir, { requireWeights: options.model !== undefined });
  const dirOf = (name: "vae" | "text_encoder" | "tokenizer"): string => {
    const c = folder.components.get(name);
    if (c === undefined)
      throw new InvalidArgumentError(dir, `a pipeline with a ${name} component`, "none in model_index.json");
    return c.dir;
  };
  const uni = await loadUniControlNet(uniPath, {
    ...options,
    ...(options.numHeads === undefined ? {} : { numHeads: options.numHeads }),
  });
  const opened: { release(): Promise<void> }[] = [uni];
  const release = async (): Promise<void> => {
    for (const r of opened) await r.release();
  };
  try {
    const tokenizer = await CLIPTokenizer.fromPretrained(dirOf("tokenizer"));
    const vaeConfigPath = join(dirOf("vae"), "config.json");
    const vaeJson = await readJsonFile(vaeConfigPath);
    const textConfigPath = join(dirOf("text_encoder"), "config.json");
    let textSource: Parameters<typeof CLIPTextModel.load>[0] = dirOf("text_encoder");
    let vaeSource: Parameters<typeof AutoencoderKL.load>[0] = dirOf("vae");
    if (options.model === undefined) {
      const textJson = await readJsonFile(textConfigPath);
      const text = ldmLayoutFor("text_encoder", textConfigPath, textJson);
      const split = splitSingleFile(uni.store, {
        ...uniLdmLayout(uni.config),
        vaeLevels: parseAutoencoderKLConfig(vaeConfigPath, vaeJson).config.block_out_channels.length,
        ...(text.textLayers === undefined ? {} : { textLayers: text.textLayers }),
      });
      const store = (name: "text_encoder" | "vae") => {
        const s = split.components.get(name);
        if (s === undefined) {
          throw new InvalidArgumentError(
            uniPath,
            `a checkpoint with ${name} weights (${name === "vae" ? "first_stage_model" : "cond_stage_model"}.*)`,
            "none found",
            {
              hint: "pass a diffusers SD-1.5 folder as the model to take them from there",
            },
          );
        }
        return s;
      };
      textSource = { config: textJson, store: store("text_encoder"), configName: textConfigPath };
      vaeSource = { config: vaeJson, store: store("vae"), configName: vaeConfigPath };
    }
    const textEncoder = await CLIPTextModel.load(textSource, options);
    opened.push(textEncoder);
    const vae = await AutoencoderKL.load(vaeSource, { ...options, compile: options.compile ?? "first-use" });
    opened.push(vae);
    const imageEncoder =
      options.imageEncoder === undefined
        ? undefined
        : await ClipVisionRunner.load(options.imageEncoder, options);
    if (imageEncoder) opened.push(imageEncoder);
    const vaeScaleFactor =
      2 ** (parseAutoencoderKLConfig(vaeConfigPath, vaeJson).config.block_out_channels.length - 1);
    const components: UniComponents = {
      tokenizer: { tokenize: (prompts) => tokenizer.encodeBatch(prompts) },
      textEncoder: { encode: async (ids) => (await textEncoder.encode(ids)).promptEmbeds },
      model: uni,
      vae: { scalingFactor: vae.scalingFactor, decode: (z) => vae.decode(z, { batchSize: 1 }) },
      ...(uni.alphasCumprod ? { alphasCumprod: uni.alphasCumprod } : {}),
      vaeScaleFactor,
      latentChannels: uni.config.in_channels,
      ...(imageEncoder ? { imageEncoder } : {}),
    };
    return { components, uni, vae, release };
  } catch (error) {
    await release();
    throw error;
  }
}
