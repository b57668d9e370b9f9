/**
 * The one harness of the model fixture kinds (`unet`, `controlnet`, `cross_frame_attn`, `vae`,
 * `clip_text_encoder`): read case.json's tolerance, input/output files and `calls`; resolve each
 * model's weights and config; turn results into rows.
 *
 * Weights: case.json `weights` is a component folder or a weights file relative to the fixture
 * (`weights.<role>` when a fixture runs several models). Callers may supply a component from outside
 * instead (`ModelFixtureOptions.components`: a single-file checkpoint after key mapping), with its
 * config. Config otherwise: case.json `config` when it describes this model class (it is the config
 * the reference ran with), else the folder's config.json.
 */
import { stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { ConfigError } from "../../errors.js";
import { readJsonFile } from "../../config/parse.js";
import {
  type ComponentParts,
  type ResolvedComponent,
  findWeightsFile,
  openWeightsFile,
  resolveComponent,
} from "../../models/component-source.js";
import type { HostTensor } from "../../tensor.js";
import type { LdmComponent } from "../../weights/key-maps/ldm.js";
import { readSafetensors } from "../../weights/safetensors.js";
import { compareTensors, failedRow } from "../compare.js";
import type { ConformanceRow, FixtureContext } from "../types.js";

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The models a fixture runs, named as single-file checkpoints and pipelines name them. */
export type ModelRole = LdmComponent;

export interface ModelFixtureOptions {
  /** Components replacing the weights (and config) case.json names, e.g. a single file's stores. */
  readonly components?: Readonly<Partial<Record<ModelRole, ComponentParts>>>;
  /** Tolerance to use when case.json gives none. */
  readonly fallbackTolerance?: number;
}

export function caseFile(ctx: FixtureContext): string {
  return join(ctx.dir, "case.json");
}

export function fixtureName(ctx: FixtureContext, fallback: string): string {
  return typeof ctx.caseJson.fixture === "string" ? ctx.caseJson.fixture : fallback;
}

/** `tolerance.suggested_max_abs_err` (or `max_abs_err` / `max_abs`, or a bare number) from case.json. */
export function readTolerance(ctx: FixtureContext, fallback?: number): number {
  const t = ctx.caseJson.tolerance;
  const value = (isRecord(t) ? (t.suggested_max_abs_err ?? t.max_abs_err ?? t.max_abs) : t) ?? fallback;
  if (typeof value !== "number" || !(value >= 0)) {
    throw new ConfigError(caseFile(ctx), "tolerance.suggested_max_abs_err", "a non-negative number", value);
  }
  return value;
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

export interface ModelCase {
  /** case.json path, for errors. */
  readonly file: string;
  /** case.json `fixture` (the row label). */
  readonly fixture: string;
  readonly tolerance: number;
  readonly inputs: Map<string, HostTensor>;
  readonly outputs: Map<string, HostTensor>;
}

/** Reads the parts every model fixture has (the tolerance is checked before any file is read). */
export async function readModelCase(
  ctx: FixtureContext,
  kind: string,
  options: ModelFixtureOptions = {},
): Promise<ModelCase> {
  const tolerance = readTolerance(ctx, options.fallbackTolerance);
  return {
    file: caseFile(ctx),
    fixture: fixtureName(ctx, kind),
    tolerance,
    inputs: await readTensorFile(ctx, "inputs_file", "inputs.safetensors"),
    outputs: await readTensorFile(ctx, "outputs_file", "outputs.safetensors"),
  };
}

/** case.json `calls`: output name (or pattern) -> Python call string. */
export function readCalls(ctx: FixtureContext): Readonly<Record<string, string>> {
  const c = ctx.caseJson.calls;
  if (!isRecord(c)) throw new ConfigError(caseFile(ctx), "calls", "an object of output name -> call", c);
  const calls: Record<string, string> = {};
  for (const [k, v] of Object.entries(c)) {
    if (typeof v !== "string") throw new ConfigError(caseFile(ctx), `calls.${k}`, "a call string", v);
    calls[k] = v;
  }
  return calls;
}

/**
 * The weights path case.json names for `role`, resolved from the fixture folder: `weights.<role>`,
 * or `weights` itself when it is a string and `role` is the fixture's main model.
 */
export function weightsPath(ctx: FixtureContext, role: ModelRole, main = true): string {
  const w = ctx.caseJson.weights;
  const rel = typeof w === "string" && main ? w : isRecord(w) ? w[role] : undefined;
  if (typeof rel !== "string") {
    throw new ConfigError(
      caseFile(ctx),
      typeof w === "string" || !isRecord(w) ? "weights" : `weights.${role}`,
      "a path relative to the fixture",
      rel,
    );
  }
  return resolve(ctx.dir, rel);
}

/** Does case.json's `config` object describe `className` (by `_class_name` / `architectures`, or neither)? */
function inlineConfigFor(ctx: FixtureContext, className: string): Record<string, unknown> | undefined {
  const inline = ctx.caseJson.config;
  if (!isRecord(inline)) return undefined;
  const declared = inline._class_name;
  const architectures = Array.isArray(inline.architectures) ? (inline.architectures as unknown[]) : undefined;
  if (declared === undefined && architectures === undefined) return inline;
  return declared === className || architectures?.includes(className) === true ? inline : undefined;
}

export interface ComponentRequest {
  readonly role: ModelRole;
  /** The diffusers / transformers class (matches case.json `config._class_name` or `architectures`). */
  readonly className: string;
  /** Which weight file names a folder may hold. */
  readonly library: "diffusers" | "transformers";
  /** (default true) the fixture's main model: a plain string `weights` names it. */
  readonly main?: boolean;
}

/** The config and weights of one model of the fixture (supplied ones first; see the module comment). */
export async function fixtureComponent(
  ctx: FixtureContext,
  options: ModelFixtureOptions,
  request: ComponentRequest,
): Promise<ResolvedComponent> {
  const supplied = options.components?.[request.role];
  if (supplied !== undefined) return resolveComponent(supplied, request.library);
  const path = weightsPath(ctx, request.role, request.main ?? true);
  const isFile = (await stat(path).catch(() => undefined))?.isFile() ?? false;
  const { store, weightsId } = await openWeightsFile(
    isFile ? path : await findWeightsFile(path, request.library),
  );
  const inline = inlineConfigFor(ctx, request.className);
  if (inline !== undefined) {
    return { config: inline, configName: `${caseFile(ctx)} (config)`, store, weightsId };
  }
  if (isFile) {
    throw new ConfigError(
      caseFile(ctx),
      "config",
      `a ${request.className} config object (the weights ${path} are a file, with no config.json)`,
      ctx.caseJson.config,
    );
  }
  const configPath = join(path, "config.json");
  return { config: await readJsonFile(configPath, "model config"), configName: configPath, store, weightsId };
}

/** case.json `inputs.timestep` (a number when the inputs file holds no timestep tensor). */
export function caseTimestep(ctx: FixtureContext): unknown {
  return isRecord(ctx.caseJson.inputs) ? ctx.caseJson.inputs.timestep : undefined;
}

/** The fixture's timestep: the inputs file's `timestep` tensor, else case.json's number, else undefined. */
export function fixtureTimestep(ctx: FixtureContext, mc: ModelCase): HostTensor | number | undefined {
  const given = caseTimestep(ctx);
  return mc.inputs.get("timestep") ?? (typeof given === "number" ? given : undefined);
}

/** True when the outputs file holds `intermediate.*` tensors (the model must be built to output them). */
export function wantsIntermediates(mc: ModelCase): boolean {
  return [...mc.outputs.keys()].some((k) => k.startsWith("intermediate."));
}

/**
 * Rows for case.json `calls`: an output the outputs file lacks fails its row; otherwise `run` gives
 * the call's rows (adding any extra tensor it compares to `compared`), and whatever it throws fails
 * the output's row. Outputs no call compared fail too.
 */
export async function callRows(
  mc: ModelCase,
  calls: Readonly<Record<string, string>>,
  run: (
    output: string,
    call: string,
    expected: HostTensor,
    compared: Set<string>,
  ) => Promise<ConformanceRow[]>,
): Promise<ConformanceRow[]> {
  const rows: ConformanceRow[] = [];
  const compared = new Set<string>();
  for (const [output, call] of Object.entries(calls)) {
    const expected = mc.outputs.get(output);
    if (expected === undefined) {
      rows.push(failedRow(mc.fixture, output, `no tensor "${output}" in the outputs file`));
      continue;
    }
    compared.add(output);
    try {
      rows.push(...(await run(output, call, expected, compared)));
    } catch (error) {
      rows.push(failedRow(mc.fixture, output, errorNote(error)));
    }
  }
  return [...rows, ...uncomparedRows(mc, compared)];
}

/** The fixture's AbortSignal as a load/run option (`{}` without one). */
export function signalOption(ctx: FixtureContext): { signal?: AbortSignal } {
  return ctx.signal ? { signal: ctx.signal } : {};
}

/** `weightsId` as the model runners' sources take it (absent rather than null). */
export function cacheId(component: ResolvedComponent): { weightsId?: string } {
  return component.weightsId === null ? {} : { weightsId: component.weightsId };
}

/** The error message of anything thrown, for a failing row's note. */
export function errorNote(error: unknown): string {
  return `error: ${error instanceof Error ? error.message : String(error)}`;
}

/** A row comparing `actual` (or a reason it is missing) with the reference. */
export function outputRow(
  mc: ModelCase,
  name: string,
  actual: HostTensor | string | undefined,
  expected: HostTensor,
): ConformanceRow {
  if (actual === undefined) return failedRow(mc.fixture, name, "not produced");
  if (typeof actual === "string") return failedRow(mc.fixture, name, actual);
  return compareTensors(mc.fixture, name, actual, expected, mc.tolerance);
}

/** Output tensors no row compared become failing rows (a fixture never passes by skipping). */
export function uncomparedRows(mc: ModelCase, compared: ReadonlySet<string>): ConformanceRow[] {
  return [...mc.outputs.keys()]
    .filter((k) => !compared.has(k))
    .map((k) => failedRow(mc.fixture, k, "no call in case.json produced this output"));
}

/** A case.json object field (ConfigError naming the file and field otherwise). */
export function caseRecord(value: unknown, file: string, field: string): Record<string, unknown> {
  if (!isRecord(value)) throw new ConfigError(file, field, "an object", value);
  return value;
}

/**
 * A number of the fixture's `call`, or `fallback` when it is null/absent. A one-element list counts
 * as its element (diffusers turns per-ControlNet settings into lists).
 */
export function callNumber(
  call: Record<string, unknown>,
  file: string,
  key: string,
  fallback?: number,
): number {
  const raw = call[key];
  const v = Array.isArray(raw) && raw.length === 1 ? (raw[0] as unknown) : raw;
  if (typeof v === "number") return v;
  if ((v === null || v === undefined) && fallback !== undefined) return fallback;
  throw new ConfigError(file, `call.${key}`, "a number", v);
}

/**
 * The seed of a pipeline fixture's CPU generator: `call.generator_seed`, else the seed in
 * `call.generator` ("torch.Generator().manual_seed(42)"); undefined when the call passed none (the
 * reference then drew from torch's global generator, which no fixture records).
 */
export function callSeed(call: Record<string, unknown>): number | undefined {
  const seed = call["generator_seed"] ?? call["seed"] ?? call["generator"];
  if (typeof seed === "number" && Number.isInteger(seed)) return seed;
  const g = call["generator"];
  const code = typeof g === "string" ? (g.split("#")[0] ?? g) : "";
  const m = /manual_seed\(\s*(\d+)\s*\)/.exec(code);
  return m ? Number(m[1]) : undefined;
}

/**
 * A fixture's scheduler, case.json `<key>` (default "scheduler"): its `class` and config, the
 * inline `config` when present (what the reference printed of the scheduler it built), else the
 * `config_dir`/scheduler_config.json it saved (Python's Infinity/NaN spellings allowed). `source`
 * names where the config came from, for messages.
 */
export async function fixtureScheduler(
  ctx: FixtureContext,
  key = "scheduler",
): Promise<{ readonly className: string; readonly config: unknown; readonly source: string }> {
  const file = caseFile(ctx);
  const s = caseRecord(ctx.caseJson[key], file, key);
  const className = s["class"];
  if (typeof className !== "string")
    throw new ConfigError(file, `${key}.class`, "a diffusers scheduler class", className);
  if (isRecord(s["config"])) return { className, config: s["config"], source: `${file} (${key}.config)` };
  const dir = s["config_dir"];
  if (typeof dir !== "string")
    throw new ConfigError(file, `${key}.config`, `an object (or ${key}.config_dir)`, s["config"]);
  const path = join(ctx.dir, dir, "scheduler_config.json");
  return {
    className,
    config: await readJsonFile(path, "scheduler config", { pythonFloats: true }),
    source: path,
  };
}

/**
 * The image size a diffusers pipeline takes for a null `height` / `width`:
 * `unet.config.sample_size * vae_scale_factor` (undefined where sample_size is not one number).
 */
export function defaultSize(
  unet: { readonly config: { readonly sample_size: unknown } },
  vae: { readonly downsampleFactor: number },
): number | undefined {
  const s = unet.config.sample_size;
  return typeof s === "number" ? s * vae.downsampleFactor : undefined;
}

/**
 * Failing rows for the call arguments a runner cannot honour: `accepts[key]` says whether the
 * call's value is one the runner does (a missing key is the reference's default and passes).
 */
export function refusedCallSettings(
  fixture: string,
  call: Record<string, unknown>,
  accepts: Readonly<Record<string, (value: unknown) => boolean>>,
): ConformanceRow[] {
  return Object.entries(accepts)
    .filter(([key, ok]) => call[key] !== undefined && !ok(call[key]))
    .map(([key]) =>
      failedRow(fixture, `call.${key}`, `${JSON.stringify(call[key])} is not supported by this runner`),
    );
}
