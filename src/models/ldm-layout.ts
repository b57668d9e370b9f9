/**
 * The LDM key map's layout for one component of a single-file checkpoint, read off that component's
 * diffusers config.json: the config is parsed and validated here (with diffusers' defaults), and its
 * fields go to the key map (../weights/key-maps/ldm-layout.ts) as plain data.
 */
import type { LdmComponent, LdmLayout } from "../weights/key-maps/ldm.js";
import { ldmLayout } from "../weights/key-maps/ldm-layout.js";
import { parseCLIPTextConfig } from "./clip/config.js";
import { parseControlNetModelConfig } from "./controlnet/config.js";
import { parseUNet2DConditionModelConfig } from "./unet/config.js";
import { parseAutoencoderKLConfig } from "./vae/config.js";

/** The key map's layout for `component` from its config.json contents (`configName` names it in errors). */
export function ldmLayoutFor(component: LdmComponent, configName: string, json: unknown): LdmLayout {
  if (component === "unet")
    return ldmLayout(component, configName, parseUNet2DConditionModelConfig(configName, json).config);
  if (component === "controlnet")
    return ldmLayout(component, configName, parseControlNetModelConfig(configName, json).config);
  if (component === "vae")
    return ldmLayout(component, configName, parseAutoencoderKLConfig(configName, json).config);
  if (component === "text_encoder")
    return ldmLayout(component, configName, parseCLIPTextConfig(configName, json).config);
  return ldmLayout(component, configName, {});
}
