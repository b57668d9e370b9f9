/**
 * Uni-ControlNet text-to-image: the demo's algorithm (ShihaoZhaoZSH/Uni-ControlNet `src/test/test.py`
 * over `models/uni_controlnet.py` apply_model and `models/ddim_hacked.py`), with the noise prediction
 * shared with the other pipelines (./denoise.ts predictNoise: the local adapter is a ControlNet there).
 *
 * Per step, as the original:
 *   ctx_c = cat(text(prompt), global_strength * global_adapter(content_embedding))   (77 + K tokens)
 *   ctx_u = cat(text(negative), global_strength * global_adapter(zeros))            (tokens still non-zero)
 *   both branches get THE SAME local maps (local control is not dropped for CFG); the local adapter
 *   sees the same context as the UNet; its 13 residuals are multiplied by local_strength (the
 *   original's `local_control_scales`; the demo's "strength" slider is a no-op there).
 *   e = e_u + s (e_c - e_u); LDM DDIM step (../schedulers/ldm-ddim.ts).
 * With guidance scale exactly 1 the original sampler calls apply_model without global_strength, so
 * the global tokens enter at strength 1 (`effectiveGlobalStrength`); the CFG batch here is
 * [uncond, cond] in one call instead of two calls (same numbers up to float32 summation order).
 */
import { InvalidArgumentError, throwIfAborted } from "../errors.js";
import { type Image, image } from "../image.js";
import type { LongTaskOptions } from "../progress.js";
import { TorchGenerator } from "../random/torch-generator.js";
import { LdmDdimSampler } from "../schedulers/ldm-ddim.js";
import type { NoiseGenerator, Scheduler } from "../schedulers/scheduler.js";
import { type HostTensor, shapeToString, tensor } from "../tensor.js";
import { type UniLocalCondition, UNI_LOCAL_CONDITIONS } from "../models/uni-controlnet/config.js";
import { predictNoise } from "./denoise.js";
import { concatBatch, scale } from "./guidance.js";
import { denormalize } from "./images.js";
import type { ControlNet, DenoisingUNet, LatentDecoder, PromptTokenizer, TextEncoder } from "./types.js";

/** The local maps in channel order (ShihaoZhaoZSH/Uni-ControlNet src/test/test.py). */
export const UNI_LOCAL_CONDITION_ORDER = UNI_LOCAL_CONDITIONS;
export type UniLocalConditionName = UniLocalCondition;

/** What the pipeline needs of a loaded Uni-ControlNet (../models/uni-controlnet/runner.ts satisfies it). */
export interface UniModel {
  readonly unet: DenoisingUNet;
  /** The local adapter as a ControlNet: controlnetCond = stacked maps, conditioningScale = local_strength. */
  readonly localAdapter: ControlNet;
  readonly globalAdapter: {
    tokens(embedding: HostTensor, options?: { signal?: AbortSignal }): Promise<HostTensor<"float32">>;
  };
  readonly config: { readonly local_channels: number; readonly global_adapter: { readonly in_dim: number } };
}

/** The global strength the original sampler applies: 1 when the guidance scale is exactly 1. */
export function effectiveGlobalStrength(globalStrength: number, guidanceScale: number): number {
  return guidanceScale === 1 ? 1 : globalStrength;
}

/** cat(text, strength * tokens) along the tokens: [B, 77, C] + [B, K, C] -> [B, 77 + K, C] (float32). */
export function appendGlobalTokens(
  text: HostTensor<"float32">,
  tokens: HostTensor<"float32">,
  strength: number,
): HostTensor<"float32"> {
  const [b = 0, l = 0, c = 0] = text.shape;
  const [tb = 0, k = 0, tc = 0] = tokens.shape;
  if (text.shape.length !== 3 || tokens.shape.length !== 3 || tb !== b || tc !== c) {
    throw new InvalidArgumentError(
      "global tokens",
      `shape [${b}, K, ${c}] for text ${shapeToString(text.shape)}`,
      shapeToString(tokens.shape),
    );
  }
  const s = Math.fround(strength);
  const out = new Float32Array(b * (l + k) * c);
  for (let i = 0; i < b; i++) {
    out.set(text.data.subarray(i * l * c, (i + 1) * l * c), i * (l + k) * c);
    const base = i * (l + k) * c + l * c;
    for (let j = 0; j < k * c; j++) out[base + j] = Math.fround(s * (tokens.data[i * k * c + j] ?? 0));
  }
  return tensor("float32", [b, l + k, c], out);
}

