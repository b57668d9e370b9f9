/**
 * UNetMotionModel as an ONNX Runtime session: `UNetMotionModel.load({ unet, motionAdapter })` resolves
 * both parts (diffusers folders, config + store, or an original AnimateDiff checkpoint for the
 * adapter), builds the graph (build.ts), writes it into the model cache (../compiled-graph.ts) and
 * opens a session; `forward` runs one denoising step on video latents [B, C, F, H, W].
 */
import { InvalidArgumentError } from "../../errors.js";
import type { WeightStore } from "../../nn/weight-store.js";
import { WeightScope } from "../../nn/weights.js";
import type { Session } from "../../runtime/session.js";
import { type HostTensor, shapeToString } from "../../tensor.js";
import { type ModelLoadOptions, compileGraph, float32Output, newGraph } from "../compiled-graph.js";
import { type ModelSource, resolveComponent } from "../component-source.js";
import { type UNet2DConditionModelConfig, parseUNet2DConditionModelConfig } from "../unet/config.js";
import { isResidualInput } from "../unet/build.js";
import { type UNetSource, timestepFeed } from "../unet/runner.js";
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
  /** (optional, default false) take per-frame ControlNet residuals (all of them, each call). */
  readonly residuals?: boolean;
}

export interface UNetMotionRunInputs {
  /** [B, in_channels, F, H, W] float32, F <= motion_max_seq_length. */
  readonly sample: HostTensor;
  /** A number, or a tensor of shape [], [1] or [B]. */
  readonly timestep: HostTensor | number;
  /** [B, L, cross_attention_dim] float32 (the same for every frame of a video). */
  readonly encoderHiddenStates: HostTensor;
  /** Per-frame ControlNet down_block_res_samples ([B*F, C, h, w], frames of a video adjacent). */
  readonly downBlockAdditionalResiduals?: readonly HostTensor[];
  readonly midBlockAdditionalResidual?: HostTensor;
}

export class UNetMotionModelRunner {
  constructor(
    readonly session: Session,
    /** The UNet part's config, as UNetMotionModel builds it. */
    readonly unetConfig: UNet2DConditionModelConfig,
    readonly adapterConfig: MotionAdapterConfig,
    /** Residual input names (empty without residuals). */
    private readonly residualInputs: readonly string[],
    readonly modelPath: string,
    /** True when the written model came from the cache. */
    readonly reused: boolean,
    private readonly onRelease: () => Promise<void>,
  ) {}

  get acceptsResiduals(): boolean {
    return this.residualInputs.length > 0;
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
    const feeds: Record<string, HostTensor> = {
      [UNET_MOTION_INPUT.sample]: sample,
      [UNET_MOTION_INPUT.timestep]: timestepFeed(inputs.timestep, batch),
      [UNET_MOTION_INPUT.encoderHiddenStates]: ehs,
    };
    Object.assign(feeds, this.residualFeeds(inputs));
    return this.session.run(feeds, options.signal ? { signal: options.signal } : {});
  }

  /** noise_pred [B, out_channels, F, H, W]. */
  async forward(inputs: UNetMotionRunInputs): Promise<HostTensor<"float32">> {
    return float32Output(await this.run(inputs), UNET_MOTION_OUTPUT);
  }

  async release(): Promise<void> {
    await this.onRelease();
  }

  private residualFeeds(inputs: UNetMotionRunInputs): Record<string, HostTensor> {
    const down = inputs.downBlockAdditionalResiduals;
    const mid = inputs.midBlockAdditionalResidual;
    if (!this.acceptsResiduals) {
      if (down === undefined && mid === undefined) return {};
      throw new InvalidArgumentError("downBlockAdditionalResiduals", "no ControlNet residuals", "residuals", {
        hint: "load the UNetMotionModel with { residuals: true }",
      });
    }
    const names = this.residualInputs.filter((n) => n !== UNET_MOTION_INPUT.midBlockAdditionalResidual);
    if (down === undefined || mid === undefined || down.length !== names.length) {
      throw new InvalidArgumentError(
        "downBlockAdditionalResiduals",
        `${names.length} down residuals and a mid residual (this model was loaded with residuals)`,
        `${down?.length ?? 0} down residuals${mid === undefined ? " and no mid residual" : ""}`,
      );
    }
    const feeds: Record<string, HostTensor> = { [UNET_MOTION_INPUT.midBlockAdditionalResidual]: mid };
    names.forEach((name, i) => {
      const t = down[i];
      if (t) feeds[name] = t;
    });
    return feeds;
  }
}

async function resolveAdapter(source: MotionAdapterSource): Promise<{
  config: MotionAdapterConfig;
  store: WeightStore;
  weightsId: string | null;
  configName: string;
}> {
  if (typeof source === "string") {
    const c = await resolveComponent(source, "diffusers");
    const { config } = parseMotionAdapterConfig(c.configName, c.config);
    return { config, store: c.store, weightsId: c.weightsId, configName: c.configName };
  }
  if ("checkpoint" in source) {
    const config = source.config ?? MOTION_ADAPTER_DEFAULTS;
    const { store, weightsId } = await openAnimateDiffCheckpoint(source.checkpoint, config);
    return { config, store, weightsId, configName: `motion adapter config for ${source.checkpoint}` };
  }
  return { ...source, weightsId: source.weightsId ?? null, configName: "motion_adapter/config.json" };
}

async function resolveUNet(source: UNetSource): Promise<{
  config: UNet2DConditionModelConfig;
  store: WeightStore;
  weightsId: string | null;
  configName: string;
}> {
  if (typeof source !== "string")
    return { ...source, weightsId: source.weightsId ?? null, configName: "unet/config.json" };
  const c = await resolveComponent(source, "diffusers");
  const { config } = parseUNet2DConditionModelConfig(c.configName, c.config);
  return { config, store: c.store, weightsId: c.weightsId, configName: c.configName };
}

/** Builds, writes (or reuses) and opens a UNetMotionModel; see UNetMotionLoadOptions. */
export async function loadUNetMotionModel(
  source: UNetMotionSource,
  options: UNetMotionLoadOptions = {},
): Promise<UNetMotionModelRunner> {
  const unet = await resolveUNet(source.unet);
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
  const compiled = await compileGraph(g, "unet_motion", weightsId, options);
  return new UNetMotionModelRunner(
    compiled.session,
    built.model.unetConfig,
    adapter.config,
    built.inputs.filter(isResidualInput),
    compiled.modelPath,
    compiled.reused,
    () => compiled.release(),
  );
}
