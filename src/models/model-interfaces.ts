/**
 * What the pipelines call on the denoising models (the UNet and the ControlNets), as small
 * structural interfaces. They live with the models because the runners here implement them and
 * MultiControlNetModel combines them; src/pipeline/types.ts re-exports them beside the other
 * pipeline-facing interfaces. Tests and other backends can supply their own implementations.
 */
import type { HostTensor } from "../tensor.js";
import type { AnchorAttentionIO } from "./anchor-attention.js";

export interface UNetInputs {
  readonly sample: HostTensor<"float32">;
  /** One timestep per batch item (float32: Euler-family timesteps are fractional). */
  readonly timestep: HostTensor<"float32">;
  readonly encoderHiddenStates: HostTensor<"float32">;
  /** (optional) [B, time_cond_proj_dim]: the guidance embedding of an LCM-distilled UNet. */
  readonly timestepCond?: HostTensor<"float32">;
  /** Both residual fields or neither (neither = no ControlNet this step). */
  readonly downBlockAdditionalResiduals?: readonly HostTensor<"float32">[];
  readonly midBlockAdditionalResidual?: HostTensor<"float32">;
  /** (optional) cached anchor keys/values and frames to record (a model with `anchorCache` only). */
  readonly anchorAttention?: AnchorAttentionIO;
}

export interface DenoisingUNet {
  /**
   * (optional) time_cond_proj_dim of an LCM-distilled UNet: the guidance scale enters as an
   * embedding of this width (timestepCond) instead of classifier-free guidance.
   */
  readonly guidanceEmbeddingDim?: number | undefined;
  /** (optional) true when the model takes `anchorAttention` (cross-frame attention with the anchor cache). */
  readonly anchorCache?: boolean;
  forward(inputs: UNetInputs): Promise<HostTensor<"float32">>;
}

export interface ControlNetInputs {
  readonly sample: HostTensor<"float32">;
  readonly timestep: HostTensor<"float32">;
  readonly encoderHiddenStates: HostTensor<"float32">;
  /** The control image in [0, 1], [batch, 3, H, W]. */
  readonly controlnetCond: HostTensor<"float32">;
  readonly conditioningScale: number;
  /** (optional) cached anchor keys/values and frames to record (a model with `anchorCache` only). */
  readonly anchorAttention?: AnchorAttentionIO;
}

export interface ControlNetOutputs {
  readonly downBlockResSamples: readonly HostTensor<"float32">[];
  readonly midBlockResSample: HostTensor<"float32">;
}

export interface ControlNet {
  /** (optional) true when the model takes `anchorAttention` (cross-frame attention with the anchor cache). */
  readonly anchorCache?: boolean;
  forward(inputs: ControlNetInputs): Promise<ControlNetOutputs>;
}
