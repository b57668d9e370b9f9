/**
 * Conformance kind `lora`: LoRA files applied to the fixture's UNet and text encoder (case.json
 * `weights.unet` / `weights.text_encoder`) the way diffusers 0.26.3's `load_lora_weights` +
 * `fuse_lora` apply them, through the same path a pipeline load takes (src/weights/lora: read, place
 * by the model's own keys, fuse in a wrapped WeightStore).
 *
 * Everything comes from case.json `files` (the LoRA files, `lora_<name>.safetensors`), the outputs'
 * names and `key_map.json`:
 * - `noise_pred.base`: the UNet without LoRA; `noise_pred.<name>.scale<s>` (`scale0p6` = 0.6): the
 *   UNet with file `<name>` at scale s; `noise_pred.stacked`: the files and scales of case.json
 *   `lora_config.stack`. A file whose `files` entry says it holds "the same tensors as <other file>"
 *   must give `<other>`'s scale-1 noise prediction too (rows `noise_pred.<other>.scale1 [<file>]`).
 * - `fused.<name>.<module>.weight` / `te_fused.<module>.weight`: the fused UNet / text-encoder weight
 *   at scale 1 (text encoder: the file with text-encoder modules), at `tolerance.fused_weights`.
 * - `key_map.json`: for every file, every module the reference placed (model, module, rank, alpha,
 *   alpha/rank, shapes, keys) must be placed the same, and nothing else (row `key_map[<file>]`).
 * Outputs of any other name fail.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { ConfigError } from "../../errors.js";
import { UNET_OUTPUT } from "../../models/unet/build.js";
import { parseUNet2DConditionModelConfig } from "../../models/unet/config.js";
import { UNet2DConditionModel } from "../../models/unet/unet-2d-condition.js";
import type { HostTensor } from "../../tensor.js";
import {
  type LoraModel,
  type LoraSetting,
  type MappedLoraModule,
  type ModelWeights,
  applyLoras,
} from "../../weights/lora/index.js";
import { compareTensors, failedRow } from "../compare.js";
import type { ConformanceRow, FixtureContext, FixtureKind } from "../types.js";
import {
  type ModelCase,
  caseFile,
  errorNote,
  fixtureComponent,
  isRecord,
  outputNames,
  readModelCase,
  signalOption,
} from "./model-fixture.js";

/** `scale0p6` -> 0.6, `scale1` -> 1. */
export function parseScaleName(text: string): number | undefined {
  const m = /^scale(\d+)(?:p(\d+))?$/.exec(text);
  return m ? Number(`${m[1]}.${m[2] ?? "0"}`) : undefined;
}

/** LoRA file types (safetensors; torch pickles go through the safe unpickler). */
const LORA_FILE = /\.(safetensors|bin|pt|ckpt)$/;

/** case.json `files`: LoRA file name -> description (key_map.json and other files aside). */
function loraFiles(ctx: FixtureContext): Map<string, string> {
  const files = ctx.caseJson.files;
  if (!isRecord(files))
    throw new ConfigError(caseFile(ctx), "files", "an object of file -> description", files);
  return new Map(
    Object.entries(files)
      .filter(([name]) => LORA_FILE.test(name))
      .map(([name, text]) => [name, typeof text === "string" ? text : ""]),
  );
}

/** The file of a short name (`kohya` -> `lora_kohya.safetensors`), or undefined. */
function fileOf(files: ReadonlyMap<string, string>, short: string): string | undefined {
  return [...files.keys()].find((f) => f.replace(LORA_FILE, "") === `lora_${short}`);
}

/** `text` escaped to match itself in a RegExp. */
const literal = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

interface Runner {
  readonly mc: ModelCase;
  readonly fusedTolerance: number;
  readonly models: Readonly<Record<"unet" | "text_encoder", ModelWeights>>;
  readonly unetConfig: ReturnType<typeof parseUNet2DConditionModelConfig>["config"];
  readonly inputs: { sample: HostTensor; encoderHiddenStates: HostTensor; timestep: HostTensor | number };
}

