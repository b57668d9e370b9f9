/**
 * Where a model runner gets its config and weights: a component folder as diffusers/transformers
 * save it (`config.json` + `*.safetensors`), or a config object and a WeightStore given directly
 * (random weights, single-file checkpoints after key mapping, tests).
 */
import { basename, dirname, join } from "node:path";
import { type Parsed, readJsonFile } from "../config/parse.js";
import type { WeightStore } from "../nn/weight-store.js";
import { findWeightsFile } from "../pipeline/components.js";
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

/** Reads a folder's config.json with `readConfig` and opens its diffusers weights file; parts pass through. */
export async function resolveModelSource<C>(
  source: ModelSource<C>,
  defaultConfigName: string,
  readConfig: (path: string) => Promise<Parsed<C>>,
): Promise<ResolvedModelSource<C>> {
  if (typeof source !== "string") {
    return {
      config: source.config,
      store: source.store,
      weightsId: source.weightsId ?? null,
      configName: defaultConfigName,
    };
  }
  const configName = join(source, "config.json");
  const { config } = await readConfig(configName);
  const { store, weightsId } = await openWeightsFile(await findWeightsFile(source, "diffusers"));
  return { config, store, weightsId, configName };
}

/** A component folder path, or its parts. */
export type ComponentSource = string | ComponentParts;

export interface ResolvedComponent {
  readonly config: unknown;
  readonly configName: string;
  readonly store: WeightStore;
  readonly weightsId: string | null;
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
