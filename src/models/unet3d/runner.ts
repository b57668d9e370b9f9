/**
 * UNet3DConditionModel as an ONNX Runtime session: `loadUNet3DConditionModel(dir, { frames })`
 * resolves a Tune-A-Video checkpoint (or a Stable Diffusion UNet with new temporal layers, see
 * source.ts), builds the graph for that many frames (build.ts) and compiles it
 * (../model-runner.ts); `forward` runs one denoising step on video latents [B, C, F, H, W].
 */
import { InvalidArgumentError } from "../../errors.js";
import { WeightScope } from "../../nn/weights.js";
import { type HostTensor, shapeToString } from "../../tensor.js";
import type { ModelLoadOptions } from "../compiled-graph.js";
import {
  ModelRunner,
  RunnerGraph,
  float32Output,
  newGraph,
  signalOption,
  timestepFeed,
} from "../model-runner.js";
import type { UNet2DConditionModelConfig } from "../unet/config.js";
import { UNET3D_INPUT, UNET3D_OUTPUT, buildUNet3DConditionModel } from "./build.js";
import { type ResolvedUNet3D, type UNet3DSourceOptions, resolveUNet3D } from "./source.js";

export interface UNet3DLoadOptions extends ModelLoadOptions, UNet3DSourceOptions {
  /** Frames per video the graph takes. */
  readonly frames: number;
  /** (optional, default false) also output the intermediates (conformance). */
  readonly intermediates?: boolean;
}

export interface UNet3DRunInputs {
  /** [B, in_channels, F, H, W] float32. */
  readonly sample: HostTensor;
  /** A number, or a tensor of shape [], [1] or [B]. */
  readonly timestep: HostTensor | number;
  /** [B, L, cross_attention_dim] float32 (one per video). */
  readonly encoderHiddenStates: HostTensor;
}

export class UNet3DConditionModelRunner extends ModelRunner {
  constructor(
    graph: RunnerGraph,
    readonly config: UNet2DConditionModelConfig,
    readonly frames: number,
    /** Where the weights came from (folder, config.json object, 2D or tuned). */
    readonly source: ResolvedUNet3D,
  ) {
    super("UNet3DConditionModel", [graph]);
  }

  /** Runs the session and returns every output by name. */
  async run(
    inputs: UNet3DRunInputs,
    options: { signal?: AbortSignal } = {},
  ): Promise<Record<string, HostTensor>> {
    const { sample, encoderHiddenStates: ehs } = inputs;
    const [batch = 0, , frames] = sample.shape;
    if (sample.shape.length !== 5 || frames !== this.frames) {
      throw new InvalidArgumentError(
        "sample",
        `a [batch, channels, ${this.frames}, height, width] tensor (the model was loaded for ${this.frames} frames)`,
        shapeToString(sample.shape),
      );
    }
    if (ehs.shape.length !== 3 || ehs.shape[0] !== batch) {
      throw new InvalidArgumentError(
        "encoderHiddenStates",
        `a [${batch}, sequence, dim] tensor (one per video)`,
        shapeToString(ehs.shape),
      );
    }
    const session = await this.openSession();
    return session.run(
      {
        [UNET3D_INPUT.sample]: sample,
        [UNET3D_INPUT.timestep]: timestepFeed(inputs.timestep, batch),
        [UNET3D_INPUT.encoderHiddenStates]: ehs,
      },
      signalOption(options),
    );
  }

  /** noise_pred [B, out_channels, F, H, W]. */
  async forward(
    inputs: UNet3DRunInputs,
    options: { signal?: AbortSignal } = {},
  ): Promise<HostTensor<"float32">> {
    return float32Output(await this.run(inputs, options), UNET3D_OUTPUT);
  }
}

/** Builds a runner from resolved parts (a folder resolved by resolveUNet3D, or weights in memory). */
export async function openUNet3DConditionModel(
  source: ResolvedUNet3D,
  options: UNet3DLoadOptions,
): Promise<UNet3DConditionModelRunner> {
  const g = newGraph("unet3d");
  buildUNet3DConditionModel(WeightScope.bind(g, source.store), source.config, {
    frames: options.frames,
    intermediates: options.intermediates ?? false,
    configFile: source.configName,
  });
  return ModelRunner.opened(
    new UNet3DConditionModelRunner(
      new RunnerGraph(`unet3d-f${options.frames}`, g, source.weightsId, options),
      source.config,
      options.frames,
      source,
    ),
    options,
  );
}

/** Resolves, builds and opens a UNet3DConditionModel (see source.ts for what `dir` may be). */
export async function loadUNet3DConditionModel(
  dir: string,
  options: UNet3DLoadOptions,
): Promise<UNet3DConditionModelRunner> {
  return openUNet3DConditionModel(await resolveUNet3D(dir, options), options);
}