/**
 * The 77 + K token contexts of both branches: cond gets the content embedding's tokens, uncond those
 * of a zero embedding, both times `globalStrength` (no embedding = zeros in both, as the demo).
 */
export async function uniContexts(
  model: UniModel,
  text: { readonly cond: HostTensor<"float32">; readonly uncond?: HostTensor<"float32"> },
  globalEmbedding: HostTensor | undefined,
  globalStrength: number,
): Promise<{ cond: HostTensor<"float32">; uncond?: HostTensor<"float32"> }> {
  const batch = text.cond.shape[0] ?? 1;
  const d = model.config.global_adapter.in_dim;
  const zeros = tensor("float32", [batch, d]);
  const embedding = globalEmbedding ?? zeros;
  if (embedding.shape.join() !== [batch, d].join()) {
    throw new InvalidArgumentError(
      "globalEmbedding",
      `shape [${batch}, ${d}] (CLIP image features)`,
      shapeToString(embedding.shape),
    );
  }
  const condTokens = await model.globalAdapter.tokens(embedding);
  const cond = appendGlobalTokens(text.cond, condTokens, globalStrength);
  if (text.uncond === undefined) return { cond };
  const uncondTokens = globalEmbedding === undefined ? condTokens : await model.globalAdapter.tokens(zeros);
  return { cond, uncond: appendGlobalTokens(text.uncond, uncondTokens, globalStrength) };
}

export interface UniNoiseInput {
  readonly model: UniModel;
  readonly scheduler: Scheduler;
  /** x_t, [n, C, h, w]. */
  readonly latents: HostTensor<"float32">;
  readonly t: number;
  readonly stepIndex: number;
  readonly numSteps: number;
  /** From `uniContexts` ([n, 77 + K, C] each); uncond needed when guidanceScale > 1. */
  readonly contexts: { readonly cond: HostTensor<"float32">; readonly uncond?: HostTensor<"float32"> };
  /** [n, local_channels, 8h, 8w] in [0, 1]. */
  readonly localConditions: HostTensor<"float32">;
  /** (optional, default 1) multiplies every local residual. */
  readonly localStrength?: number;
  readonly guidanceScale: number;
  readonly trace?: (name: string, value: HostTensor) => void;
  readonly tag?: string;
}

/**
 * One Uni-ControlNet noise prediction (apply_model for both branches and the guidance), through the
 * pipelines' shared predictNoise. The video engine can call it per batch of frames.
 */
export async function predictUniNoise(p: UniNoiseInput): Promise<HostTensor<"float32">> {
  // The original DDIMSampler guides whenever the scale is not 1 (below 1 too), given an uncond context.
  const cfg = p.guidanceScale !== 1;
  if (cfg && p.contexts.uncond === undefined)
    throw new InvalidArgumentError(
      "contexts.uncond",
      "the unconditional context (guidance scale other than 1)",
      undefined,
    );
  const promptEmbeds =
    cfg && p.contexts.uncond ? concatBatch([p.contexts.uncond, p.contexts.cond]) : p.contexts.cond;
  const out = await predictNoise({
    unet: p.model.unet,
    scheduler: p.scheduler,
    latents: p.latents,
    t: p.t,
    stepIndex: p.stepIndex,
    numSteps: p.numSteps,
    promptEmbeds,
    guidanceScale: p.guidanceScale,
    cfg,
    controls: [{ controlnet: p.model.localAdapter, images: p.localConditions, scale: p.localStrength ?? 1 }],
    ...(p.trace ? { trace: p.trace } : {}),
    ...(p.tag ? { tag: p.tag } : {}),
  });
  return out.noisePred;
}

/**
 * Stacks local maps into the adapter input [n, 3 * 7, H, W] in the original channel order. Each map is
 * [n, 3, H, W] or [n, 1, H, W] (replicated x3, as HWC3) in [0, 1]; absent maps are zeros.
 */
