/**
 * The UNet as an ONNX Runtime session: `UNet2DConditionModel.load(dir | {config, store})` builds the
 * graph (build.ts), writes it with external data into a cache folder (../compiled-graph.ts), opens a
 * session, and `forward` runs one denoising step on host tensors.
 */
import { InvalidArgumentError } from "../../errors.js";
import { WeightScope } from "../../nn/weights.js";
import type { DenoisingUNet } from "../../pipeline/types.js";
import type { Session } from "../../runtime/session.js";
import { type HostTensor, elementAsNumber, shapeToString, tensor } from "../../tensor.js";
import { type ModelLoadOptions, compileGraph, float32Output, newGraph } from "../compiled-graph.js";
import { type ModelSource, resolveModelSource } from "../component-source.js";
import {
  type CrossFrameSetting,
  UNET_INPUT,
  UNET_OUTPUT,
  buildUNet2DConditionModel,
  isResidualInput,
} from "./build.js";
import { type UNet2DConditionModelConfig, readUNet2DConditionModelConfig } from "./config.js";

/** A diffusers `unet/` folder (config.json + diffusion_pytorch_model.safetensors), or a config and a weight store. */
export type UNetSource = ModelSource<UNet2DConditionModelConfig>;

export interface UNetLoadOptions extends ModelLoadOptions {
  /** (optional, default false) take ControlNet residuals (zeros are fed when a call gives none). */
  readonly residuals?: boolean;
  /** (optional) Text2Video-Zero cross-frame attention in every attn1. */
  readonly crossFrame?: CrossFrameSetting;
  /** (optional, default false) also output `intermediate.*` tensors (see `run`). */
  readonly intermediates?: boolean;
}

export interface UNetRunInputs {
  /** [B, in_channels, H, W] float32. */
  readonly sample: HostTensor;
  /** A number, or a tensor of shape [], [1] or [B] of any numeric dtype (broadcast to [B]). */
  readonly timestep: HostTensor | number;
  /** [B, L, cross_attention_dim] float32. */
  readonly encoderHiddenStates: HostTensor;
  /** ControlNet down_block_res_samples (one per skip connection). */
  readonly downBlockAdditionalResiduals?: readonly HostTensor[];
  readonly midBlockAdditionalResidual?: HostTensor;
}

/** The timestep as float32 [batch]: a scalar (or one-element tensor) is broadcast. */
export function timestepFeed(timestep: HostTensor | number, batch: number): HostTensor<"float32"> {
  if (typeof timestep === "number") return tensor("float32", [batch], new Float32Array(batch).fill(timestep));
  const n = timestep.data.length;
  if (timestep.shape.length > 1 || (n !== 1 && n !== batch)) {
    throw new InvalidArgumentError(
      "timestep",
      `a scalar or a [${batch}] tensor (one per batch item)`,
      shapeToString(timestep.shape),
    );
  }
  const out = new Float32Array(batch);
  for (let i = 0; i < batch; i++) out[i] = elementAsNumber(timestep, n === 1 ? 0 : i);
  return tensor("float32", [batch], out);
}

export class UNet2DConditionModelRunner implements DenoisingUNet {
  constructor(
    readonly session: Session,
    readonly config: UNet2DConditionModelConfig,
    /** Names of the residual graph inputs (empty when built without residuals). */
    private readonly residualInputs: readonly string[],
    readonly modelPath: string,
    /** True when the written model came from the cache. */
    readonly reused: boolean,
    private readonly onRelease: () => Promise<void>,
    /** The cross-frame setting the graph was built with. */
    readonly crossFrame?: CrossFrameSetting,
  ) {}

  /** True when the session takes ControlNet residuals. */
  get acceptsResiduals(): boolean {
    return this.residualInputs.length > 0;
  }

