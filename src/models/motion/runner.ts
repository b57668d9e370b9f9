/**
 * UNetMotionModel as an ONNX Runtime session: `UNetMotionModel.load({ unet, motionAdapter })` resolves
 * both parts (diffusers folders, config + store, or an original AnimateDiff checkpoint for the
 * adapter), builds the graph (build.ts) and compiles it (../model-runner.ts: written into the model
 * cache, opened as a session); `forward` runs one denoising step on video latents [B, C, F, H, W].
 * Absent ControlNet residuals are fed as zeros, as the UNet's runner does (../unet/residual-feeds.ts).
 */
import { InvalidArgumentError } from "../../errors.js";
import { WeightScope } from "../../nn/weights.js";
import { type HostTensor, shapeToString } from "../../tensor.js";
import type { ModelLoadOptions } from "../compiled-graph.js";
import { type ModelSource, type ResolvedModelSource, resolveModelSource } from "../component-source.js";
import {
  ModelRunner,
  RunnerGraph,
  float32Output,
  newGraph,
  signalOption,
  timestepFeed,
} from "../model-runner.js";
import { type UNet2DConditionModelConfig, parseUNet2DConditionModelConfig } from "../unet/config.js";
import { residualFeeds, residualSpecs } from "../unet/residual-feeds.js";
import type { UNetSource } from "../unet/runner.js";
import { openAnimateDiffCheckpoint } from "./animatediff-checkpoint.js";
import { UNET_MOTION_INPUT, UNET_MOTION_OUTPUT, buildUNetMotionModel } from "./build.js";
import { MOTION_ADAPTER_DEFAULTS, type MotionAdapterConfig, parseMotionAdapterConfig } from "./config.js";

/**
 * A diffusers `motion_adapter/` folder (config.json + diffusion_pytorch_model.safetensors), a config
 * and a store with MotionAdapter keys, or an original AnimateDiff motion-module file with the
 * adapter config it needs (default: diffusers' MotionAdapter defaults = v2, with a mid block; set
 * use_motion_mid_block false for v1 files).
 */
export type MotionAdapterSource =
  ModelSource<MotionAdapterConfig> | { readonly checkpoint: string; readonly config?: MotionAdapterConfig };

export interface UNetMotionSource {
  readonly unet: UNetSource;
  readonly motionAdapter: MotionAdapterSource;
}

export interface UNetMotionLoadOptions extends ModelLoadOptions {
  /** (optional, default false) take per-frame ControlNet residuals (zeros are fed when a call gives none). */
  readonly residuals?: boolean;
}

export interface UNetMotionRunInputs {
  /** [B, in_channels, F, H, W] float32, F <= motion_max_seq_length. */
  readonly sample: HostTensor;
  /** A number, or a tensor of shape [], [1] or [B]. */
  readonly timestep: HostTensor | number;
  /** [B, L, cross_attention_dim] float32 (the same for every frame of a video). */
  readonly encoderHiddenStates: HostTensor;
  /** Per-frame ControlNet down_block_res_samples ([B*F, C, h, w], frames of a video adjacent); both residual fields or neither. */
  readonly downBlockAdditionalResiduals?: readonly HostTensor[];
  readonly midBlockAdditionalResidual?: HostTensor;
}

export class UNetMotionModelRunner extends ModelRunner {
  constructor(
    graph: RunnerGraph,
    /** The UNet part's config, as UNetMotionModel builds it. */
    readonly unetConfig: UNet2DConditionModelConfig,
    readonly adapterConfig: MotionAdapterConfig,
    /** True when the graph takes per-frame ControlNet residuals. */
    readonly acceptsResiduals = false,
  ) {
    super("UNetMotionModel", [graph]);
  }

  /** The most frames one call may take (motion_max_seq_length). */
  get maxFrames(): number {
    return this.adapterConfig.motion_max_seq_length;
  }

