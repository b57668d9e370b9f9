/**
 * What the pipelines call on the denoising models (the UNet and the ControlNets), as small
 * structural interfaces. They live with the models because the runners here implement them and
 * MultiControlNetModel combines them; src/pipeline/types.ts re-exports them beside the other
 * pipeline-facing interfaces. Tests and other backends can supply their own implementations.
 */
import type { HostTensor } from "../tensor.js";

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
}

export interface DenoisingUNet {
  /**
   * (optional) time_cond_proj_dim of an LCM-distilled UNet: the guidance scale enters as an
   * embedding of this width (timestepCond) instead of classifier-free guidance.
   */
  readonly guidanceEmbeddingDim?: number | undefined;
  forward(inputs: UNetInputs): Promise<HostTensor<"float32">>;
}

export interface ControlNetInputs {
  readonly sample: HostTensor<"float32">;
  readonly timestep: HostTensor<"float32">;
  readonly encoderHiddenStates: HostTensor<"float32">;
  /** The control image in [0, 1], [batch, 3, H, W]. */
  readonly controlnetCond: HostTensor<"float32">;
  readonly conditioningScale: number;
}

export interface ControlNetOutputs {
  readonly downBlockResSamples: readonly HostTensor<"float32">[];
  readonly midBlockResSample: HostTensor<"float32">;
}

export interface ControlNet {
  forward(inputs: ControlNetInputs): Promise<ControlNetOutputs>;
}
