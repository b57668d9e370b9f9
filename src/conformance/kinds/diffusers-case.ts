/**
 * Helpers for the model fixture kinds (`unet`, `controlnet`, `cross_frame_attn`): read case.json's
 * files, tolerance and weights folders, parse the Python call strings case.json gives per output
 * (`unet(0.01 * sample, 500, encoder_hidden_states=ehs).sample  # comment`) and resolve their
 * arguments against inputs.safetensors.
 */
import { access, readFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { ConfigError, InvalidArgumentError } from "../../errors.js";
import { type HostTensor, tensor, toFloat32 } from "../../tensor.js";
import { readSafetensors } from "../../weights/safetensors.js";
import { openComponentWeights } from "../../models/compiled-graph.js";
import type { WeightStore } from "../../nn/weight-store.js";
import { findWeightsFile } from "../../pipeline/components.js";
import { failedRow } from "../compare.js";
import type { ConformanceRow, FixtureContext } from "../types.js";

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export interface ModelCase {
  /** case.json path, for errors. */
  readonly file: string;
  /** case.json `fixture`. */
  readonly fixture: string;
  readonly tolerance: number;
  readonly inputs: Map<string, HostTensor>;
  readonly outputs: Map<string, HostTensor>;
  /** `calls`: output name (or pattern) -> Python call string. */
  readonly calls: Readonly<Record<string, string>>;
}

function fileName(section: unknown, fallback: string): string {
  return isRecord(section) && typeof section.file === "string" ? section.file : fallback;
}

/** Reads the parts every model fixture has. */
export async function readModelCase(ctx: FixtureContext, kind: string): Promise<ModelCase> {
  const c = ctx.caseJson;
  const file = join(ctx.dir, "case.json");
  const tolerance = isRecord(c.tolerance) ? c.tolerance.suggested_max_abs_err : undefined;
  if (typeof tolerance !== "number" || !(tolerance >= 0)) {
    throw new ConfigError(file, "tolerance.suggested_max_abs_err", "a non-negative number", tolerance);
  }
  if (!isRecord(c.calls)) throw new ConfigError(file, "calls", "an object of output name -> call", c.calls);
  const calls: Record<string, string> = {};
  for (const [k, v] of Object.entries(c.calls)) {
    if (typeof v !== "string") throw new ConfigError(file, `calls.${k}`, "a call string", v);
    calls[k] = v;
  }
  const inputs = await readSafetensors(join(ctx.dir, fileName(c.inputs_file, "inputs.safetensors")));
  const outputs = await readSafetensors(join(ctx.dir, fileName(c.outputs_file, "outputs.safetensors")));
  return {
    file,
    fixture: typeof c.fixture === "string" ? c.fixture : kind,
    tolerance,
    inputs,
    outputs,
    calls,
  };
}

/** A weights folder named by case.json (`weights` string, or `weights.<role>`), resolved from the fixture folder. */
export function weightsDir(ctx: FixtureContext, role?: string): string {
  const w = ctx.caseJson.weights;
  const rel =
    role === undefined
      ? typeof w === "string"
        ? w
        : isRecord(w)
          ? w.unet
          : undefined
      : isRecord(w)
        ? w[role]
        : undefined;
  if (typeof rel !== "string") {
    throw new ConfigError(
      join(ctx.dir, "case.json"),
      role === undefined ? "weights" : `weights.${role}`,
      "a relative folder path",
      rel,
    );
  }
  return resolve(ctx.dir, rel);
}

/**
 * The model config: case.json `config` when it is for `className` (its `_class_name`, or any
 * object when absent), else `<dir>/config.json`. Returns the JSON and the name for errors.
 */
export async function modelConfigJson(
  ctx: FixtureContext,
  dir: string,
  className: string,
): Promise<{ json: unknown; name: string }> {
  const inline = ctx.caseJson.config;
  if (isRecord(inline) && (inline._class_name === undefined || inline._class_name === className)) {
    return { json: inline, name: `${join(ctx.dir, "case.json")} config` };
  }
  const path = join(dir, "config.json");
  await access(path);
  return { json: JSON.parse(await readFile(path, "utf8")) as unknown, name: path };
}

export interface ParsedCall {
  /** The called name ("unet", "controlnet", "unet.set_attn_processor" ...). */
  readonly fn: string;
  readonly args: readonly string[];
  readonly kwargs: Readonly<Record<string, string>>;
}

/** Splits `s` at top-level commas (outside brackets). */
function splitTopLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch === "(" || ch === "[" || ch === "{") depth++;
    else if (ch === ")" || ch === "]" || ch === "}") depth--;
    else if (ch === "," && depth === 0) {
      parts.push(s.slice(start, i).trim());
      start = i + 1;
    }
  }
  const last = s.slice(start).trim();
  if (last !== "") parts.push(last);
  return parts;
}

