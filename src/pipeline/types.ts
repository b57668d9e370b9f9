/**
 * What the pipelines need from each model, as small structural interfaces. The ONNX-backed runners in
 * `src/models/*` satisfy them; tests and other backends can supply their own. The UNet and ControlNet
 * interfaces are defined in src/models/model-interfaces.ts (the models implement them) and re-exported.
 */
import type { ControlNet, DenoisingUNet } from "../models/model-interfaces.js";
import type { Image } from "../image.js";
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

/**
 * A T2I-Adapter as the video engine uses it (./t2i-adapter.ts videoAdapter): features of a batch of
 * control images, computed once per batch (they do not depend on the step).
 */
export interface VideoAdapter {
  /** Control images are taken at the latent size times this (diffusers T2IAdapter.downscale_factor). */
  readonly downscaleFactor: number;
  /** [n, 3, H, W] in [0, 1] -> one feature [n, C_l, h_l, w_l] per UNet down block (unscaled). */
  features(
    images: HostTensor<"float32">,
    options?: { signal?: AbortSignal },
  ): Promise<HostTensor<"float32">[]>;
}

/** An IP-Adapter as the video engine uses it (./ip-adapter.ts): the UNet conditioned on reference images. */
export interface VideoIpAdapter {
  /** The UNet with `images`' image term at ip scale `scale`, for [uncond..., cond...] batches when `cfg`. */
  adapt(
    images: readonly Image[],
    scale: number,
    cfg: boolean,
    options?: { signal?: AbortSignal },
  ): Promise<DenoisingUNet>;
}

/**
 * A ControlNet as the video engine takes it: by default it reads one RGB map per frame; a net that
 * reads several (Uni-ControlNet's local adapter: its chosen conditions stacked into 21 channels) says
 * how many and stacks them itself.
 */
export type VideoControlNet = ControlNet & {
  /** (optional, default 1) control maps of each frame this net reads. */
  readonly maps?: number;
  /**
   * (optional) the net's condition input for a batch: each slot's `maps` maps (output size
   * `size`) -> [n, C, H, W] in [0, 1].
   */
  condition?(
    slots: readonly (readonly Image[])[],
    size: { readonly width: number; readonly height: number },
  ): Promise<HostTensor<"float32">>;
};

/**
 * A global (content) adapter as the video engine uses it (Uni-ControlNet's): extra context tokens
 * from reference images, appended to every prompt embedding row of a batch.
 */
export interface VideoGlobalAdapter {
  /**
   * `embeds` ([rows, L, C]: [uncond x n, cond x n] when `cfg`, else cond x n) with the tokens of
   * `references` appended (no references: the adapter's "no content" tokens) -> [rows, L + K, C].
   */
  extend(
    embeds: HostTensor<"float32">,
    references: readonly Image[] | undefined,
    cfg: boolean,
    options?: { signal?: AbortSignal },
  ): Promise<HostTensor<"float32">>;
}

/** The components the video engine (src/engine/generate-video.ts) runs on. */
export interface VideoComponents {
  readonly tokenizer: PromptTokenizer;
  readonly textEncoder: TextEncoder;
  /** Built with the attention method's cross-frame setting (see StableDiffusionPipeline.load). */
  readonly unet: DenoisingUNet;
  readonly controlnets: readonly VideoControlNet[];
  /** (optional) a global (content) adapter: context tokens from the batch's reference images. */
  readonly globalAdapter?: VideoGlobalAdapter;
  /** (optional) a T2I-Adapter: one more control, after the ControlNets (the UNet takes its features). */
  readonly adapter?: VideoAdapter;
  /** (optional) an IP-Adapter (the UNet was built with its inputs: zeros until a reference is given). */
  readonly ipAdapter?: VideoIpAdapter;
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
