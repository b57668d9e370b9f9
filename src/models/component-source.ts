/**
 * Where a model runner gets its config and weights: a component folder as diffusers/transformers
 * save it (`config.json` + `*.safetensors`, the file names of diffusers' `save_pretrained`), or a
 * config object and a WeightStore given directly (random weights, single-file checkpoints after key
 * mapping, tests).
 */
import { readdir, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { FileNotFoundError } from "../errors.js";
import { type Parsed, readJsonFile } from "../config/parse.js";
import type { WeightStore } from "../nn/weight-store.js";
import { openComponentWeights } from "./compiled-graph.js";

export interface ComponentParts {
  /** The config as parsed JSON (validated by the model). */
  readonly config: unknown;
  readonly store: WeightStore;
  /** Names the config in errors (default "config"). */
  readonly configName?: string;
  /**
   * Identity of the weights (e.g. "path:size:mtime") for the model cache; absent = the graph is
   * written to a temporary folder removed on release.
   */
  readonly weightsId?: string;
}

/**
 * A model runner's source: a diffusers component folder (config.json + diffusion_pytorch_model.safetensors),
 * or a typed config and a weight store.
 */
export type ModelSource<C> =
  | string
  | {
      readonly config: C;
      readonly store: WeightStore;
      /** (optional) names the weights for the model cache; without it the model is written afresh and deleted on release. */
      readonly weightsId?: string;
    };

/** A model source resolved: typed config, weights, and the name of the config in errors. */
export interface ResolvedModelSource<C> {
  readonly config: C;
  readonly store: WeightStore;
  readonly weightsId: string | null;
  /** `<dir>/config.json` for a folder, else the default name given. */
  readonly configName: string;
}

/** A component folder path, or its parts. */
export type ComponentSource = string | ComponentParts;

export interface ResolvedComponent {
  readonly config: unknown;
  readonly configName: string;
  readonly store: WeightStore;
  readonly weightsId: string | null;
}

/** Weight file names of a component folder per library, full precision first. */
const WEIGHT_FILES: Readonly<Record<string, readonly string[]>> = {
  diffusers: ["diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"],
  transformers: ["model.safetensors", "model.fp16.safetensors"],
};

/**
 * Picks the weights file of a component folder: full precision first, then the fp16 variant. An
 * unknown `library` (model_index.json names another) tries both libraries' names.
 */
export async function findWeightsFile(dir: string, library: string): Promise<string> {
  const candidates = WEIGHT_FILES[library] ?? [
    ...(WEIGHT_FILES["diffusers"] ?? []),
    ...(WEIGHT_FILES["transformers"] ?? []),
  ];
  for (const file of candidates) {
    if ((await stat(join(dir, file)).catch(() => undefined)) !== undefined) return join(dir, file);
  }
  const present = (await readdir(dir).catch(() => [] as string[])).join(", ") || "nothing";
  const legacy = (await readdir(dir).catch(() => [] as string[])).find((f) => f.endsWith(".bin"));
  throw new FileNotFoundError(join(dir, candidates[0] ?? "weights"), "component weights", {
    hint:
      legacy !== undefined
        ? `found ${legacy}, a PyTorch pickle: convert it to .safetensors (Steadyframe never executes pickles)`
        : `the folder holds ${present}; expected one of ${candidates.join(", ")}`,
  });
}

/** Opens a weights file and names it by path, size and mtime. */
export async function openWeightsFile(path: string): Promise<{ store: WeightStore; weightsId: string }> {
  const weights = await openComponentWeights(dirname(path), basename(path));
  return { store: weights.store, weightsId: weights.identity };
}

/** Reads `<dir>/config.json` and opens the folder's weights file (`library` picks the file names). */
export async function resolveComponent(
  source: ComponentSource,
  library: "diffusers" | "transformers",
): Promise<ResolvedComponent> {
  if (typeof source !== "string") {
    return {
      config: source.config,
      configName: source.configName ?? "config",
      store: source.store,
      weightsId: source.weightsId ?? null,
    };
  }
  const configPath = join(source, "config.json");
  const config = await readJsonFile(configPath, "model config");
  const { store, weightsId } = await openWeightsFile(await findWeightsFile(source, library));
  return { config, configName: configPath, store, weightsId };
}

/**
 * A diffusers folder's config.json parsed with `parse` and its weights file opened; a typed config
 * and store pass through, named `defaultConfigName` in errors.
 */
export async function resolveModelSource<C>(
  source: ModelSource<C>,
  defaultConfigName: string,
  parse: (file: string, json: unknown) => Parsed<C>,
): Promise<ResolvedModelSource<C>> {
  if (typeof source !== "string") {
    return {
      config: source.config,
      store: source.store,
      weightsId: source.weightsId ?? null,
      configName: defaultConfigName,
    };
  }
  // The config is checked before the weights are opened: a bad config is named before a missing file.
  const configName = join(source, "config.json");
  const { config } = parse(configName, await readJsonFile(configName, "model config"));
  const { store, weightsId } = await openWeightsFile(await findWeightsFile(source, "diffusers"));
  return { config, store, weightsId, configName };
}
