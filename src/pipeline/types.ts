/**
 * What the pipelines need from each model, as small structural interfaces. The ONNX-backed runners in
 * `src/models/*` satisfy them; tests and other backends can supply their own. The UNet and ControlNet
 * interfaces are defined in src/models/model-interfaces.ts (the models implement them) and re-exported.
 */
import type { ControlNet, DenoisingUNet } from "../models/model-interfaces.js";
import type { Scheduler } from "../schedulers/scheduler.js";
import type { HostTensor } from "../tensor.js";
import type { LatentEncoder } from "./img2img.js";

export type {
  ControlNet,
  ControlNetInputs,
  ControlNetOutputs,
  DenoisingUNet,
  UNetInputs,
} from "../models/model-interfaces.js";

export interface PromptTokenizer {
  /** Token ids padded/truncated to the model length: int64 [batch, 77]. */
  tokenize(prompts: readonly string[]): HostTensor<"int64">;
}

export interface TextEncoder {
  /** last_hidden_state (or the clip-skip layer) [batch, 77, hidden]. */
  encode(
    inputIds: HostTensor<"int64">,
    options?: { readonly clipSkip?: number },
  ): Promise<HostTensor<"float32">>;
}

export interface LatentDecoder {
  /** VAE config scaling_factor: latents = encode(x) * scaling_factor. */
  readonly scalingFactor: number;
  /** Latents already divided by scaling_factor -> image in [-1, 1]. */
  decode(latents: HostTensor<"float32">): Promise<HostTensor<"float32">>;
}

/** The components the video engine (src/engine/generate-video.ts) runs on. */
export interface VideoComponents {
  readonly tokenizer: PromptTokenizer;
  readonly textEncoder: TextEncoder;
  /** Built with the attention method's cross-frame setting (see StableDiffusionPipeline.load). */
  readonly unet: DenoisingUNet;
  readonly controlnets: readonly ControlNet[];
  readonly vae: LatentDecoder;
  /** Needed by methods that start frames from an image (img2img). */
  readonly encoder?: LatentEncoder;
  /** A fresh scheduler (one per batch: schedulers hold per-run state). */
  readonly makeScheduler: () => Scheduler;
  readonly vaeScaleFactor: number;
  readonly latentChannels: number;
  /**
   * (optional) A1111-syntax encoding (./prompt-weighting.ts encodePromptsWeighted): the negative and
   * each prompt as [1, 77 * k, C] with one k; needed for `promptSyntax: "a1111"`.
   */
  readonly encodeWeightedPrompts?: (
    prompts: readonly string[],
    negative: string,
    clipSkip?: number,
  ) => Promise<{ readonly uncond: HostTensor<"float32">; readonly conds: readonly HostTensor<"float32">[] }>;
}
