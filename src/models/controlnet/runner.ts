/**
 * The ControlNet as an ONNX Runtime session: `ControlNetModel.load(dir | {config, store})` builds
 * the graph (build.ts) and compiles it (../model-runner.ts: written into the model cache, opened as a
 * session); `forward` returns the scaled residuals for the UNet. Implements the pipeline's ControlNet.
 */
import { classLabelsFeed } from "../unet/class-embedding.js";
import { InvalidArgumentError } from "../../errors.js";
import { WeightScope } from "../../nn/weights.js";
import { type HostTensor, shapeToString, tensor } from "../../tensor.js";
import { type AnchorAttentionIO, runWithAnchors } from "../anchor-attention.js";
import type { ModelLoadOptions } from "../compiled-graph.js";
import { type ModelSource, resolveModelSource } from "../component-source.js";
import type { ControlNet, ControlNetOutputs } from "../model-interfaces.js";
import {
  ModelRunner,
  RunnerGraph,
  float32Output,
  newGraph,
  signalOption,
  timestepFeed,
} from "../model-runner.js";
import type { CrossFrameSetting } from "../unet/build.js";
import { CONTROLNET_INPUT, MID_BLOCK_RES_SAMPLE, buildControlNetModel, downResSampleName } from "./build.js";
import { type ControlNetModelConfig, parseControlNetModelConfig } from "./config.js";

/** A diffusers `controlnet/` folder (config.json + diffusion_pytorch_model.safetensors), or a config and a weight store. */
export type ControlNetSource = ModelSource<ControlNetModelConfig>;

export interface ControlNetLoadOptions extends ModelLoadOptions {
  /** (optional, default false) diffusers guess_mode scaling (logspace(-1, 0) per residual). */
  readonly guessMode?: boolean;
  /**
   * (optional, default false) with global_pool_conditions, residuals come out as their spatial means
   * expanded to the residual sizes (what a pipeline feeds the UNet) rather than [B, C, 1, 1].
   */
  readonly broadcastPooled?: boolean;
  /** (optional, default false) also output `intermediate.*` tensors (see `run`). */
  readonly intermediates?: boolean;
  /** (optional) cross-frame attention in every self-attention (as the UNet's). */
  readonly crossFrame?: CrossFrameSetting;
}

export interface ControlNetRunInputs {
  readonly sample: HostTensor;
  /** A number, or a tensor of shape [], [1] or [B] (broadcast to [B]). */
  readonly timestep: HostTensor | number;
  readonly encoderHiddenStates: HostTensor;
  /** [B, conditioning_channels, H * f, W * f] in [0, 1], f = 2 ** (len(conditioning_embedding_out_channels) - 1). */
  readonly controlnetCond: HostTensor;
  /** (diffusers controlnet_conditioning_scale) multiplies every residual. */
  readonly conditioningScale: number;
  /** Cached anchor keys/values and frames to record (a ControlNet loaded with crossFrame.anchorCache). */
  readonly anchorAttention?: AnchorAttentionIO;
  /** diffusers class_labels, required by a config with class embeddings (unet/class-embedding.ts). */
  readonly classLabels?: HostTensor;
}

export class ControlNetModelRunner extends ModelRunner implements ControlNet {
  constructor(
    graph: RunnerGraph,
    readonly config: ControlNetModelConfig,
    /** Number of down block residuals. */
    readonly numDownResiduals: number,
    /** True when built with diffusers' guess-mode scaling (logspace(-1, 0) per residual). */
    readonly guessMode = false,
    /** True when the graph takes cached anchor keys/values (src/models/anchor-attention.ts). */
    readonly anchorCache = false,
  ) {
    super("ControlNetModel", [graph]);
  }

  /** The control image's size factor over the latent size. */
  get condScaleFactor(): number {
    return 2 ** (this.config.conditioning_embedding_out_channels.length - 1);
  }

  /** Runs the session and returns every output by name. */
  async run(
    inputs: ControlNetRunInputs,
    options: { signal?: AbortSignal } = {},
  ): Promise<Record<string, HostTensor>> {
    const { sample, controlnetCond: cond } = inputs;
    const [batch = 0, , h = 0, w = 0] = sample.shape;
    const f = this.condScaleFactor;
    const expected = [batch, this.config.conditioning_channels, h * f, w * f];
    if (cond.shape.join() !== expected.join()) {
      throw new InvalidArgumentError(
        "controlnetCond",
        `shape ${shapeToString(expected)} (the latent size times ${f})`,
        shapeToString(cond.shape),
        {
          hint: "resize the control image to the output image size and repeat it for every batch item",
        },
      );
    }
    if (!Number.isFinite(inputs.conditioningScale))
      throw new InvalidArgumentError("conditioningScale", "a finite number", inputs.conditioningScale);
    const feeds: Record<string, HostTensor> = {
      [CONTROLNET_INPUT.sample]: sample,
      [CONTROLNET_INPUT.timestep]: timestepFeed(inputs.timestep, batch),
      [CONTROLNET_INPUT.encoderHiddenStates]: inputs.encoderHiddenStates,
      [CONTROLNET_INPUT.controlnetCond]: cond,
      [CONTROLNET_INPUT.conditioningScale]: tensor("float32", [], Float32Array.of(inputs.conditioningScale)),
    };
    const session = await this.openSession();
    return runWithAnchors(
      this.modelName,
      session,
      { ...feeds, ...classLabelsFeed(session.inputs, inputs.classLabels, this.modelName) },
      inputs.anchorAttention,
      signalOption(options),
    );
  }

  /** The residuals for the UNet (down_block_additional_residuals, mid_block_additional_residual). */
  async forward(inputs: ControlNetRunInputs): Promise<ControlNetOutputs> {
    const out = await this.run(inputs);
    return {
      downBlockResSamples: Array.from({ length: this.numDownResiduals }, (_, i) =>
        float32Output(out, downResSampleName(i)),
      ),
      midBlockResSample: float32Output(out, MID_BLOCK_RES_SAMPLE),
    };
  }
}

/** Builds, writes (or reuses) and opens a ControlNet; see ControlNetLoadOptions. */
export async function loadControlNetModel(
  source: ControlNetSource,
  options: ControlNetLoadOptions = {},
): Promise<ControlNetModelRunner> {
  const { config, store, weightsId, configName } = await resolveModelSource(
    source,
    "controlnet/config.json",
    parseControlNetModelConfig,
  );
  const g = newGraph("controlnet");
  const built = buildControlNetModel(WeightScope.bind(g, store), config, {
    configFile: configName,
    guessMode: options.guessMode ?? false,
    broadcastPooled: options.broadcastPooled ?? false,
    intermediates: options.intermediates ?? false,
    ...(options.crossFrame ? { crossFrame: options.crossFrame } : {}),
  });
  return ModelRunner.opened(
    new ControlNetModelRunner(
      new RunnerGraph("controlnet", g, weightsId, options),
      config,
      built.model.numDownResiduals,
      options.guessMode ?? false,
      options.crossFrame?.anchorCache === true,
    ),
    options,
  );
}
