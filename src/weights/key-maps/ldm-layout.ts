/**
 * The LDM key map's block numbering for one component, read off its diffusers config: a single-file
 * checkpoint carries no architecture (layers_per_block, which up blocks have attention, VAE levels).
 */
import { UnsupportedError } from "../../errors.js";
import { parseControlNetModelConfig } from "../../models/controlnet/config.js";
import { parseUNet2DConditionModelConfig } from "../../models/unet/config.js";
import { parseAutoencoderKLConfig } from "../../models/vae/config.js";
import type { LdmComponent, LdmLayout } from "./ldm.js";

/** One layers_per_block for the whole net (LDM numbers every level's blocks with one num_res_blocks). */
function uniform(file: string, value: number | readonly number[]): number {
  if (typeof value === "number") return value;
  const first = value[0];
  if (first === undefined || value.some((v) => v !== first)) {
    throw new UnsupportedError(
      `layers_per_block ${JSON.stringify(value)} in ${file} for a single-file checkpoint`,
      {
        hint: "LDM checkpoints have one num_res_blocks for every level; use the diffusers folder",
      },
    );
  }
  return first;
}

/** The key map's layout for `component`, from that component's config. */
export function ldmLayoutFor(component: LdmComponent, configName: string, json: unknown): LdmLayout {
  if (component === "unet") {
    const { config } = parseUNet2DConditionModelConfig(configName, json);
    return {
      layersPerBlock: uniform(configName, config.layers_per_block),
      upBlockHasAttention: config.up_block_types.map((t) => t.startsWith("CrossAttn")),
      vaeLevels: 1,
    };
  }
  if (component === "controlnet") {
    const { config } = parseControlNetModelConfig(configName, json);
    return { layersPerBlock: config.layers_per_block, upBlockHasAttention: [], vaeLevels: 1 };
  }
  if (component === "vae") {
    const { config } = parseAutoencoderKLConfig(configName, json);
    return { layersPerBlock: 1, upBlockHasAttention: [], vaeLevels: config.block_out_channels.length };
  }
  return { layersPerBlock: 1, upBlockHasAttention: [], vaeLevels: 1 };
}
