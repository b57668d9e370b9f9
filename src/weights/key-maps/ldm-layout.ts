/**
 * The LDM key map's block numbering for one component, from the fields of its diffusers config: a
 * single-file checkpoint carries no architecture (layers_per_block, which up blocks have attention,
 * VAE levels). The fields come in as plain data (config.json names); reading and validating the
 * configs is the models' job (src/models/ldm-layout.ts parses a config.json and calls this).
 */
import { ConfigError, UnsupportedError } from "../../errors.js";
import type { LdmComponent, LdmLayout } from "./ldm.js";

/** The config fields the layout is read from, named as in config.json. */
export interface LdmConfigFields {
  /** UNet and ControlNet: resnets per down block (one number for every level in LDM files). */
  readonly layers_per_block?: number | readonly number[];
  /** UNet: up block class names (CrossAttnUpBlock2D ones have attentions). */
  readonly up_block_types?: readonly string[];
  /** VAE: one entry per level. */
  readonly block_out_channels?: readonly number[];
  /** Text encoder: transformer layers (SD 2.x: 23, one fewer than OpenCLIP's file holds). */
  readonly num_hidden_layers?: number;
}

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

function required<K extends keyof LdmConfigFields>(
  file: string,
  fields: LdmConfigFields,
  key: K,
  expected: string,
): NonNullable<LdmConfigFields[K]> {
  const value = fields[key];
  if (value === undefined) throw new ConfigError(file, key, expected, undefined);
  return value as NonNullable<LdmConfigFields[K]>;
}

/** The key map's layout for `component` from its config fields (`configName` names them in errors). */
export function ldmLayout(component: LdmComponent, configName: string, fields: LdmConfigFields): LdmLayout {
  if (component === "unet") {
    const layers = required(configName, fields, "layers_per_block", "a number or a list of numbers");
    const upTypes = required(configName, fields, "up_block_types", "a list of up block class names");
    return {
      layersPerBlock: uniform(configName, layers),
      upBlockHasAttention: upTypes.map((t) => t.startsWith("CrossAttn")),
      vaeLevels: 1,
    };
  }
  if (component === "controlnet") {
    const layers = required(configName, fields, "layers_per_block", "a number");
    return { layersPerBlock: uniform(configName, layers), upBlockHasAttention: [], vaeLevels: 1 };
  }
  if (component === "vae") {
    const channels = required(configName, fields, "block_out_channels", "a list of numbers");
    return { layersPerBlock: 1, upBlockHasAttention: [], vaeLevels: channels.length };
  }
  const layers = fields.num_hidden_layers;
  if (layers !== undefined && !(Number.isInteger(layers) && layers > 0)) {
    throw new ConfigError(configName, "num_hidden_layers", "a positive integer", layers);
  }
  return {
    layersPerBlock: 1,
    upBlockHasAttention: [],
    vaeLevels: 1,
    ...(layers === undefined ? {} : { textLayers: layers }),
  };
}