/** noise_pred of the UNet with `loras` fused (none: the base UNet). */
async function noisePred(r: Runner, ctx: FixtureContext, loras: readonly LoraSetting[]): Promise<HostTensor> {
  const applied = await applyLoras(loras, r.models);
  const unet = applied.models.unet ?? r.models.unet;
  const runner = await UNet2DConditionModel.load(
    {
      config: r.unetConfig,
      store: unet.store,
      ...(unet.weightsId === null ? {} : { weightsId: unet.weightsId }),
    },
    signalOption(ctx),
  );
  try {
    const out = await runner.run(r.inputs, signalOption(ctx));
    const t = out[UNET_OUTPUT];
    if (t === undefined) throw new ConfigError("unet", UNET_OUTPUT, "an output of the UNet", undefined);
    return t;
  } finally {
    await runner.release();
  }
}

/** The weight `key` of `model` with `loras` fused. */
async function fusedWeight(
  r: Runner,
  model: LoraModel,
  key: string,
  loras: readonly LoraSetting[],
): Promise<HostTensor> {
  const applied = await applyLoras(loras, r.models);
  const store = applied.models[model]?.store;
  if (store?.info(key) === undefined) throw new ConfigError(model, key, "a weight of the model", undefined);
  return store.source(key).load();
}

/** Our placement of a file's modules, in key_map.json's terms. */
function keyMapEntry(m: MappedLoraModule): Record<string, unknown> {
  return {
    lora_name: m.fileName,
    keys: [m.downKey, m.upKey],
    model: m.model,
    module: m.module,
    kind: m.kind,
    rank: m.rank,
    alpha: m.alpha ?? null,
    alpha_over_rank: m.factor,
    down_shape: [...m.downShape],
    up_shape: [...m.upShape],
    target_weight_shape: [...m.targetShape],
  };
}

/**
 * Numbers of key_map.json (alpha, alpha / rank) as values, not text: the reference may have printed
 * a float32 alpha widened to double (0.10000000149011612 for 0.1).
 */
function sameNumber(ours: number, reference: number): boolean {
  return Math.abs(ours - reference) <= 1e-6 * Math.max(1, Math.abs(reference));
}

/** Compares our placement of `file` with key_map.json's entries for it: one row. */
async function keyMapRow(
  r: Runner,
  ctx: FixtureContext,
  file: string,
  reference: unknown,
): Promise<ConformanceRow> {
  const tensor = `key_map[${file}]`;
  if (!Array.isArray(reference))
    return failedRow(r.mc.fixture, tensor, "key_map.json lists no modules for this file");
  const applied = await applyLoras([{ path: join(ctx.dir, file), scale: 1 }], r.models);
  const ours = new Map(applied.modules.map((m) => [`${m.model}:${m.module}`, keyMapEntry(m)]));
  const diffs: string[] = [];
  const seen = new Set<string>();
  for (const entry of reference as unknown[]) {
    if (!isRecord(entry)) continue;
    const id = `${String(entry.model)}:${String(entry.module)}`;
    seen.add(id);
    const mine = ours.get(id);
    if (mine === undefined) {
      diffs.push(`${id} not placed`);
      continue;
    }
    for (const [field, value] of Object.entries(entry)) {
      if (!(field in mine)) continue;
      const theirs = mine[field];
      const same =
        field === "keys" && Array.isArray(value)
          ? JSON.stringify([...(value as string[])].sort()) ===
            JSON.stringify([...(mine.keys as string[])].sort())
          : typeof value === "number" && typeof theirs === "number"
            ? sameNumber(theirs, value)
            : JSON.stringify(value) === JSON.stringify(theirs);
      if (!same)
        diffs.push(`${id}.${field}: ${JSON.stringify(mine[field])}, reference ${JSON.stringify(value)}`);
    }
  }
  for (const id of ours.keys()) if (!seen.has(id)) diffs.push(`${id} placed but not in key_map.json`);
  return {
    fixture: r.mc.fixture,
    tensor,
    maxAbsError: diffs.length === 0 ? 0 : NaN,
    tolerance: 0,
    pass: diffs.length === 0,
    note:
      diffs.length === 0
        ? `${ours.size} modules placed as the reference`
        : `${diffs.length} difference(s): ${diffs.slice(0, 5).join("; ")}`,
  };
}

