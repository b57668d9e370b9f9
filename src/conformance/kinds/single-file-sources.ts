/**
 * The component weights of a `single_file` fixture: every checkpoint its case.json lists under
 * `files` that exists, split by the LDM key map into diffusers-keyed stores, each paired with the
 * config of its equivalent diffusers folder (`components.<name>.diffusers_folder`, else
 * `<equivalent_diffusers_folder>/<name>`). The key map's block numbering (layers_per_block, which up
 * blocks have attention, VAE levels) comes from those configs: a single file carries no architecture.
 */
import { stat } from "node:fs/promises";
import { extname, join, resolve } from "node:path";
import { ConfigError } from "../../errors.js";
import { readJsonFile } from "../../config/parse.js";
import type { ComponentParts } from "../../models/component-source.js";
import type { WeightStore } from "../../nn/weight-store.js";
import { LDM_PREFIXES, type LdmComponent } from "../../weights/key-maps/ldm.js";
import { ldmLayoutFor } from "../../models/ldm-layout.js";
import { openCheckpointStore, splitSingleFile } from "../../weights/single-file.js";
import { failedRow } from "../compare.js";
import type { ConformanceRow, FixtureContext } from "../types.js";
import { caseFile, errorNote, isRecord } from "./model-fixture.js";

const CHECKPOINT_EXTENSIONS = [".safetensors", ".ckpt", ".pth", ".pt", ".bin"];
const COMPONENTS: readonly LdmComponent[] = ["unet", "vae", "text_encoder", "controlnet"];

/**
 * The key prefix each component is looked for under. The text encoder takes all of
 * `cond_stage_model.`, so SD2 OpenCLIP keys (`cond_stage_model.model.`) reach the key map too.
 */
const VIEW_PREFIX: Readonly<Record<LdmComponent, string>> = {
  ...LDM_PREFIXES,
  text_encoder: "cond_stage_model.",
};

/** One component of one checkpoint file. */
export interface FileComponent {
  /** The file's name as case.json `files` lists it. */
  readonly file: string;
  readonly parts: ComponentParts;
}

export interface SingleFileSources {
  /** Per component, the files that hold it (in `files` order). */
  readonly byComponent: ReadonlyMap<LdmComponent, readonly FileComponent[]>;
  /** Failing rows: unreadable files, unmapped keys, unusable configs. */
  readonly problems: readonly ConformanceRow[];
}

export interface SingleFileOptions {
  /** (default openCheckpointStore) opens one checkpoint; tests inject altered stores. */
  readonly openStore?: (path: string) => Promise<WeightStore>;
}

/** The checkpoint files of case.json `files` (an object keyed by name, or a list) that exist. */
export async function checkpointFiles(ctx: FixtureContext): Promise<string[]> {
  const files = ctx.caseJson.files;
  const names = Array.isArray(files) ? files : isRecord(files) ? Object.keys(files) : undefined;
  if (names === undefined || !names.every((n): n is string => typeof n === "string")) {
    throw new ConfigError(caseFile(ctx), "files", "an object (or list) of file names", files);
  }
  const present: string[] = [];
  for (const name of names) {
    if (!CHECKPOINT_EXTENSIONS.includes(extname(name).toLowerCase())) continue;
    if ((await stat(resolve(ctx.dir, name)).catch(() => undefined))?.isFile()) present.push(name);
  }
  return present;
}

/** The component's config.json path: `components.<c>.diffusers_folder`, else `<equivalent_diffusers_folder>/<c>`. */
export function componentConfigPath(ctx: FixtureContext, component: LdmComponent): string {
  const entry = isRecord(ctx.caseJson.components) ? ctx.caseJson.components[component] : undefined;
  const folder = isRecord(entry) ? entry.diffusers_folder : undefined;
  if (typeof folder === "string") return join(resolve(ctx.dir, folder), "config.json");
  const root = ctx.caseJson.equivalent_diffusers_folder;
  if (typeof root === "string") return join(resolve(ctx.dir, root), component, "config.json");
  throw new ConfigError(
    caseFile(ctx),
    `components.${component}.diffusers_folder`,
    "the folder holding this component's config.json (a single file has no config)",
    folder,
  );
}

