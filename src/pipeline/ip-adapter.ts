/**
 * IP-Adapter in the pipelines, as diffusers 0.26.3 StableDiffusionPipeline with `load_ip_adapter`:
 * the reference image goes through the CLIP image encoder (`encode_image`: CLIPImageProcessor, then
 * image_embeds for the plain adapter, hidden_states[-2] for "plus"), the negative image embedding of
 * classifier-free guidance is `zeros_like(image_embeds)` (plain; its tokens are LayerNorm(proj.bias),
 * not zero) or the encoder's hidden_states[-2] on zero pixel values (plus), the adapter turns
 * [uncond, cond] into every cross-attention's ip keys/values once (they do not depend on the step),
 * and every UNet call gets them laid out like its batch: [uncond x n, cond x n] with guidance,
 * [cond x n] without. Several reference images of one adapter are concatenated along the token axis.
 *
 *   const ip = await IpAdapterConditioner.load(unet, { file: "ip-adapter_sd15.safetensors" });
 *   const conditioning = await ip.condition([referenceImage], 0.6);
 *   const unetWithImage = ipAdaptedUNet(unet, conditioning, { cfg: true });
 */
import { stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { FileNotFoundError, InvalidArgumentError } from "../errors.js";
import type { Image } from "../image.js";
import { ClipVisionRunner } from "../models/clip-vision/clip-vision-model.js";
import { clipPixelValues } from "../models/clip-vision/preprocess.js";
import type { ModelLoadOptions } from "../models/compiled-graph.js";
import { IpAdapterRunner } from "../models/ip-adapter/runner.js";
import type { DenoisingUNet, UNetInputs } from "../models/model-interfaces.js";
import type { UNet2DConditionModelRunner } from "../models/unet/runner.js";
import { type HostTensor, tensor } from "../tensor.js";
import type { VideoIpAdapter } from "./types.js";

/** Which IP-Adapter to load (the CLI's --ip-adapter / --image-encoder). */
export interface IpAdapterSetting {
  /** The published adapter file (ip-adapter_sd15.safetensors, ip-adapter-plus_sd15.safetensors, or their .bin). */
  readonly file: string;
  /**
   * (optional) the CLIPVisionModelWithProjection folder (config.json + model.safetensors); default
   * `image_encoder/` beside the file (h94/IP-Adapter's `models/image_encoder` layout).
   */
  readonly imageEncoder?: string;
}

/** One row's ip keys/values by UNet input name ([1, tokens, inner] each, the ip scale in the values). */
export type IpKeyValues = Readonly<Record<string, HostTensor<"float32">>>;

/** The conditioning of one reference (image set): the CFG uncond and cond rows. */
export interface IpConditioning {
  readonly uncond: IpKeyValues;
  readonly cond: IpKeyValues;
}

/** [n, ...] row `i` of a tensor as [1, ...]. */
function row(t: HostTensor<"float32">, i: number): HostTensor<"float32"> {
  const size = t.data.length / (t.shape[0] ?? 1);
  return tensor("float32", [1, ...t.shape.slice(1)], t.data.slice(i * size, (i + 1) * size));
}

/** [n, ...] tensors stacked along a new axis 1 -> [1, n, ...] (several images of one adapter). */
function stackImages(t: HostTensor<"float32">): HostTensor<"float32"> {
  return tensor("float32", [1, ...t.shape], t.data);
}

/** The UNet feeds for a batch whose rows are `rows` (e.g. [uncond, uncond, cond, cond]). */
export function ipAdapterFeeds(rows: readonly IpKeyValues[]): Record<string, HostTensor<"float32">> {
  const first = rows[0];
  if (first === undefined) throw new InvalidArgumentError("rows", "at least one batch row", 0);
  const out: Record<string, HostTensor<"float32">> = {};
  for (const [name, t] of Object.entries(first)) {
    const parts = rows.map((r) => r[name]);
    const size = t.data.length;
    const data = new Float32Array(size * rows.length);
    parts.forEach((p, i) => {
      if (p === undefined || p.data.length !== size)
        throw new InvalidArgumentError(`rows[${i}]`, `ip keys/values shaped like row 0 (${name})`, p?.shape);
      data.set(p.data, i * size);
    });
    out[name] = tensor("float32", [rows.length, ...t.shape.slice(1)], data);
  }
  return out;
}

/**
 * `unet` with the image term of `conditioning` in every call: with `cfg` the batch is [uncond x n,
 * cond x n], else [cond x n] (n = batch / 2 or batch). The feeds are built once per batch size.
 */
export function ipAdaptedUNet(
  unet: UNet2DConditionModelRunner,
  conditioning: IpConditioning,
  options: { readonly cfg: boolean; readonly base?: DenoisingUNet },
): DenoisingUNet {
  const perBatch = new Map<number, Record<string, HostTensor<"float32">>>();
  const feeds = (batch: number): Record<string, HostTensor<"float32">> => {
    const known = perBatch.get(batch);
    if (known) return known;
    if (options.cfg && batch % 2 !== 0)
      throw new InvalidArgumentError("sample", "an even batch [uncond..., cond...] with guidance", batch);
    const half = options.cfg ? batch / 2 : 0;
    const rows = Array.from({ length: batch }, (_, i) =>
      i < half ? conditioning.uncond : conditioning.cond,
    );
    const made = ipAdapterFeeds(rows);
    perBatch.set(batch, made);
    return made;
  };
  return {
    guidanceEmbeddingDim: unet.guidanceEmbeddingDim,
    forward: (inputs: UNetInputs) =>
      unet.forward({ ...inputs, ipAdapterKeyValues: feeds(inputs.sample.shape[0] ?? 1) }),
  };
}

/** The IP-Adapter and its image encoder, loaded for one UNet (built with `ipAdapter: true`). */
export class IpAdapterConditioner {
  private constructor(
    readonly adapter: IpAdapterRunner,
    readonly encoder: ClipVisionRunner,
  ) {}

  /** Loads the adapter file and the image encoder; checks the encoder's output fits the adapter. */
  static async load(
    unet: UNet2DConditionModelRunner,
    setting: IpAdapterSetting,
    options: ModelLoadOptions = {},
  ): Promise<IpAdapterConditioner> {
    if ((await stat(setting.file).catch(() => undefined))?.isFile() !== true)
      throw new FileNotFoundError(setting.file, "IP-Adapter file (--ip-adapter)");
    const encoderDir = setting.imageEncoder ?? join(dirname(setting.file), "image_encoder");
    if ((await stat(join(encoderDir, "config.json")).catch(() => undefined)) === undefined) {
      throw new FileNotFoundError(encoderDir, "CLIP image encoder folder (config.json + model.safetensors)", {
        hint:
          setting.imageEncoder === undefined
            ? "pass --image-encoder <dir> (IP-Adapter SD1.5 files use h94/IP-Adapter's models/image_encoder, OpenCLIP ViT-H/14)"
            : "the folder needs CLIPVisionModelWithProjection's config.json and model.safetensors",
      });
    }
    const adapter = await IpAdapterRunner.load(setting.file, unet, options);
    let encoder: ClipVisionRunner;
    try {
      encoder = await ClipVisionRunner.load(encoderDir, options);
    } catch (error) {
      await adapter.release();
      throw error;
    }
    const c = encoder.config;
    const have = adapter.kind === "plain" ? c.projection_dim : c.hidden_size;
    if (have !== adapter.layout.dims.embedDim) {
      await Promise.all([adapter.release(), encoder.release()]);
      throw new InvalidArgumentError(
        "--image-encoder",
        `an encoder whose ${adapter.kind === "plain" ? "projection_dim" : "hidden_size"} is ${adapter.layout.dims.embedDim} (what ${setting.file} takes)`,
        have,
        { hint: "IP-Adapter SD1.5 files take OpenCLIP ViT-H/14 (h94/IP-Adapter models/image_encoder)" },
      );
    }
    return new IpAdapterConditioner(adapter, encoder);
  }

  get kind(): "plain" | "plus" {
    return this.adapter.kind;
  }

  /**
   * diffusers prepare_ip_adapter_image_embeds for one adapter: [1, n, D] (plain: image_embeds) or
   * [1, n, S, E] (plus: hidden_states[-2]) for the n reference images, and the uncond of the same shape.
   */
  async imageEmbeds(
    images: readonly Image[],
    options: { signal?: AbortSignal } = {},
  ): Promise<{ readonly uncond: HostTensor<"float32">; readonly cond: HostTensor<"float32"> }> {
    if (images.length === 0) throw new InvalidArgumentError("images", "at least one reference image", 0);
    const pixels = clipPixelValues(images, this.encoder.preprocessor);
    const out = await this.encoder.encode(pixels, options);
    if (this.kind === "plain") {
      const cond = stackImages(out.imageEmbeds);
      return { cond, uncond: tensor("float32", cond.shape) };
    }
    const zeros = await this.encoder.encode(tensor("float32", pixels.shape), options);
    return {
      cond: stackImages(out.penultimateHiddenState),
      uncond: stackImages(zeros.penultimateHiddenState),
    };
  }

  /** The uncond and cond ip keys/values of `images` at ip scale `scale` (diffusers set_ip_adapter_scale). */
  async condition(
    images: readonly Image[],
    scale = 1,
    options: { signal?: AbortSignal } = {},
  ): Promise<IpConditioning> {
    const { uncond, cond } = await this.imageEmbeds(images, options);
    const both = tensor(
      "float32",
      [2, ...cond.shape.slice(1)],
      new Float32Array([...uncond.data, ...cond.data]),
    );
    const kv = await this.adapter.keyValues(both, scale, options);
    const pick = (i: number): IpKeyValues =>
      Object.fromEntries(Object.entries(kv).map(([k, t]) => [k, row(t, i)]));
    return { uncond: pick(0), cond: pick(1) };
  }

  async release(): Promise<void> {
    await Promise.all([this.adapter.release(), this.encoder.release()]);
  }
}

/** The loaded adapter as the video engine takes it: a UNet conditioned on each batch's references. */
export function videoIpAdapter(unet: UNet2DConditionModelRunner, ip: IpAdapterConditioner): VideoIpAdapter {
  return {
    adapt: async (images, scale, cfg, options = {}) =>
      ipAdaptedUNet(unet, await ip.condition(images, scale, options), { cfg }),
  };
}

/**
 * For the video engine: loads the adapter and encoder for `unet` (built with `ipAdapter: true`) and
 * returns the conditioning of each reference image set (one per prompt / slot), at `scale`.
 */
export async function loadIpAdapterConditioning(
  unet: UNet2DConditionModelRunner,
  setting: IpAdapterSetting,
  references: readonly (readonly Image[])[],
  options: ModelLoadOptions & { readonly scale?: number } = {},
): Promise<IpConditioning[]> {
  const { scale = 1, ...load } = options;
  const ip = await IpAdapterConditioner.load(unet, setting, load);
  try {
    const out: IpConditioning[] = [];
    for (const images of references)
      out.push(await ip.condition(images, scale, load.signal ? { signal: load.signal } : {}));
    return out;
  } finally {
    await ip.release();
  }
}