/**
 * The `lora_scale` of the `fuse_lora(lora_scale=...)` the calls entry for outputs starting with
 * `prefix` names (1, diffusers' default, when it names none).
 */
function fuseScale(ctx: FixtureContext, prefix: string): number {
  const calls = isRecord(ctx.caseJson.calls) ? ctx.caseJson.calls : {};
  for (const [key, text] of Object.entries(calls)) {
    const names = key.split("/").map((k) => k.trim());
    if (typeof text !== "string" || !names.some((k) => k.startsWith(prefix))) continue;
    const m = /fuse_lora\([^)]*lora_scale\s*=\s*([0-9.eE+-]+)/.exec(text.split("#")[0] ?? text);
    return m ? Number(m[1]) : 1;
  }
  return 1;
}

/** The rows of one output name (see the module comment); unknown names fail. */
async function outputRows(
  r: Runner,
  ctx: FixtureContext,
  name: string,
  expected: HostTensor,
  files: ReadonlyMap<string, string>,
): Promise<ConformanceRow[]> {
  const dir = ctx.dir;
  const lora = (short: string, scale: number): LoraSetting => {
    const file = fileOf(files, short);
    if (file === undefined) {
      throw new ConfigError(
        caseFile(ctx),
        "files",
        `a LoRA file lora_${short}.* (named by ${name})`,
        undefined,
      );
    }
    return { path: join(dir, file), scale };
  };
  const compare = (actual: HostTensor, tolerance = r.mc.tolerance, label = name): ConformanceRow =>
    compareTensors(r.mc.fixture, label, actual, expected, tolerance);
  if (name === "noise_pred.base") return [compare(await noisePred(r, ctx, []))];
  if (name === "noise_pred.stacked") {
    const stack = isRecord(ctx.caseJson.lora_config) ? ctx.caseJson.lora_config.stack : undefined;
    if (!isRecord(stack))
      throw new ConfigError(caseFile(ctx), "lora_config.stack", "an object of file -> scale", stack);
    const loras = Object.entries(stack).map(([short, s]) => lora(short, Number(s)));
    return [compare(await noisePred(r, ctx, loras))];
  }
  const noise = /^noise_pred\.([^.]+)\.(scale[0-9p]+)$/.exec(name);
  const scale = noise ? parseScaleName(noise[2] ?? "") : undefined;
  if (noise && scale !== undefined && fileOf(files, noise[1] ?? "") !== undefined) {
    const short = noise[1] ?? "";
    const rows = [compare(await noisePred(r, ctx, [lora(short, scale)]))];
    if (scale !== 1) return rows;
    // Files declared to hold the same LoRA in another key format give the same prediction.
    for (const [other, text] of files) {
      if (!new RegExp(`same tensors as ${literal(fileOf(files, short) ?? "")}`).test(text)) continue;
      const actual = await noisePred(r, ctx, [{ path: join(dir, other), scale: 1 }]);
      rows.push(compare(actual, r.mc.tolerance, `${name} [${other}]`));
    }
    return rows;
  }
  const fused = /^fused\.([^.]+)\.(.+)$/.exec(name);
  if (fused && fileOf(files, fused[1] ?? "") !== undefined) {
    const scale = fuseScale(ctx, `fused.${fused[1] ?? ""}.`);
    const weight = await fusedWeight(r, "unet", fused[2] ?? "", [lora(fused[1] ?? "", scale)]);
    return [compare(weight, r.fusedTolerance)];
  }
  const teFused = /^te_fused\.(.+)$/.exec(name);
  if (teFused) {
    // The file with text-encoder modules (only such a file changes the text encoder).
    const withText: string[] = [];
    for (const file of files.keys()) {
      const applied = await applyLoras([{ path: join(dir, file), scale: 1 }], r.models);
      if (applied.modules.some((m) => m.model === "text_encoder")) withText.push(file);
    }
    if (withText.length !== 1) {
      return [
        failedRow(
          r.mc.fixture,
          name,
          `expected one LoRA file with text-encoder modules, found ${withText.length}`,
        ),
      ];
    }
    const weight = await fusedWeight(r, "text_encoder", teFused[1] ?? "", [
      { path: join(dir, withText[0] ?? ""), scale: fuseScale(ctx, "te_fused.") },
    ]);
    return [compare(weight, r.fusedTolerance)];
  }
  return [failedRow(r.mc.fixture, name, "unknown output: no rule of the lora kind produces it")];
}

