/**
 * UNetMotionModel (diffusers 0.26.3 models/unets/unet_motion_model.py) as graph-building modules:
 * the UNet2DConditionModel blocks with the MotionAdapter's motion modules run after each layer
 * (through the UNet's `afterLayer` hook), on video latents [B, C, F, H, W].
 *
 * As diffusers' forward: the sample is permuted to [B*F, C, H, W]; the timestep embedding and the
 * encoder hidden states are repeated per frame (repeat_interleave: frames of one video are
 * adjacent); the output goes back to [B, C, F, H, W]. F is read from the sample at run time.
 * `UNetMotionModel.load` (runner.ts) builds, writes and opens it as an ONNX Runtime session.
 */
import { GraphError } from "../../errors.js";
import type { GraphBuilder, Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import type { WeightScope } from "../../nn/weights.js";
import type { UNet2DConditionModelConfig } from "../unet/config.js";
import { UNet2DConditionModel } from "../unet/unet-2d-condition.js";
import type { MotionAdapterConfig } from "./config.js";
import { MotionAdapter } from "./motion-adapter.js";
import type { UNetMotionLoadOptions, UNetMotionModelRunner, UNetMotionSource } from "./runner.js";
import { concatShape } from "./shape-parts.js";
import { checkAdapterFitsUNet, unetMotionConfig } from "./unet-motion-config.js";

export interface UNetMotionForwardInputs {
  /** [B, in_channels, F, H, W]. */
  readonly sample: Value;
  /** [B], any numeric dtype. */
  readonly timestep: Value;
  /** [B, L, cross_attention_dim]. */
  readonly encoderHiddenStates: Value;
  /** ControlNet residuals, one per skip connection, per frame: [B*F, C, h, w]. */
  readonly downBlockAdditionalResiduals?: readonly Value[];
  readonly midBlockAdditionalResidual?: Value;
}

export interface UNetMotionConfigFiles {
  /** Names the UNet config in errors (default "unet/config.json"). */
  readonly unet?: string;
  /** Names the adapter config in errors (default "motion_adapter/config.json"). */
  readonly motionAdapter?: string;
}

export class UNetMotionModel {
  /** The UNet part, built from `unetMotionConfig(unetConfig)`. */
  readonly unet: UNet2DConditionModel;
  readonly motion: MotionAdapter;
  readonly unetConfig: UNet2DConditionModelConfig;

  /** Builds and opens a UNetMotionModel as an ONNX Runtime session (see runner.ts). */
  static async load(
    source: UNetMotionSource,
    options: UNetMotionLoadOptions = {},
  ): Promise<UNetMotionModelRunner> {
    const { loadUNetMotionModel } = await import("./runner.js");
    return loadUNetMotionModel(source, options);
  }

  /** `unetScope` binds the UNet's weights, `adapterScope` the motion adapter's (both on one graph). */
  constructor(
    unetScope: WeightScope,
    adapterScope: WeightScope,
    unetConfig: UNet2DConditionModelConfig,
    readonly adapterConfig: MotionAdapterConfig,
    files: UNetMotionConfigFiles = {},
  ) {
    if (unetScope.graph !== adapterScope.graph) {
      throw new GraphError(
        "UNetMotionModel",
        "the UNet and motion adapter scopes must bind to the same graph",
      );
    }
    const unetFile = files.unet ?? "unet/config.json";
    checkAdapterFitsUNet(files.motionAdapter ?? "motion_adapter/config.json", adapterConfig, unetConfig);
    this.unetConfig = unetMotionConfig(unetConfig, unetFile);
    this.unet = new UNet2DConditionModel(unetScope, this.unetConfig, unetFile);
    this.motion = new MotionAdapter(adapterScope, adapterConfig, {
      normNumGroups: this.unet.spec.shared.resnetGroups,
      upBlockNormNumGroups: (block) =>
        this.unetConfig.up_block_types[block]?.includes("CrossAttn") === false ? 32 : undefined,
    });
  }

  get graph(): GraphBuilder {
    return this.unet.graph;
  }

  /** noise_pred [B, out_channels, F, H, W]. */
  forward(inputs: UNetMotionForwardInputs): Value {
    const g = this.graph;
    const { sample, timestep, encoderHiddenStates: ehs } = inputs;
    if (sample.rank !== 5 || timestep.rank !== 1 || ehs.rank !== 3) {
      throw new GraphError(
        "UNetMotionModel",
        `expected sample [B, C, F, H, W], timestep [B] and encoder_hidden_states [B, L, D] but got ranks ${sample.rank}, ${timestep.rank} and ${ehs.rank}`,
      );
    }
    const width = ehs.shape[2];
    if (typeof width !== "number")
      throw new GraphError("UNetMotionModel", `encoder_hidden_states ${ehs.name} needs a static last dim`);
    const frames = op.Shape(g, sample, { start: 2, end: 3 }); // [F]
    const perFrame = g.scope("per_frame", () => ({
      // [B] -> [B*F]: the sinusoid is per element, so this equals diffusers' emb.repeat_interleave(F).
      timestep: op.Reshape(
        g,
        op.Expand(g, op.Unsqueeze(g, timestep, [1]), concatShape(g, [[1], frames])),
        [-1],
      ),
      // [B, L, D] -> [B, F, L, D] -> [B*F, L, D] (repeat_interleave).
      encoderHiddenStates: op.Reshape(
        g,
        op.Flatten(g, op.Expand(g, op.Unsqueeze(g, ehs, [1]), concatShape(g, [[1], frames, [1, 1]])), 2),
        [0, -1, width],
      ),
      // [B, C, F, H, W] -> [B, F, C, H, W] -> [B*F, C, H, W].
      sample: op.Reshape(
        g,
        op.Transpose(g, sample, [0, 2, 1, 3, 4]),
        concatShape(g, [[-1], op.Shape(g, sample, { start: 1, end: 2 }), op.Shape(g, sample, { start: 3 })]),
      ),
    }));
    const noise = this.unet.forward({
      ...perFrame,
      afterLayer: this.motion.afterLayer(frames),
      ...(inputs.downBlockAdditionalResiduals
        ? { downBlockAdditionalResiduals: inputs.downBlockAdditionalResiduals }
        : {}),
      ...(inputs.midBlockAdditionalResidual
        ? { midBlockAdditionalResidual: inputs.midBlockAdditionalResidual }
        : {}),
    });
    return g.scope("per_video", () => {
      const split = op.Reshape(g, noise, concatShape(g, [[-1], frames, op.Shape(g, noise, { start: 1 })]));
      return op.Transpose(g, split, [0, 2, 1, 3, 4]); // [B, C, F, H, W]
    });
  }
}