export function stackLocalConditions(
  maps: Readonly<Partial<Record<UniLocalConditionName, HostTensor<"float32">>>>,
  size?: { readonly batch: number; readonly height: number; readonly width: number },
): HostTensor<"float32"> {
  for (const name of Object.keys(maps)) {
    if (!(UNI_LOCAL_CONDITION_ORDER as readonly string[]).includes(name)) {
      throw new InvalidArgumentError(
        "local condition",
        `one of ${UNI_LOCAL_CONDITION_ORDER.join(", ")}`,
        name,
      );
    }
  }
  const first = Object.values(maps)[0];
  const n = size?.batch ?? first?.shape[0] ?? 1;
  const h = size?.height ?? first?.shape[2] ?? 0;
  const w = size?.width ?? first?.shape[3] ?? 0;
  const plane = h * w;
  const out = new Float32Array(n * 21 * plane);
  UNI_LOCAL_CONDITION_ORDER.forEach((name, k) => {
    const m = maps[name];
    if (m === undefined) return;
    const ch = m.shape[1] ?? 0;
    if (
      m.shape.length !== 4 ||
      m.shape[0] !== n ||
      (ch !== 1 && ch !== 3) ||
      m.shape[2] !== h ||
      m.shape[3] !== w
    ) {
      throw new InvalidArgumentError(
        `local condition ${name}`,
        `shape [${n}, 3 or 1, ${h}, ${w}]`,
        shapeToString(m.shape),
        {
          hint: "give every map at the output image size (width and height multiples of 64)",
        },
      );
    }
    for (let b = 0; b < n; b++) {
      for (let c = 0; c < 3; c++) {
        const src = m.data.subarray(
          (b * ch + (ch === 1 ? 0 : c)) * plane,
          (b * ch + (ch === 1 ? 0 : c) + 1) * plane,
        );
        out.set(src, (b * 21 + 3 * k + c) * plane);
      }
    }
  });
  return tensor("float32", [n, 21, h, w], out);
}

/** A CLIP image encoder (../models/clip-vision ClipVisionRunner satisfies it): projected image_embeds. */
export interface UniImageEncoder {
  encodeImages(
    images: readonly Image[],
    options?: { signal?: AbortSignal },
  ): Promise<{ readonly imageEmbeds: HostTensor<"float32"> }>;
}

/** R and B swapped: the demo's ContentDetector runs cvtColor(BGR2RGB) on an RGB image. */
export function swapRedBlue(img: Image): Image {
  const c = img.channels;
  if (c < 3) return img;
  const data = Uint8Array.from(img.data);
  for (let i = 0; i < data.length; i += c) {
    const r = data[i] ?? 0;
    data[i] = data[i + 2] ?? 0;
    data[i + 2] = r;
  }
  return image(img.width, img.height, c, data);
}

/**
 * The global (content) embedding of an RGB image: CLIP ViT-L/14 image features, projected and not
 * normalised. `demoColors` (default true) swaps R and B first, as the original demo feeds CLIP.
 */
export async function uniGlobalEmbedding(
  encoder: UniImageEncoder,
  img: Image,
  options: { readonly demoColors?: boolean; readonly signal?: AbortSignal } = {},
): Promise<HostTensor<"float32">> {
  const input = options.demoColors === false ? img : swapRedBlue(img);
  const out = await encoder.encodeImages([input], options.signal ? { signal: options.signal } : {});
  return out.imageEmbeds;
}

export interface UniComponents {
  readonly tokenizer: PromptTokenizer;
  readonly textEncoder: TextEncoder;
  readonly model: UniModel;
  readonly vae: LatentDecoder;
  /** (optional) the checkpoint's alphas_cumprod (LDM schedule otherwise). */
  readonly alphasCumprod?: Float32Array;
  /** (optional, default 8) image size / latent size (the local maps are at 8x the latent size). */
  readonly vaeScaleFactor?: number;
  /** (optional, default 4) */
  readonly latentChannels?: number;
  /** (optional) CLIP ViT-L/14 image encoder, for `globalImage`. */
  readonly imageEncoder?: UniImageEncoder;
}

export interface GenerateUniOptions extends LongTaskOptions {
  /** The prompt; the demo appends ", best quality, extremely detailed" (pass it in the prompt). */
  readonly prompt: string;
  /** (optional, default "") */
  readonly negativePrompt?: string;
  /** [1, 21, H, W] in [0, 1] (see stackLocalConditions), H and W multiples of 64 = 8x the latent size. */
  readonly localConditions: HostTensor<"float32">;
  /** (optional) [1, 768] CLIP ViT-L/14 image features (get_image_features, not normalised); none = zeros. */
  readonly globalEmbedding?: HostTensor;
  /** (optional) the content image instead of `globalEmbedding` (needs `imageEncoder`). */
  readonly globalImage?: Image;
  /** (optional, default true) feed CLIP the content image with R and B swapped, as the demo does. */
  readonly globalImageDemoColors?: boolean;
  /** (optional, default 1) */
  readonly localStrength?: number;
  /** (optional, default 1) */
  readonly globalStrength?: number;
  /** (optional, default 50: the demo's) requested DDIM steps (LDM spacing: ceil(1000 / (1000 // S)) run). */
  readonly steps?: number;
  /** (optional, default 7.5) */
  readonly guidanceScale?: number;
  /** (optional, default 0) DDIM eta. */
  readonly eta?: number;
  /** (optional) torch-compatible seed for x_T (default 0). */
  readonly seed?: number | bigint;
  readonly generator?: NoiseGenerator;
  /** (optional) x_T [1, 4, H/8, W/8] (wins over seed). */
  readonly latents?: HostTensor<"float32">;
  readonly trace?: (name: string, value: HostTensor) => void;
}