/**
 * Parses the last `name(...)` call in a Python statement whose name is one of `fns` (comments after
 * `#` are dropped). Returns null when there is none.
 */
export function parseCall(statement: string, fns: readonly string[]): ParsedCall | null {
  const code = statement.split("#")[0] ?? "";
  let found: ParsedCall | null = null;
  for (const m of code.matchAll(/([A-Za-z_][\w.]*)\(/g)) {
    const fn = m[1] ?? "";
    if (!fns.includes(fn)) continue;
    const open = (m.index ?? 0) + m[0].length;
    let depth = 1;
    let end = open;
    while (end < code.length && depth > 0) {
      if (code[end] === "(") depth++;
      else if (code[end] === ")") depth--;
      end++;
    }
    if (depth !== 0) continue;
    const args: string[] = [];
    const kwargs: Record<string, string> = {};
    for (const part of splitTopLevel(code.slice(open, end - 1))) {
      const kw = /^([A-Za-z_]\w*)\s*=(?!=)\s*(.*)$/s.exec(part);
      if (kw) kwargs[kw[1] ?? ""] = (kw[2] ?? "").trim();
      else args.push(part);
    }
    found = { fn, args, kwargs };
  }
  return found;
}

/** Common abbreviations in the call strings -> input tensor names. */
const ALIASES: Readonly<Record<string, string>> = {
  t: "timestep",
  ehs: "encoder_hidden_states",
  cond: "controlnet_cond",
};

/**
 * Resolves an argument: a number literal, an input tensor (by name, alias, or the keyword it was
 * passed as), or `<number> * <tensor>` (computed in float32 as torch does). Throws with the reason.
 */
export function resolveArg(
  expr: string,
  inputs: ReadonlyMap<string, HostTensor>,
  keyword?: string,
): HostTensor | number {
  const e = expr.trim();
  if (/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(e)) return Number(e);
  const scaled =
    /^([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)\s*\*\s*([A-Za-z_]\w*)$/i.exec(e) ??
    /^([A-Za-z_]\w*)\s*\*\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)$/i.exec(e);
  if (scaled) {
    const [a = "", b = ""] = [scaled[1], scaled[2]];
    const [k, name] = /^[A-Za-z_]/.test(a) ? [Number(b), a] : [Number(a), b];
    const t = resolveArg(name, inputs);
    if (typeof t === "number") return Math.fround(k) * t;
    const f = Math.fround(k);
    return tensor(
      "float32",
      t.shape,
      toFloat32(t).data.map((v) => f * v),
    );
  }
  for (const name of [e, ALIASES[e], keyword]) {
    if (name === undefined) continue;
    const t = inputs.get(name);
    if (t) return t;
  }
  throw new InvalidArgumentError(
    `call argument${keyword ? ` ${keyword}` : ""}`,
    "a number, an input tensor name or <number> * <name>",
    e,
    {
      hint: `inputs.safetensors holds ${[...inputs.keys()].join(", ")}`,
    },
  );
}

/** A tensor argument, or an error naming what was found instead. */
export function tensorArg(
  expr: string | undefined,
  inputs: ReadonlyMap<string, HostTensor>,
  keyword: string,
): HostTensor {
  const v = resolveArg(expr ?? keyword, inputs, keyword);
  if (typeof v === "number") throw new InvalidArgumentError(`call argument ${keyword}`, "a tensor", v);
  return v;
}

/** The row label of one output. */
export const rowLabel = (fixture: string, name: string): string => `${fixture}/${name}`;

/** Opens the weights of the component folder `dir` (the file name as diffusers saves it). */
export async function componentStore(dir: string): Promise<WeightStore> {
  const file = await findWeightsFile(dir, "diffusers");
  return (await openComponentWeights(dirname(file), basename(file))).store;
}

/** The error message of anything thrown, for a failing row's note. */
export function errorNote(error: unknown): string {
  return `error: ${error instanceof Error ? error.message : String(error)}`;
}

/** Output tensors no row compared become failing rows (a fixture never passes by skipping). */
export function uncomparedRows(mc: ModelCase, compared: ReadonlySet<string>): ConformanceRow[] {
  return [...mc.outputs.keys()]
    .filter((k) => !compared.has(k))
    .map((k) => failedRow(rowLabel(mc.fixture, k), k, "no call in case.json produced this output"));
}
