/**
 * A diffusers pipeline folder: `model_index.json` names each component's library and class, and each
 * component lives in a sub-folder with its config and weights (diffusers
 * src/diffusers/pipelines/pipeline_utils.py: DiffusionPipeline.from_pretrained / save_pretrained).
 * This module resolves the folder into typed component locations; nothing is loaded yet.
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { ConfigError, FileNotFoundError } from "../errors.js";
import { readJsonFile } from "../config/parse.js";
import { findWeightsFile } from "../models/component-source.js";

/** The weights-file choice lives with the model runners (they open component folders too). */
export { findWeightsFile };

export type ComponentName = "unet" | "vae" | "text_encoder" | "tokenizer" | "scheduler" | "controlnet";

export interface ComponentLocation {
  readonly name: ComponentName;
  /** `[library, class]` from model_index.json, e.g. ["diffusers", "UNet2DConditionModel"]. */
  readonly library: string;
  readonly className: string;
  readonly dir: string;
  /** The weights file chosen for this component (undefined for tokenizer/scheduler). */
  readonly weights?: string;
}

export interface PipelineFolder {
  readonly dir: string;
  /** model_index.json `_class_name` (e.g. "StableDiffusionPipeline"). */
  readonly pipelineClass: string;
  readonly components: ReadonlyMap<ComponentName, ComponentLocation>;
}

const KNOWN: readonly ComponentName[] = [
  "unet",
  "vae",
  "text_encoder",
  "tokenizer",
  "scheduler",
  "controlnet",
];

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}

/**
 * Reads model_index.json and locates every component Steadyframe uses. `requireWeights: false` (the
 * configs of a single-file checkpoint) accepts component folders without weight files.
 */
export async function readPipelineFolder(
  dir: string,
  options: { readonly requireWeights?: boolean } = {},
): Promise<PipelineFolder> {
  const indexPath = join(dir, "model_index.json");
  if (!(await exists(indexPath))) {
    throw new FileNotFoundError(indexPath, "pipeline index", {
      hint: "pass a diffusers pipeline folder (with model_index.json) or a single-file checkpoint (.safetensors/.ckpt)",
    });
  }
  const index = await readJsonFile(indexPath, "pipeline index");
  if (typeof index !== "object" || index === null || Array.isArray(index)) {
    throw new ConfigError(indexPath, "(root)", "a JSON object", index);
  }
  const entries = index as Record<string, unknown>;
  const pipelineClass =
    typeof entries["_class_name"] === "string" ? entries["_class_name"] : "DiffusionPipeline";
  const components = new Map<ComponentName, ComponentLocation>();
  for (const name of KNOWN) {
    const value = entries[name];
    if (value === undefined) continue;
    if (!Array.isArray(value) || value.length !== 2) {
      throw new ConfigError(indexPath, name, "a [library, class] pair", value);
    }
    const [library, className] = value as unknown[];
    if (library === null || className === null) continue; // an optional component saved as absent
    if (typeof library !== "string" || typeof className !== "string") {
      throw new ConfigError(indexPath, name, "a [library, class] pair of strings", value);
    }
    const componentDir = join(dir, name);
    if (!(await exists(componentDir))) {
      throw new FileNotFoundError(componentDir, `${name} folder (listed in model_index.json)`);
    }
    const needsWeights = name !== "tokenizer" && name !== "scheduler" && options.requireWeights !== false;
    const weights = needsWeights ? await findWeightsFile(componentDir, library) : undefined;
    components.set(name, {
      name,
      library,
      className,
      dir: componentDir,
      ...(weights === undefined ? {} : { weights }),
    });
  }
  return { dir, pipelineClass, components };
}