export interface GenerateUniResult {
  /** [1, 3, H, W] in [0, 1]. */
  readonly image: HostTensor<"float32">;
  readonly latents: HostTensor<"float32">;
}

/** Text-to-image with Uni-ControlNet local maps and an optional global (content) embedding. */
export async function generateUni(c: UniComponents, o: GenerateUniOptions): Promise<GenerateUniResult> {
  const task = "denoising";
  const trace = o.trace ?? (() => undefined);
  const maps = o.localConditions;
  const [n = 0, ch = 0, H = 0, W = 0] = maps.shape;
  if (
    maps.shape.length !== 4 ||
    n !== 1 ||
    ch !== c.model.config.local_channels ||
    H % 64 !== 0 ||
    W % 64 !== 0 ||
    H === 0 ||
    W === 0
  ) {
    throw new InvalidArgumentError(
      "localConditions",
      `shape [1, ${c.model.config.local_channels}, H, W] with H and W multiples of 64`,
      shapeToString(maps.shape),
    );
  }
  const guidance = o.guidanceScale ?? 7.5;
  const cfg = guidance !== 1;
  const sampler = new LdmDdimSampler({
    ...(c.alphasCumprod ? { alphasCumprod: c.alphasCumprod } : {}),
    eta: o.eta ?? 0,
  });
  sampler.setTimesteps(o.steps ?? 50);
  const generator = o.generator ?? new TorchGenerator(o.seed ?? 0);
  // The adapter's feature extractor works at 8x the latent size (the image size with SD's VAE).
  const shape = [1, c.latentChannels ?? 4, H / 8, W / 8];
  if (o.latents && o.latents.shape.join() !== shape.join())
    throw new InvalidArgumentError(
      "latents",
      `shape ${shapeToString(shape)}`,
      shapeToString(o.latents.shape),
    );

  // 1. Text and global tokens
  const ids = c.tokenizer.tokenize(cfg ? [o.negativePrompt ?? "", o.prompt] : [o.prompt]);
  const text = await c.textEncoder.encode(ids);
  const [uncondText, condText] = cfg
    ? [
        tensor("float32", [1, ...text.shape.slice(1)], text.data.slice(0, text.data.length / 2)),
        tensor("float32", [1, ...text.shape.slice(1)], text.data.slice(text.data.length / 2)),
      ]
    : [undefined, text];
  const gs = effectiveGlobalStrength(o.globalStrength ?? 1, guidance);
  const contexts = await uniContexts(
    c.model,
    { cond: condText, ...(uncondText ? { uncond: uncondText } : {}) },
    o.globalEmbedding,
    gs,
  );
  trace("context_cond", contexts.cond);
  if (contexts.uncond) trace("context_uncond", contexts.uncond);

  // 2. DDIM loop
  let latents = scale(o.latents ?? generator.randn(shape), sampler.initNoiseSigma);
  const timesteps = sampler.timesteps;
  o.onProgress?.({ status: "start", task, total: timesteps.length });
  for (const [i, t] of timesteps.entries()) {
    throwIfAborted(o.signal, task);
    const tag = `step${String(i).padStart(2, "0")}`;
    const eps = await predictUniNoise({
      model: c.model,
      scheduler: sampler,
      latents,
      t,
      stepIndex: i,
      numSteps: timesteps.length,
      contexts,
      localConditions: maps,
      localStrength: o.localStrength ?? 1,
      guidanceScale: guidance,
      trace,
      tag,
    });
    latents = sampler.step(eps, t, latents, { generator }).prevSample;
    trace(`${tag}.latents_out`, latents);
    o.onProgress?.({ status: "progress", task, done: i + 1, total: timesteps.length });
  }
  o.onProgress?.({ status: "done", task });

  // 3. Decode
  throwIfAborted(o.signal, task);
  const raw = await c.vae.decode(scale(latents, 1 / c.vae.scalingFactor));
  return { image: denormalize(raw), latents };
}
