/**
 * T2I-Adapter in the image pipeline, as diffusers 0.26.3 StableDiffusionAdapterPipeline: the adapter
 * runs once on the control image (values in [0, 1]; a 1-channel adapter gets PIL's convert("L") luma),
 * its features are multiplied by adapter_conditioning_scale and given to every UNet call as
 * `downIntrablockAdditionalResiduals`, repeated over the call's batch ([uncond, cond] both get them).
 */
import { ConfigError, InvalidArgumentError } from "../errors.js";
import type { DenoisingUNet, UNetInputs } from "../models/model-interfaces.js";
import { type T2IAdapterRunner, adapterResiduals } from "../models/t2i-adapter/runner.js";
import type { UNet2DConditionModelRunner } from "../models/unet/runner.js";
import type { VideoAdapter } from "./types.js";
import { type HostTensor, shapeToString, tensor } from "../tensor.js";

/** A control image for the loaded T2I-Adapter. */
export interface AdapterControl {
  /** [1, 3, H, W] (or [1, in_channels, H, W]) in [0, 1] at the output size. */
  readonly image: HostTensor<"float32">;
  /** (optional, default 1) diffusers adapter_conditioning_scale. */
  readonly scale?: number;
}

/** The control image with the adapter's channel count: RGB -> luma (PIL "L": 299/587/114) for 1. */
export function adapterControlImage(image: HostTensor<"float32">, channels: number): HostTensor<"float32"> {
  const [n = 0, c = 0, h = 0, w = 0] = image.shape;
  if (c === channels) return image;
  if (!(c === 3 && channels === 1)) {
    throw new InvalidArgumentError(
      "t2iAdapterControl.image",
      `${channels} channel(s) (the adapter's in_channels) or RGB`,
      shapeToString(image.shape),
    );
  }
  const plane = h * w;
  const out = tensor("float32", [n, 1, h, w]);
  for (let b = 0; b < n; b++) {
    const o = b * 3 * plane;
    for (let i = 0; i < plane; i++) {
      const r = image.data[o + i] ?? 0;
      const g = image.data[o + plane + i] ?? 0;
      const bl = image.data[o + 2 * plane + i] ?? 0;
      out.data[b * plane + i] = (r * 299 + g * 587 + bl * 114) / 1000;
    }
  }
  return out;
}

/** The adapter's block channels must be the UNet's: one feature per down block. */
function checkAdapterChannels(unet: UNet2DConditionModelRunner, adapter: T2IAdapterRunner): void {
  const blocks = unet.config.block_out_channels;
  if (adapter.config.channels.join() !== blocks.join()) {
    throw new ConfigError(
      "adapter config.json",
      "channels",
      `the UNet's block_out_channels [${blocks.join(", ")}] (one feature per down block)`,
      adapter.config.channels,
      { hint: "use a T2I-Adapter trained for this base model" },
    );
  }
}

/** The adapter as the video engine takes it (features per batch of frames; the engine scales them). */
export function videoAdapter(unet: UNet2DConditionModelRunner, adapter: T2IAdapterRunner): VideoAdapter {
  checkAdapterChannels(unet, adapter);
  return {
    downscaleFactor: adapter.downscaleFactor,
    features: (images, options = {}) =>
      adapter.forward(adapterControlImage(images, adapter.config.in_channels), options),
  };
}

/** `unet` with the adapter's features for `control` added in every call. */
export async function adaptedUNet(
  unet: UNet2DConditionModelRunner,
  adapter: T2IAdapterRunner,
  control: AdapterControl,
  options: { signal?: AbortSignal } = {},
): Promise<DenoisingUNet> {
  const scale = control.scale ?? 1;
  if (!(Number.isFinite(scale) && scale >= 0))
    throw new InvalidArgumentError("t2iAdapterControl.scale", "a number >= 0", scale);
  checkAdapterChannels(unet, adapter);
  const image = adapterControlImage(control.image, adapter.config.in_channels);
  const features = await adapter.forward(image, options);
  const perBatch = new Map<number, HostTensor<"float32">[]>();
  const size = (t: HostTensor | undefined): string => (t?.shape.slice(2) ?? []).join("x");
  const residuals = (sample: HostTensor): HostTensor<"float32">[] => {
    if (size(sample) !== size(features[0])) {
      throw new InvalidArgumentError(
        "t2iAdapterControl.image",
        `the latent size ${size(sample)} times the adapter's downscale_factor ${adapter.downscaleFactor}`,
        shapeToString(image.shape),
      );
    }
    const batch = sample.shape[0] ?? 1;
    const known = perBatch.get(batch);
    if (known) return known;
    const made = adapterResiduals(features, scale, Math.max(1, Math.round(batch / (image.shape[0] ?? 1))));
    perBatch.set(batch, made);
    return made;
  };
  return {
    guidanceEmbeddingDim: unet.guidanceEmbeddingDim,
    forward: (inputs: UNetInputs) =>
      unet.forward({ ...inputs, downIntrablockAdditionalResiduals: residuals(inputs.sample) }),
  };
}
