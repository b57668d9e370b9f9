/**
 * LoRAs on a pipeline (`StableDiffusionPipeline.load({ loras })`): the UNet's and the text encoder's
 * weights are opened (a folder, or the stores of a single-file checkpoint), every LoRA is placed and
 * fused through src/weights/lora, and the models load from the fused stores. As diffusers'
 * `load_lora_weights` + `fuse_lora(lora_scale)`: one scale per file for both models; several files add up.
 * With `live: true` they stay unfused (diffusers without `fuse_lora`, `set_adapters` weights): each
 * file's scale is a model input the returned `live` changes between runs, with no new model.
 */
import type { UNet2DConditionModelConfig } from "../models/unet/config.js";
import type { UNetSource } from "../models/unet/runner.js";
import {
  type ComponentParts,
  type ComponentSource,
  findWeightsFile,
  openWeightsFile,
  resolveComponent,
} from "../models/component-source.js";
import { type LiveLoraScales, type LoraSetting, applyLoras } from "../weights/lora/index.js";

export type { LoraSetting };

export interface LoraTargets {
  /** The UNet as the pipeline would load it: its folder, or a config and store. */
  readonly unet: UNetSource;
  readonly unetConfig: UNet2DConditionModelConfig;
  /** The text encoder: its folder, or its parts. */
  readonly textEncoder: ComponentSource;
}

/** The UNet and text-encoder sources with `loras` fused (one LoraMismatchError for every unfit key). */
export async function withLoras(
  loras: readonly LoraSetting[],
  targets: LoraTargets,
  options: { readonly live?: boolean } = {},
): Promise<{
  readonly unet: Exclude<UNetSource, string>;
  readonly textEncoder: ComponentParts;
  /** With `live`: the scales the models read on every run. */
  readonly live?: LiveLoraScales;
}> {
  const unet =
    typeof targets.unet === "string"
      ? {
          config: targets.unetConfig,
          ...(await openWeightsFile(await findWeightsFile(targets.unet, "diffusers"))),
        }
      : targets.unet;
  const textEncoder = await resolveComponent(targets.textEncoder, "transformers");
  const applied = await applyLoras(
    loras,
    {
      unet: { store: unet.store, weightsId: unet.weightsId ?? null },
      text_encoder: { store: textEncoder.store, weightsId: textEncoder.weightsId },
    },
    options.live === true ? { live: true } : {},
  );
  const fusedUNet = applied.models.unet;
  const fusedText = applied.models.text_encoder;
  return {
    unet: {
      config: unet.config,
      store: fusedUNet?.store ?? unet.store,
      ...(fusedUNet?.weightsId == null ? {} : { weightsId: fusedUNet.weightsId }),
    },
    textEncoder: {
      config: textEncoder.config,
      configName: textEncoder.configName,
      store: fusedText?.store ?? textEncoder.store,
      ...(fusedText?.weightsId == null ? {} : { weightsId: fusedText.weightsId }),
    },
    ...(applied.live ? { live: applied.live } : {}),
  };
}
