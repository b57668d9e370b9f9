/**
 * A loaded Uni-ControlNet pipeline (./uni-controlnet-load.ts) as the video engine's components: the
 * UNet (with the local residual inputs), the local adapter as the one ControlNet — it reads the chosen
 * local conditions of each frame and stacks them into its 21 channels in Uni-ControlNet's order
 * (absent ones zeros, ./uni-controlnet.ts stackLocalConditions) — and the global adapter as a
 * `VideoGlobalAdapter`: the content tokens of each batch's reference image (CLIP image features,
 * R and B swapped as the demo feeds CLIP) appended to the text context, the zero embedding's tokens
 * for the uncond rows and for "no content", both times global_strength (1 at guidance 1, as the
 * original sampler). The local strength is the ControlNet conditioning scale the engine applies.
 */
import { resizeImage } from "../control/resize.js";
import { InvalidArgumentError } from "../errors.js";
import type { Image } from "../image.js";
import { fromConfig } from "../schedulers/registry.js";
import { type HostTensor, tensor } from "../tensor.js";
import { concatBatch } from "./guidance.js";
import { imageToTensor, toRGB } from "./images.js";
import { vaeLatentEncoder } from "./stable-diffusion.js";
import type { VideoComponents, VideoControlNet, VideoGlobalAdapter } from "./types.js";
import type { UniPipeline } from "./uni-controlnet-load.js";
import {
  type UniLocalConditionName,
  UNI_LOCAL_CONDITION_ORDER,
  appendGlobalTokens,
  effectiveGlobalStrength,
  stackLocalConditions,
  uniGlobalEmbedding,
} from "./uni-controlnet.js";

export interface UniVideoOptions {
  /**
   * The local conditions each frame supplies, in the order the engine's maps come (any subset, no
   * repeats), by their annotator names (src/control/annotators: "depth" is Uni-ControlNet's "midas").
   */
  readonly local: readonly string[];
  /** (optional, default 1) global_strength. */
  readonly globalStrength?: number;
  /** The render's guidance scale (global strength is 1 at exactly 1, as the original). */
  readonly guidanceScale: number;
  /** Scheduler class and config (the model folder's). */
  readonly scheduler: string;
  readonly schedulerConfig: Readonly<Record<string, unknown>>;
}

/** The engine's components over a loaded Uni-ControlNet pipeline. */
export function uniVideoComponents(p: UniPipeline, o: UniVideoOptions): VideoComponents {
  const names = o.local.map((n) => (n === "depth" ? "midas" : n)) as UniLocalConditionName[];
  for (const [i, name] of names.entries()) {
    if (!(UNI_LOCAL_CONDITION_ORDER as readonly string[]).includes(name) || names.indexOf(name) !== i)
      throw new InvalidArgumentError(
        "--local",
        `distinct names among ${UNI_LOCAL_CONDITION_ORDER.join(", ")}`,
        names.join(","),
      );
  }
  const c = p.components;
  const local: VideoControlNet = {
    forward: (inputs) => c.model.localAdapter.forward(inputs),
    maps: names.length,
    condition: async (slots, { width, height }) => {
      // The adapter reads its maps at 8x the latent size (the output size with SD's VAE factor 8).
      const k8 = 8 / (c.vaeScaleFactor ?? 8);
      const size = { batch: slots.length, height: height * k8, width: width * k8 };
      const fit = async (img: Image): Promise<Image> =>
        img.width === size.width && img.height === size.height
          ? img
          : resizeImage(img, { width: size.width, height: size.height, interpolation: "linear" });
      const maps: Partial<Record<UniLocalConditionName, HostTensor<"float32">>> = {};
      for (const [k, name] of names.entries()) {
        const images = await Promise.all(slots.map((s) => fit(toRGB(s[k]!))));
        maps[name] = concatBatch(images.map((img) => imageToTensor(img, "0,1")));
      }
      return stackLocalConditions(maps, size);
    },
  };
  const strength = effectiveGlobalStrength(o.globalStrength ?? 1, o.guidanceScale);
  const d = c.model.config.global_adapter.in_dim;
  let noContent: Promise<HostTensor<"float32">> | undefined;
  const zeroTokens = (): Promise<HostTensor<"float32">> =>
    (noContent ??= c.model.globalAdapter.tokens(tensor("float32", [1, d])));
  const known = new Map<readonly Image[], Promise<HostTensor<"float32">>>();
  const globalAdapter: VideoGlobalAdapter = {
    extend: async (embeds, references, cfg, options = {}) => {
      let tokens = await zeroTokens();
      if (references !== undefined) {
        const encoder = c.imageEncoder;
        if (encoder === undefined)
          throw new InvalidArgumentError("--image-encoder", "a CLIP image encoder for --global", "none", {
            hint: "pass --image-encoder DIR (openai/clip-vit-large-patch14, CLIPVisionModelWithProjection)",
          });
        let made = known.get(references);
        if (made === undefined) {
          const ref = references[0];
          if (ref === undefined) throw new InvalidArgumentError("--global", "a reference image", "none");
          made = uniGlobalEmbedding(encoder, ref, options).then((e) =>
            c.model.globalAdapter.tokens(e, options),
          );
          known.set(references, made);
        }
        tokens = await made;
      }
      const rows = embeds.shape[0] ?? 1;
      const half = cfg ? rows / 2 : 0;
      const uncond = await zeroTokens();
      const perRow = concatBatch(Array.from({ length: rows }, (_, i) => (i < half ? uncond : tokens)));
      return appendGlobalTokens(embeds, perRow, strength);
    },
  };
  return {
    tokenizer: c.tokenizer,
    textEncoder: c.textEncoder,
    unet: c.model.unet,
    controlnets: [local],
    globalAdapter,
    vae: c.vae,
    ...(p.vae ? { encoder: vaeLatentEncoder(p.vae) } : {}),
    makeScheduler: () => fromConfig(o.scheduler, o.schedulerConfig),
    vaeScaleFactor: c.vaeScaleFactor ?? 8,
    latentChannels: c.latentChannels ?? 4,
  };
}