  /** Runs the session with raw feeds and returns every output by name (noise_pred, intermediate.*). */
  async run(
    inputs: UNetRunInputs,
    options: { signal?: AbortSignal } = {},
  ): Promise<Record<string, HostTensor>> {
    const batch = inputs.sample.shape[0] ?? 0;
    const group = this.crossFrame?.videoLength ?? this.crossFrame?.batchSize;
    if (group !== undefined && batch % group !== 0) {
      const what =
        this.crossFrame?.videoLength !== undefined
          ? `frames per video (videoLength ${group})`
          : `videos (batchSize ${group})`;
      throw new InvalidArgumentError(
        "sample",
        `a batch that is a multiple of the ${what}`,
        `batch ${batch}`,
        {
          hint: "cross-frame attention lays the batch out as whole videos",
        },
      );
    }
    const feeds: Record<string, HostTensor> = {
      [UNET_INPUT.sample]: inputs.sample,
      [UNET_INPUT.timestep]: timestepFeed(inputs.timestep, batch),
      [UNET_INPUT.encoderHiddenStates]: inputs.encoderHiddenStates,
    };
    const down = inputs.downBlockAdditionalResiduals;
    const mid = inputs.midBlockAdditionalResidual;
    if (!this.acceptsResiduals && (down !== undefined || mid !== undefined)) {
      throw new InvalidArgumentError(
        "downBlockAdditionalResiduals",
        "no ControlNet residuals (this UNet was loaded without them)",
        "residuals",
        {
          hint: "load the UNet with { residuals: true }",
        },
      );
    }
    if (this.acceptsResiduals) {
      const names = this.residualInputs.filter((n) => n !== UNET_INPUT.midBlockAdditionalResidual);
      if (down !== undefined && down.length !== names.length) {
        throw new InvalidArgumentError(
          "downBlockAdditionalResiduals",
          `${names.length} tensors (one per skip connection)`,
          `${down.length} tensors`,
        );
      }
      for (const spec of this.session.inputs) {
        if (!this.residualInputs.includes(spec.name)) continue;
        const given =
          spec.name === UNET_INPUT.midBlockAdditionalResidual ? mid : down?.[names.indexOf(spec.name)];
        feeds[spec.name] = given ?? this.zerosFor(spec.name, spec.shape, inputs.sample);
      }
    }
    return this.session.run(feeds, options.signal ? { signal: options.signal } : {});
  }

  /** noise_pred [B, out_channels, H, W]. */
  async forward(inputs: UNetRunInputs): Promise<HostTensor<"float32">> {
    return float32Output(await this.run(inputs), UNET_OUTPUT);
  }

  async release(): Promise<void> {
    await this.onRelease();
  }

  /** Zeros in place of a residual no ControlNet produced this step (same shape the skip has). */
  private zerosFor(name: string, shape: readonly (number | string)[], sample: HostTensor): HostTensor {
    const batch = sample.shape[0] ?? 1;
    let [h, w] = [sample.shape[2] ?? 1, sample.shape[3] ?? 1];
    const level = Number(/^height_(\d+)$/.exec(String(shape[2]))?.[1] ?? 0);
    const p = this.config.downsample_padding;
    // Downsample2D: 3x3 conv, stride 2, padding p (p = 0 pads bottom/right by one).
    const down = (n: number): number =>
      p === 0 ? Math.floor((n - 2) / 2) + 1 : Math.floor((n + 2 * p - 3) / 2) + 1;
    for (let l = 0; l < level; l++) [h, w] = [down(h), down(w)];
    const channels = Number(shape[1]);
    if (!Number.isInteger(channels)) throw new InvalidArgumentError(name, "a static channel count", shape[1]);
    return tensor("float32", [batch, channels, h, w]);
  }
}

/** Builds, writes (or reuses) and opens a UNet; see UNetLoadOptions. */
export async function loadUNet2DConditionModel(
  source: UNetSource,
  options: UNetLoadOptions = {},
): Promise<UNet2DConditionModelRunner> {
  const { config, store, weightsId, configName } = await resolveModelSource(
    source,
    "unet/config.json",
    readUNet2DConditionModelConfig,
  );
  const g = newGraph("unet");
  const w = WeightScope.bind(g, store);
  const built = buildUNet2DConditionModel(w, config, {
    configFile: configName,
    residuals: options.residuals ?? false,
    intermediates: options.intermediates ?? false,
    ...(options.crossFrame ? { crossFrame: options.crossFrame } : {}),
  });
  const compiled = await compileGraph(g, "unet", weightsId, options);
  return new UNet2DConditionModelRunner(
    compiled.session,
    config,
    built.inputs.filter(isResidualInput),
    compiled.modelPath,
    compiled.reused,
    () => compiled.release(),
    options.crossFrame,
  );
}
