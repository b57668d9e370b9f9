/**
 * Conformance kind `schedulers`: one diffusers scheduler per fixture folder. From case.json:
 * `scheduler_class` + `scheduler_config_file` (+ `built_with.overrides`) build the scheduler;
 * `betas` / `alphas_cumprod` in the outputs are compared with its tables; every `set_timesteps.<key>`
 * entry (N from `num_inference_steps` or the key "N<n>", or the keyword arguments of its
 * `set_timesteps_call`) checks timesteps, sigmas and init_noise_sigma; `add_noise` checks forward noising; every `loops.<name>` runs a denoising loop
 * (see schedulers-loop.ts). One row per compared tensor; anything case.json asks for that this runner
 * does not understand becomes a failing row, and so does any output tensor nothing compared.
 */
import { join } from "node:path";
import { readJsonFile } from "../../config/parse.js";
import { ConfigError } from "../../errors.js";
import { fromConfigWithWarnings } from "../../schedulers/registry.js";
import type { Scheduler } from "../../schedulers/scheduler.js";
import { tensor } from "../../tensor.js";
import { readSafetensors } from "../../weights/safetensors.js";
import { failedRow } from "../compare.js";
import type { ConformanceRow, FixtureContext, FixtureKind } from "../types.js";
import {
  type CheckContext,
  checkScalar,
  checkTensor,
  checkTimesteps,
  isRecord,
  tensorNumbers,
  toF32,
} from "./schedulers-check.js";
import { parseModelFn, runLoop, setTimestepsFor } from "./schedulers-loop.js";

const TOP_KEYS = new Set([
  "fixture",
  "reference",
  "scheduler_class",
  "scheduler_config_file",
  "built_with",
  "set_timesteps",
  "add_noise",
  "loops",
  "model_fn",
  "tolerance",
  "inputs_file",
  "outputs_file",
]);
const SET_TIMESTEPS_KEYS = new Set([
  "timesteps_tensor",
  "timesteps_dtype",
  "timesteps",
  "len",
  "init_noise_sigma",
  "sigmas_tensor",
  "sigmas",
  "num_inference_steps",
  "set_timesteps_call",
]);
const SIGMA_SCHEDULERS = new Set([
  "EulerDiscreteScheduler",
  "EulerAncestralDiscreteScheduler",
  "LMSDiscreteScheduler",
  "DPMSolverMultistepScheduler",
  "UniPCMultistepScheduler",
]);

function fileName(section: unknown, fallback: string): string {
  return isRecord(section) && typeof section.file === "string" ? section.file : fallback;
}

async function buildScheduler(ctx: FixtureContext, file: string): Promise<Scheduler> {
  const c = ctx.caseJson;
  if (typeof c.scheduler_class !== "string")
    throw new ConfigError(file, "scheduler_class", "a diffusers class name", c.scheduler_class);
  const configFile =
    typeof c.scheduler_config_file === "string" ? c.scheduler_config_file : "scheduler/scheduler_config.json";
  const configPath = join(ctx.dir, configFile);
  const raw = await readJsonFile(configPath, "scheduler config", { pythonFloats: true });
  if (!isRecord(raw)) throw new ConfigError(configPath, "(root)", "a JSON object", raw);
  const overrides = isRecord(c.built_with) && isRecord(c.built_with.overrides) ? c.built_with.overrides : {};
  return fromConfigWithWarnings(c.scheduler_class, { ...raw, ...overrides }, { file: configPath }).scheduler;
}

function checkSetTimesteps(ctx: CheckContext, scheduler: Scheduler, key: string, entry: unknown): void {
  if (!isRecord(entry)) {
    ctx.rows.push(failedRow(ctx.label, `set_timesteps.${key}`, "entry is not an object"));
    return;
  }
  for (const k of Object.keys(entry)) {
    if (!SET_TIMESTEPS_KEYS.has(k))
      ctx.rows.push(failedRow(ctx.label, `set_timesteps.${key}.${k}`, "not understood by this runner"));
  }
  const fromKey = /^N(\d+)$/.exec(key)?.[1];
  const n =
    typeof entry.num_inference_steps === "number"
      ? entry.num_inference_steps
      : fromKey === undefined
        ? NaN
        : Number(fromKey);
  const tsName =
    typeof entry.timesteps_tensor === "string" ? entry.timesteps_tensor : `set_timesteps.${key}.timesteps`;
  const call = entry.set_timesteps_call;
  try {
    setTimestepsFor(scheduler, n, call);
  } catch (error) {
    const args = call === undefined ? String(n) : JSON.stringify(call);
    ctx.rows.push(
      failedRow(
        ctx.label,
        tsName,
        `setTimesteps(${args}) failed: ${error instanceof Error ? error.message : String(error)}`,
      ),
    );
    return;
  }
  if (call !== undefined && typeof entry.num_inference_steps === "number") {
    checkScalar(
      ctx,
      `set_timesteps.${key}.num_inference_steps`,
      scheduler.numInferenceSteps ?? NaN,
      entry.num_inference_steps,
    );
  }
  checkTimesteps(
    ctx,
    tsName,
    scheduler.timesteps,
    Array.isArray(entry.timesteps) ? entry.timesteps : undefined,
  );
  if (typeof entry.init_noise_sigma === "number") {
    checkScalar(
      ctx,
      `set_timesteps.${key}.init_noise_sigma`,
      scheduler.initNoiseSigma,
      entry.init_noise_sigma,
    );
  }
  if (typeof entry.sigmas_tensor === "string") {
    const sigmas = scheduler.sigmas;
    if (sigmas === undefined)
      ctx.rows.push(failedRow(ctx.label, entry.sigmas_tensor, `${scheduler.className} has no sigmas`));
    else checkTensor(ctx, entry.sigmas_tensor, tensor("float32", [sigmas.length], sigmas));
  }
}

