/**
 * Shared reading of model fixtures (kinds `vae`, `clip_text_encoder`): the weights named by case.json
 * (`weights`: a component folder or a .safetensors file, relative to the fixture), the config (the
 * folder's config.json, else case.json's `config`), the tolerance and the input/output files.
 */
import { stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { ConfigError } from "../../errors.js";
import { readJsonFile } from "../../config/parse.js";
import { type ComponentParts, openWeightsFile } from "../../models/component-source.js";
import { findWeightsFile } from "../../pipeline/components.js";
import type { HostTensor } from "../../tensor.js";
import { readSafetensors } from "../../weights/safetensors.js";
import type { FixtureContext } from "../types.js";

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function caseFile(ctx: FixtureContext): string {
  return join(ctx.dir, "case.json");
}

export function fixtureName(ctx: FixtureContext, fallback: string): string {
  return typeof ctx.caseJson.fixture === "string" ? ctx.caseJson.fixture : fallback;
}

/** `tolerance.suggested_max_abs_err` (or `max_abs_err` / `max_abs`) from case.json. */
export function readTolerance(ctx: FixtureContext): number {
  const t = ctx.caseJson.tolerance;
  const value = isRecord(t) ? (t.suggested_max_abs_err ?? t.max_abs_err ?? t.max_abs) : t;
  if (typeof value !== "number" || !(value >= 0)) {
    throw new ConfigError(caseFile(ctx), "tolerance.suggested_max_abs_err", "a non-negative number", value);
  }
  return value;
}

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false;
}

/** The model config and weights named by case.json `weights` (+ `config`). */
export async function readComponent(
  ctx: FixtureContext,
  library: "diffusers" | "transformers",
): Promise<ComponentParts> {
  const weights = ctx.caseJson.weights;
  if (typeof weights !== "string")
    throw new ConfigError(caseFile(ctx), "weights", "a path relative to the fixture", weights);
  const path = resolve(ctx.dir, weights);
  const single = await isFile(path);
  const weightsFile = single ? path : await findWeightsFile(path, library);
  const configPath = join(single ? dirname(path) : path, "config.json");
  let config: unknown;
  let configName: string;
  if (!single && (await isFile(configPath))) {
    config = await readJsonFile(configPath, "model config");
    configName = configPath;
  } else if (isRecord(ctx.caseJson.config)) {
    config = ctx.caseJson.config;
    configName = `${caseFile(ctx)} (config)`;
  } else {
    throw new ConfigError(
      caseFile(ctx),
      "config",
      `an object (no config.json beside ${weights})`,
      ctx.caseJson.config,
    );
  }
  const { store, weightsId } = await openWeightsFile(weightsFile);
  return { config, configName, store, weightsId };
}

/** Reads `<key>.file` (default `fallback`) from case.json as a tensor map. */
export async function readTensorFile(
  ctx: FixtureContext,
  key: string,
  fallback: string,
): Promise<Map<string, HostTensor>> {
  const entry = ctx.caseJson[key];
  const name = isRecord(entry) ? entry.file : fallback;
  if (typeof name !== "string") throw new ConfigError(caseFile(ctx), `${key}.file`, "a file name", name);
  return readSafetensors(join(ctx.dir, name));
}

/** Output names: those case.json lists (`outputs_file.tensors`, in its order), then any other in the file. */
export function outputNames(ctx: FixtureContext, outputs: ReadonlyMap<string, HostTensor>): string[] {
  const entry = ctx.caseJson.outputs_file;
  const listed = isRecord(entry) && isRecord(entry.tensors) ? Object.keys(entry.tensors) : [];
  return [...new Set([...listed, ...outputs.keys()])];
}