/**
 * diffusers' `from_single_file(..., extract_ema=...)`: case.json `extract_ema` (top level, or under
 * `from_single_file_kwargs`); default false (the non-EMA `model.diffusion_model.*` weights).
 */
export function extractEma(ctx: FixtureContext): boolean {
  const kwargs = ctx.caseJson.from_single_file_kwargs;
  const value = isRecord(kwargs) && "extract_ema" in kwargs ? kwargs.extract_ema : ctx.caseJson.extract_ema;
  if (value === undefined || value === null) return false;
  if (typeof value !== "boolean") throw new ConfigError(caseFile(ctx), "extract_ema", "true or false", value);
  return value;
}

/** The keys of `store` under `prefix` (the other components' keys are not this component's concern). */
function prefixView(store: WeightStore, prefix: string): WeightStore {
  return {
    name: store.name,
    keys: () => [...store.keys()].filter((k) => k.startsWith(prefix)),
    info: (key) => (key.startsWith(prefix) ? store.info(key) : undefined),
    source: (key) => store.source(key),
  };
}

const list = (keys: readonly string[]): string =>
  keys.slice(0, 20).join(", ") + (keys.length > 20 ? ` ... and ${keys.length - 20} more` : "");

/** Opens every checkpoint of the fixture and splits it into components (see the module comment). */
export async function openSingleFileSources(
  ctx: FixtureContext,
  options: SingleFileOptions = {},
): Promise<SingleFileSources> {
  const byComponent = new Map<LdmComponent, FileComponent[]>();
  const problems: ConformanceRow[] = [];
  const configs = new Map<LdmComponent, { json: unknown; name: string } | null>();
  const configOf = async (
    c: LdmComponent,
    label: string,
  ): Promise<{ json: unknown; name: string } | null> => {
    if (!configs.has(c)) {
      try {
        const name = componentConfigPath(ctx, c);
        configs.set(c, { json: await readJsonFile(name, `${c} config`), name });
      } catch (error) {
        problems.push(failedRow(label, "config", errorNote(error)));
        configs.set(c, null);
      }
    }
    return configs.get(c) ?? null;
  };
  const files = await checkpointFiles(ctx);
  if (files.length === 0) {
    problems.push(
      failedRow("single_file", "files", "none of the checkpoints case.json `files` lists exists"),
    );
  }
  for (const file of files) {
    const path = resolve(ctx.dir, file);
    let store: WeightStore;
    try {
      store = await (options.openStore ?? openCheckpointStore)(path);
    } catch (error) {
      problems.push(failedRow(`single_file:${file}`, "open", errorNote(error)));
      continue;
    }
    const keys = [...store.keys()];
    for (const component of COMPONENTS) {
      const prefix = VIEW_PREFIX[component];
      if (!keys.some((k) => k.startsWith(prefix))) continue;
      const label = `single_file:${file} -> ${component}`;
      const config = await configOf(component, label);
      if (config === null) continue;
      try {
        const split = splitSingleFile(
          prefixView(store, prefix),
          ldmLayoutFor(component, config.name, config.json),
          { extractEma: extractEma(ctx), emaStore: store },
        );
        if (split.unmapped.length > 0) {
          problems.push(
            failedRow(
              label,
              "key map",
              `${split.unmapped.length} keys the LDM key map does not map: ${list(split.unmapped)}`,
            ),
          );
        }
        const mapped = split.components.get(component);
        if (mapped === undefined) continue;
        // No weightsId: the model cache keys on the file, not on the key map that chose its tensors.
        const parts: ComponentParts = { config: config.json, configName: config.name, store: mapped };
        byComponent.set(component, [...(byComponent.get(component) ?? []), { file, parts }]);
      } catch (error) {
        problems.push(failedRow(label, "key map", errorNote(error)));
      }
    }
  }
  return { byComponent, problems };
}