  /** Runs the session and returns every output by name. */
  async run(
    inputs: UNetMotionRunInputs,
    options: { signal?: AbortSignal } = {},
  ): Promise<Record<string, HostTensor>> {
    const { sample, encoderHiddenStates: ehs } = inputs;
    const [batch = 0, , frames = 0] = sample.shape;
    if (sample.shape.length !== 5) {
      throw new InvalidArgumentError(
        "sample",
        "a [batch, channels, frames, height, width] tensor",
        shapeToString(sample.shape),
      );
    }
    if (frames < 1 || frames > this.maxFrames) {
      throw new InvalidArgumentError(
        "sample",
        `1 to ${this.maxFrames} frames (the motion adapter's motion_max_seq_length)`,
        `${frames} frames`,
        { hint: "denoise longer videos in windows of at most that many frames" },
      );
    }
    if (ehs.shape.length !== 3 || ehs.shape[0] !== batch) {
      throw new InvalidArgumentError(
        "encoderHiddenStates",
        `a [${batch}, sequence, dim] tensor (one per video, repeated per frame inside the model)`,
        shapeToString(ehs.shape),
      );
    }
    const session = await this.openSession();
    const feeds: Record<string, HostTensor> = {
      [UNET_MOTION_INPUT.sample]: sample,
      [UNET_MOTION_INPUT.timestep]: timestepFeed(inputs.timestep, batch),
      [UNET_MOTION_INPUT.encoderHiddenStates]: ehs,
      ...residualFeeds(residualSpecs(session.inputs), inputs, {
        model: this.modelName,
        geometry: () => ({
          batch: batch * frames,
          height: sample.shape[3] ?? 1,
          width: sample.shape[4] ?? 1,
          downsamplePadding: this.unetConfig.downsample_padding,
        }),
      }),
    };
    return session.run(feeds, signalOption(options));
  }

  /** noise_pred [B, out_channels, F, H, W]. */
  async forward(inputs: UNetMotionRunInputs): Promise<HostTensor<"float32">> {
    return float32Output(await this.run(inputs), UNET_MOTION_OUTPUT);
  }
}

/** The adapter's config and weights: a diffusers folder, config + store, or an AnimateDiff checkpoint. */
async function resolveAdapter(
  source: MotionAdapterSource,
): Promise<ResolvedModelSource<MotionAdapterConfig>> {
  if (typeof source !== "string" && "checkpoint" in source) {
    const config = source.config ?? MOTION_ADAPTER_DEFAULTS;
    const { store, weightsId } = await openAnimateDiffCheckpoint(source.checkpoint, config);
    return { config, store, weightsId, configName: `motion adapter config for ${source.checkpoint}` };
  }
  return resolveModelSource(source, "motion_adapter/config.json", parseMotionAdapterConfig);
}

/** Builds, writes (or reuses) and opens a UNetMotionModel; see UNetMotionLoadOptions. */
export async function loadUNetMotionModel(
  source: UNetMotionSource,
  options: UNetMotionLoadOptions = {},
): Promise<UNetMotionModelRunner> {
  const unet = await resolveModelSource(source.unet, "unet/config.json", parseUNet2DConditionModelConfig);
  const adapter = await resolveAdapter(source.motionAdapter);
  const g = newGraph("unet_motion");
  const built = buildUNetMotionModel(
    WeightScope.bind(g, unet.store),
    WeightScope.bind(g, adapter.store),
    unet.config,
    adapter.config,
    {
      residuals: options.residuals ?? false,
      files: { unet: unet.configName, motionAdapter: adapter.configName },
      motionAdapterName: adapter.store.name,
    },
  );
  const weightsId =
    unet.weightsId === null || adapter.weightsId === null ? null : `${unet.weightsId}|${adapter.weightsId}`;
  return ModelRunner.opened(
    new UNetMotionModelRunner(
      new RunnerGraph("unet_motion", g, weightsId, options),
      built.model.unetConfig,
      adapter.config,
      options.residuals ?? false,
    ),
    options,
  );
}
