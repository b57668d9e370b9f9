/**
 * Where a model runner gets its config and weights: a component folder as diffusers/transformers
 * save it (`config.json` + `*.safetensors`), or a config object and a WeightStore given directly
 * (random weights, single-file checkpoints after key mapping, tests).
 */
import { basename, dirname, join } from "node:path";
import { readJsonFile } from "../config/parse.js";
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