function checkAddNoise(
  ctx: CheckContext,
  scheduler: Scheduler,
  spec: unknown,
  loopSteps: readonly number[],
): void {
  if (!isRecord(spec)) {
    ctx.rows.push(failedRow(ctx.label, "add_noise", "add_noise is not an object"));
    return;
  }
  const output = typeof spec.output === "string" ? spec.output : "add_noise.noisy_samples";
  const names = Array.isArray(spec.inputs)
    ? spec.inputs.filter((s): s is string => typeof s === "string")
    : [];
  const pick = (suffix: string, position: number): string =>
    names.find((s) => s.endsWith(suffix)) ?? names[position] ?? `add_noise.${suffix}`;
  const original = ctx.inputs.get(pick("original_samples", 0));
  const noise = ctx.inputs.get(pick("noise", 1));
  const tsTensor = ctx.inputs.get(pick("timesteps", 2));
  const timesteps =
    tsTensor !== undefined
      ? tensorNumbers(tsTensor)
      : Array.isArray(spec.timesteps)
        ? spec.timesteps.map(Number)
        : undefined;
  if (original === undefined || noise === undefined || timesteps === undefined) {
    ctx.checked.add(output);
    ctx.rows.push(
      failedRow(ctx.label, output, "add_noise inputs (original_samples, noise, timesteps) not found"),
    );
    return;
  }
  try {
    if (SIGMA_SCHEDULERS.has(scheduler.className)) {
      // Sigma schedulers look timesteps up in a schedule: the note names it ("set_timesteps(10) first"),
      // otherwise take the first step count whose schedule holds every timestep.
      const noted = typeof spec.note === "string" ? /set_timesteps\((\d+)\)/.exec(spec.note)?.[1] : undefined;
      const candidates = [...(noted === undefined ? [] : [Number(noted)]), ...loopSteps];
      const n = candidates.find((k) => {
        scheduler.setTimesteps(k);
        return timesteps.every((t) => scheduler.timesteps.includes(t));
      });
      if (n === undefined)
        throw new Error("no set_timesteps(N) from the note or the loops contains these timesteps");
      scheduler.setTimesteps(n);
    }
    checkTensor(ctx, output, scheduler.addNoise(toF32(original), toF32(noise), timesteps));
  } catch (error) {
    ctx.checked.add(output);
    ctx.rows.push(
      failedRow(
        ctx.label,
        output,
        `add_noise failed: ${error instanceof Error ? error.message : String(error)}`,
      ),
    );
  }
}

async function runSchedulers(ctx: FixtureContext): Promise<readonly ConformanceRow[]> {
  const c = ctx.caseJson;
  const file = join(ctx.dir, "case.json");
  const label = typeof c.fixture === "string" ? c.fixture : "schedulers";
  const tolerance = isRecord(c.tolerance) ? c.tolerance.suggested_max_abs_err : undefined;
  if (typeof tolerance !== "number" || !(tolerance >= 0)) {
    throw new ConfigError(file, "tolerance.suggested_max_abs_err", "a non-negative number", tolerance);
  }
  const tsNote =
    isRecord(c.tolerance) && typeof c.tolerance.timesteps === "string" ? c.tolerance.timesteps : "";
  const within = /within\s+([0-9.eE+-]+)/.exec(tsNote)?.[1];
  const ctxCheck: CheckContext = {
    label,
    inputs: await readSafetensors(join(ctx.dir, fileName(c.inputs_file, "inputs.safetensors"))),
    outputs: await readSafetensors(join(ctx.dir, fileName(c.outputs_file, "outputs.safetensors"))),
    tolerance,
    timestepTolerance: within !== undefined && Number.isFinite(Number(within)) ? Number(within) : 1e-4,
    rows: [],
    checked: new Set(),
  };
  const rows = ctxCheck.rows;
  for (const key of Object.keys(c)) {
    if (!TOP_KEYS.has(key))
      rows.push(failedRow(label, key, `case.json key "${key}" is not understood by this runner`));
  }
  const scheduler = await buildScheduler(ctx, file);
  const tables: [string, Float32Array][] = [
    ["betas", scheduler.betas],
    ["alphas_cumprod", scheduler.alphasCumprod],
  ];
  for (const [name, values] of tables) {
    if (ctxCheck.outputs.has(name)) checkTensor(ctxCheck, name, tensor("float32", [values.length], values));
  }
  if (isRecord(c.set_timesteps)) {
    for (const [key, entry] of Object.entries(c.set_timesteps))
      checkSetTimesteps(ctxCheck, scheduler, key, entry);
  }
  const loops = isRecord(c.loops) ? c.loops : {};
  const loopSteps = Object.values(loops).flatMap((l) =>
    isRecord(l) && typeof l.num_inference_steps === "number" ? [l.num_inference_steps] : [],
  );
  if (c.add_noise !== undefined) checkAddNoise(ctxCheck, scheduler, c.add_noise, loopSteps);
  if (Object.keys(loops).length > 0) {
    const fn = parseModelFn(c.model_fn);
    if (typeof fn === "string") rows.push(failedRow(label, "model_fn", fn));
    else for (const [name, cfg] of Object.entries(loops)) runLoop(ctxCheck, scheduler, name, cfg, fn);
  }
  for (const name of ctxCheck.outputs.keys()) {
    if (!ctxCheck.checked.has(name))
      rows.push(failedRow(label, name, "reference tensor not compared by any case.json entry"));
  }
  return rows;
}

export const schedulersKind: FixtureKind = {
  kind: "schedulers",
  description:
    "diffusers schedulers: tables, set_timesteps, add_noise and denoising loops with an analytic model",
  run: runSchedulers,
};
