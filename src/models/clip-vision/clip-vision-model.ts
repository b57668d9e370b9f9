/**
 * CLIPVisionModelWithProjection runner (`ClipVisionRunner`): loads an image encoder (a transformers
 * folder: config.json + model.safetensors [+ preprocessor_config.json], or config + weight store),
 * builds its graph (graph.ts; weights are checked at load) and runs it on ONNX Runtime, compiled by
 * the runner family's one policy (../model-runner.ts). `encodeImages` preprocesses 8-bit images as
 * CLIPImageProcessor does (./preprocess.ts) with the folder's preprocessor_config.json, or, without
 * one, CLIPImageProcessor() defaults with size and crop set to the model's image_size (224 for the
 * real encoders, where this equals the defaults diffusers' load_ip_adapter uses).
 *
 *   const encoder = await ClipVisionRunner.load("models/image_encoder");
 *   const { imageEmbeds, penultimateHiddenState } = await encoder.encodeImages([rgb]);
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { GraphError, InvalidArgumentError, throwIfAborted } from "../../errors.js";
import { readJsonFile } from "../../config/parse.js";
import type { Image } from "../../image.js";
import { type HostTensor, shapeToString, toFloat32 } from "../../tensor.js";
import type { ModelLoadOptions } from "../compiled-graph.js";
import { type ComponentSource, resolveComponent } from "../component-source.js";
import { ModelRunner, RunnerGraph, signalOption } from "../model-runner.js";
import type { CLIPVisionConfig } from "./config.js";
import { CLIP_VISION_INPUT, type ClipVisionGraphOptions, buildCLIPVisionGraph } from "./graph.js";
import {
  type ClipImageProcessorConfig,
  DEFAULT_CLIP_IMAGE_PROCESSOR,
  clipPixelValues,
  parseClipImageProcessorConfig,
} from "./preprocess.js";
import { type ClipVisionSpec, resolveClipVisionSpec } from "./validate.js";

export interface ClipVisionLoadOptions
  extends ModelLoadOptions, Pick<ClipVisionGraphOptions, "dtype" | "attention" | "hiddenStates"> {
  /** (optional) the image preprocessing; default: the folder's preprocessor_config.json (see the module comment). */
  readonly preprocessor?: ClipImageProcessorConfig;
}

export interface ClipVisionOutputs {
  /** visual_projection(pooler_output), [B, projection_dim] (not normalised). */
  readonly imageEmbeds: HostTensor<"float32">;
  /** The last layer's output, [B, T, hidden]. */
  readonly lastHiddenState: HostTensor<"float32">;
  /** hidden_states[-2], [B, T, hidden] (IP-Adapter plus's image features). */
  readonly penultimateHiddenState: HostTensor<"float32">;
  /** post_layernorm(last_hidden_state[:, 0]), [B, hidden]. */
  readonly poolerOutput: HostTensor<"float32">;
}

async function preprocessorOf(
  source: ComponentSource,
  spec: ClipVisionSpec,
): Promise<ClipImageProcessorConfig> {
  if (typeof source === "string") {
    const path = join(source, "preprocessor_config.json");
    if ((await stat(path).catch(() => undefined))?.isFile() === true)
      return parseClipImageProcessorConfig(path, await readJsonFile(path, "preprocessor config"));
  }
  const s = spec.config.image_size;
  return { ...DEFAULT_CLIP_IMAGE_PROCESSOR, size: { shortestEdge: s }, cropSize: { height: s, width: s } };
}

export class ClipVisionRunner extends ModelRunner {
  private constructor(
    graph: RunnerGraph,
    readonly spec: ClipVisionSpec,
    /** How `encodeImages` turns 8-bit images into pixel_values. */
    readonly preprocessor: ClipImageProcessorConfig,
  ) {
    super("CLIPVisionModelWithProjection", [graph]);
  }

  /** Loads config and weights, validates the config and binds every weight (errors surface here). */
  static async load(source: ComponentSource, options: ClipVisionLoadOptions = {}): Promise<ClipVisionRunner> {
    const component = await resolveComponent(source, "transformers");
    const spec = resolveClipVisionSpec(component.configName, component.config);
    const graph = buildCLIPVisionGraph(spec, component.store, {
      ...(options.dtype === undefined ? {} : { dtype: options.dtype }),
      ...(options.attention === undefined ? {} : { attention: options.attention }),
      ...(options.hiddenStates === undefined ? {} : { hiddenStates: options.hiddenStates }),
    });
    const preprocessor = options.preprocessor ?? (await preprocessorOf(source, spec));
    return ModelRunner.opened(
      new ClipVisionRunner(
        new RunnerGraph("image_encoder", graph, component.weightsId, options),
        spec,
        preprocessor,
      ),
      options,
    );
  }

  get config(): CLIPVisionConfig {
    return this.spec.config;
  }

  /** Runs the graph on pixel_values and returns every output by name (hidden_states.* when built with them). */
  async run(
    pixelValues: HostTensor,
    options: { signal?: AbortSignal } = {},
  ): Promise<Record<string, HostTensor>> {
    const s = this.spec.config.image_size;
    if (
      pixelValues.dtype !== "float32" ||
      pixelValues.shape.join() !== [pixelValues.shape[0] ?? 0, 3, s, s].join()
    ) {
      throw new InvalidArgumentError(
        "pixelValues",
        `float32 [batch, 3, ${s}, ${s}] (image_size ${s})`,
        `${pixelValues.dtype}${shapeToString(pixelValues.shape)}`,
        { hint: "preprocess with encodeImages / clipPixelValues (resize, center crop, normalise)" },
      );
    }
    throwIfAborted(options.signal, "CLIP image encoder");
    const session = await this.openSession();
    return session.run({ [CLIP_VISION_INPUT]: pixelValues }, signalOption(options));
  }

  /** pixel_values float32 [B, 3, S, S] (already preprocessed) -> the model's outputs. */
  async encode(pixelValues: HostTensor, options: { signal?: AbortSignal } = {}): Promise<ClipVisionOutputs> {
    const out = await this.run(pixelValues, options);
    const get = (name: string): HostTensor<"float32"> => {
      const t = out[name];
      if (t === undefined)
        throw new GraphError(this.modelName, `internal: the session returned no output "${name}"`);
      return toFloat32(t);
    };
    return {
      imageEmbeds: get("image_embeds"),
      lastHiddenState: get("last_hidden_state"),
      penultimateHiddenState: get("penultimate_hidden_state"),
      poolerOutput: get("pooler_output"),
    };
  }

  /** 8-bit images (any size; gray/RGBA converted to RGB) -> preprocessed with `preprocessor`, then encoded. */
  async encodeImages(
    images: readonly Image[],
    options: { signal?: AbortSignal } = {},
  ): Promise<ClipVisionOutputs> {
    return this.encode(clipPixelValues(images, this.preprocessor), options);
  }
}