export async function runLoraFixture(ctx: FixtureContext): Promise<ConformanceRow[]> {
  const mc = await readModelCase(ctx, "lora");
  const tol = ctx.caseJson.tolerance;
  const fusedTol =
    isRecord(tol) && isRecord(tol.fused_weights) ? tol.fused_weights.suggested_max_abs_err : undefined;
  if (typeof fusedTol !== "number" || !(fusedTol >= 0)) {
    throw new ConfigError(
      caseFile(ctx),
      "tolerance.fused_weights.suggested_max_abs_err",
      "a non-negative number",
      fusedTol,
    );
  }
  const unet = await fixtureComponent(
    ctx,
    {},
    { role: "unet", className: "UNet2DConditionModel", library: "diffusers", main: false },
  );
  const text = await fixtureComponent(
    ctx,
    {},
    { role: "text_encoder", className: "CLIPTextModel", library: "transformers", main: false },
  );
  const input = (key: string): HostTensor => {
    const t = mc.inputs.get(key);
    if (t === undefined)
      throw new ConfigError(caseFile(ctx), `inputs.${key}`, "a tensor of inputs.safetensors", undefined);
    return t;
  };
  const r: Runner = {
    mc,
    fusedTolerance: fusedTol,
    models: {
      unet: { store: unet.store, weightsId: unet.weightsId },
      text_encoder: { store: text.store, weightsId: text.weightsId },
    },
    unetConfig: parseUNet2DConditionModelConfig(unet.configName, unet.config).config,
    inputs: {
      sample: input("sample"),
      encoderHiddenStates: input("encoder_hidden_states"),
      timestep: input("timestep"),
    },
  };
  const files = loraFiles(ctx);
  const rows: ConformanceRow[] = [];
  for (const name of outputNames(ctx, mc.outputs)) {
    const expected = mc.outputs.get(name);
    if (expected === undefined) {
      rows.push(failedRow(mc.fixture, name, `no tensor "${name}" in the outputs file`));
      continue;
    }
    try {
      rows.push(...(await outputRows(r, ctx, name, expected, files)));
    } catch (error) {
      rows.push(failedRow(mc.fixture, name, errorNote(error)));
    }
  }
  const keyMap = JSON.parse(await readFile(join(ctx.dir, "key_map.json"), "utf8")) as unknown;
  for (const file of files.keys()) {
    try {
      rows.push(await keyMapRow(r, ctx, file, isRecord(keyMap) ? keyMap[file] : undefined));
    } catch (error) {
      rows.push(failedRow(mc.fixture, `key_map[${file}]`, errorNote(error)));
    }
  }
  return rows;
}

export const loraKind: FixtureKind = {
  kind: "lora",
  description:
    "LoRA files (kohya/A1111 LoRA+LoCon, diffusers, PEFT, old attention processors) fused into the UNet and text encoder: noise predictions, fused weights, key map",
  run: (ctx) => runLoraFixture(ctx),
};
