/**
 * Conformance kind `optimizer`: torch.optim AdamW / Adam / SGD trajectories (case.json `runs`:
 * class, hyperparameters, grad_multiplier, clip_max_norm, lr_scheduler or cosine_schedule)
 * replayed with src/train/optim on the given parameters and per-step gradients (a gradient missing
 * from the inputs is torch's `p.grad = None`: the parameter is skipped at that step), compared per
 * run and kind (param, exp_avg, exp_avg_sq, max_exp_avg_sq, momentum_buffer, step, total_norm,
 * clipped_grad) with runs.<run>.max_abs_err; the diffusers get_scheduler schedules of case.json
 * `lr_schedules` (relative 1e-12); and a state save/restore check (a resumed run equals an
 * uninterrupted one). A run or schedule that cannot be replayed (a setting we do not implement, a
 * bad field) is a failing row of its own; the others still run. Reference outputs of a run that no
 * row compares are failing rows too.
 */
import { join } from "node:path";
import { ConfigError, UnsupportedError } from "../../errors.js";
import { type HostTensor, toFloat32 } from "../../tensor.js";
import {
  GET_SCHEDULER_NAMES,
  type GetSchedulerCall,
  type GetSchedulerName,
  type Optimizer,
  type PyValue,
  clipGradNorm,
  getSchedulerLr,
  parseGetSchedulerCall,
  torchOptimizer,
} from "../../train/optim/index.js";
import { readSafetensors } from "../../weights/safetensors.js";
import { failedRow } from "../compare.js";
import type { ConformanceRow, FixtureContext, FixtureKind } from "../types.js";
import { caseFile, errorNote, fixtureName, isRecord, readTensorFile } from "./model-fixture.js";

const num = (v: unknown, fallback?: number): number | undefined => (typeof v === "number" ? v : fallback);

/** The optimiser of one run and its base lr (case.json runs.<run>.class + hyperparameters). */
function makeOptimizer(
  file: string,
  run: string,
  spec: Record<string, unknown>,
): { optimizer: Optimizer; lr: number } {
  const hp = spec.hyperparameters ?? {};
  if (!isRecord(hp)) throw new ConfigError(file, `runs.${run}.hyperparameters`, "an object", hp);
  return torchOptimizer(spec.class, hp);
}

/** A JSON kwargs object as Python values (anything else is refused). */
function pyKwargs(file: string, field: string, raw: unknown): Record<string, PyValue> {
  if (raw === undefined || raw === null) return {};
  if (!isRecord(raw)) throw new ConfigError(file, field, "an object of keyword arguments", raw);
  const out: Record<string, PyValue> = {};
  for (const [key, v] of Object.entries(raw)) {
    if (!(v === null || ["number", "string", "boolean"].includes(typeof v)))
      throw new ConfigError(file, `${field}.${key}`, "a number, string, boolean or null", v);
    out[key] = v as PyValue;
  }
  return out;
}

/** The lr schedule of a run: `lr_scheduler` (a get_scheduler call), else `cosine_schedule`, else constant. */
function runSchedule(
  file: string,
  run: string,
  spec: Record<string, unknown>,
  baseLr: number,
): (s: number) => number {
  const call = spec.lr_scheduler;
  if (typeof call === "string") return getSchedulerLr(parseGetSchedulerCall(call), baseLr);
  if (isRecord(call)) {
    const name = call.name;
    if (!GET_SCHEDULER_NAMES.includes(name as GetSchedulerName))
      throw new UnsupportedError(`lr scheduler ${JSON.stringify(name)} (run ${run})`, {
        hint: `schedules: ${GET_SCHEDULER_NAMES.join(", ")}`,
      });
    return getSchedulerLr(
      {
        name: name as GetSchedulerName,
        kwargs: pyKwargs(file, `runs.${run}.lr_scheduler.kwargs`, call.kwargs),
      },
      baseLr,
    );
  }
  if (call !== undefined && call !== null)
    throw new ConfigError(file, `runs.${run}.lr_scheduler`, "a get_scheduler call or null", call);
  const cosine = spec.cosine_schedule;
  if (isRecord(cosine))
    return getSchedulerLr(
      { name: "cosine", kwargs: pyKwargs(file, `runs.${run}.cosine_schedule`, cosine) },
      baseLr,
    );
  if (cosine !== undefined && cosine !== null)
    throw new ConfigError(file, `runs.${run}.cosine_schedule`, "an object or null", cosine);
  return () => baseLr;
}

/** Run settings read by the replay; descriptive ones; anything else must be null / false. */
const RUN_SETTINGS = [
  "class",
  "hyperparameters",
  "grad_multiplier",
  "clip_max_norm",
  "lr_scheduler",
  "cosine_schedule",
  "lr_used_per_step",
  "max_abs_err",
];
const RUN_DESCRIPTIONS = ["optimizer", "per_step", "note", "notes", "description", "comment"];

function checkRunSettings(run: string, spec: Record<string, unknown>): void {
  const unknown = Object.entries(spec)
    .filter(
      ([k, v]) =>
        !RUN_SETTINGS.includes(k) &&
        !RUN_DESCRIPTIONS.includes(k) &&
        !k.startsWith("observed_") &&
        v !== null &&
        v !== false,
    )
    .map(([k]) => k);
  if (unknown.length > 0)
    throw new UnsupportedError(`run settings ${unknown.join(", ")} (run ${run})`, {
      hint: `the optimizer runner reads ${RUN_SETTINGS.join(", ")}`,
    });
}

/** Max |a - b| over two float arrays (NaN when the lengths differ). */
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return NaN;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] ?? 0) - (b[i] ?? 0)));
  return m;
}

/** Optimiser state kinds compared per parameter (`<run>.step<s>.<kind>.<name>`). */
const STATE_KINDS = ["exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer"] as const;

interface Trajectory {
  /** kind -> max abs error over steps and parameters */
  readonly errors: Map<string, number>;
  readonly lrs: number[];
  /** Final parameters and optimiser state tensors, by name. */
  readonly final: Map<string, ArrayLike<number>>;
  /** Reference output names that were compared. */
  readonly compared: Set<string>;
}

interface Replay {
  readonly ctx: FixtureContext;
  readonly run: string;
  readonly spec: Record<string, unknown>;
  readonly inputs: ReadonlyMap<string, HostTensor>;
  readonly names: readonly string[];
  readonly steps: number;
}

function replay(r: Replay, outputs: ReadonlyMap<string, HostTensor> | null, resumeAt?: number): Trajectory {
  const { run, spec, inputs, names, steps } = r;
  const file = caseFile(r.ctx);
  checkRunSettings(run, spec);
  const made = makeOptimizer(file, run, spec);
  let optimizer = made.optimizer;
  const params = new Map(
    names.map((n) => [n, Float32Array.from(toFloat32(mustGet(inputs, `param0.${n}`)).data)]),
  );
  const lrOf = runSchedule(file, run, spec, made.lr);
  const gm = spec.grad_multiplier ?? 1;
  if (typeof gm !== "number") throw new ConfigError(file, `runs.${run}.grad_multiplier`, "a number", gm);
  const multiplier = Math.fround(gm);
  const clip = spec.clip_max_norm ?? undefined;
  if (clip !== undefined && typeof clip !== "number")
    throw new ConfigError(file, `runs.${run}.clip_max_norm`, "a number or null", clip);
  const errors = new Map<string, number>();
  const compared = new Set<string>();
  const note = (kind: string, e: number): void => {
    errors.set(kind, Math.max(errors.get(kind) ?? 0, Number.isNaN(e) ? Infinity : e));
  };
  const ref = (key: string): HostTensor | undefined => {
    const t = outputs?.get(key);
    if (t) compared.add(key);
    return t;
  };
  const lrs: number[] = [];
  for (let s = 0; s < steps; s++) {
    if (s === resumeAt) {
      const saved = optimizer.state();
      optimizer = makeOptimizer(file, run, spec).optimizer;
      optimizer.loadState(saved);
    }
    // A gradient missing from the inputs is `p.grad = None` at this step.
    const grads = new Map(
      names.map((n) => {
        const t = inputs.get(`grad.step${s}.${n}`);
        if (!t) return [n, null] as const;
        const g = Float32Array.from(toFloat32(t).data);
        if (multiplier !== 1) for (let i = 0; i < g.length; i++) g[i] = Math.fround((g[i] ?? 0) * multiplier);
        return [n, g] as const;
      }),
    );
    if (clip !== undefined) {
      const total = clipGradNorm(grads.values(), clip);
      const want = ref(`${run}.step${s}.total_norm`);
      if (want) note("total_norm", Math.abs(total - Number(want.data[0])));
      for (const n of names) {
        const want = ref(`${run}.step${s}.clipped_grad.${n}`);
        if (want) note("clipped_grad", maxDiff(grads.get(n) ?? [], toFloat32(want).data));
      }
    }
    const lr = lrOf(s);
    lrs.push(lr);
    optimizer.step(params, grads, lr);
    if (!outputs) continue;
    const state = optimizer.state();
    for (const n of names) {
      const got: [string, ArrayLike<number> | undefined][] = [
        ["param", params.get(n)],
        ...STATE_KINDS.map((kind): [string, ArrayLike<number> | undefined] => [
          kind,
          state.tensors[`${n}.${kind}`]?.data,
        ]),
        ["step", n in (state.paramSteps ?? {}) ? [state.paramSteps?.[n] ?? 0] : undefined],
      ];
      for (const [kind, value] of got) {
        const want = ref(`${run}.step${s}.${kind}.${n}`);
        // a reference for state we do not have (or of another size) fails
        if (want) note(kind, value ? maxDiff(value, toFloat32(want).data) : NaN);
      }
    }
  }
  const final = new Map<string, ArrayLike<number>>(params);
  for (const [key, t] of Object.entries(optimizer.state().tensors)) final.set(`state.${key}`, t.data);
  return { errors, lrs, final, compared };
}

function mustGet(m: ReadonlyMap<string, HostTensor>, key: string): HostTensor {
  const t = m.get(key);
  if (!t) throw new ConfigError("inputs.safetensors", key, "a tensor", undefined);
  return t;
}

/** 1 + the largest `step<s>` of the keys matching `pattern` (group 1 = s); 0 if none. */
function stepsIn(keys: Iterable<string>, pattern: RegExp): number {
  let n = 0;
  for (const key of keys) {
    const m = pattern.exec(key);
    if (m) n = Math.max(n, Number(m[1]) + 1);
  }
  return n;
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Tolerance of a kind a run's max_abs_err does not list (AMSGrad's maximum is an exp_avg_sq). */
function fallbackTolerance(
  tol: Record<string, unknown>,
  kind: string,
): { limit: number; note: string } | undefined {
  if (kind === "step") return { limit: 0, note: "exact step count" };
  if (kind === "max_exp_avg_sq" && typeof tol.exp_avg_sq === "number")
    return { limit: tol.exp_avg_sq, note: "tolerance of exp_avg_sq" };
  return undefined;
}

function runRows(
  r: Replay,
  fixture: string,
  outputs: ReadonlyMap<string, HostTensor>,
  tol: Record<string, unknown>,
): ConformanceRow[] {
  const { run, spec, names, steps } = r;
  const at = `${fixture}/${run}`;
  const rows: ConformanceRow[] = [];
  const t = replay(r, outputs);
  const kinds = new Set([...Object.keys(tol), ...t.errors.keys()]);
  for (const kind of kinds) {
    const e = t.errors.get(kind);
    const listed = kind in tol;
    const fallback = listed ? undefined : fallbackTolerance(tol, kind);
    if (!listed && !fallback) {
      rows.push(
        failedRow(at, kind, `compared (max abs err ${String(e)}) but runs.${run}.max_abs_err has no ${kind}`),
      );
      continue;
    }
    const limit = listed ? (num(tol[kind], 0) ?? 0) : (fallback?.limit ?? 0);
    rows.push(
      e === undefined
        ? { fixture: at, tensor: kind, maxAbsError: NaN, tolerance: limit, pass: false, note: "not computed" }
        : {
            fixture: at,
            tensor: kind,
            maxAbsError: e,
            tolerance: limit,
            pass: e <= limit,
            ...(fallback ? { note: fallback.note } : {}),
          },
    );
  }
  // reference outputs of this run that no comparison read
  const missed = new Map<string, number>();
  const prefix = new RegExp(`^${escape(run)}\\.step\\d+\\.([^.]+)`);
  for (const key of outputs.keys()) {
    const kind = prefix.exec(key)?.[1];
    if (kind !== undefined && !t.compared.has(key)) missed.set(kind, (missed.get(kind) ?? 0) + 1);
  }
  for (const [kind, count] of missed)
    rows.push(
      failedRow(at, `uncompared ${kind}`, `${count} reference tensor(s) of kind ${kind} not compared`),
    );
  const used = Array.isArray(spec.lr_used_per_step) ? spec.lr_used_per_step.map(Number) : [];
  if (used.length > 0) {
    const e = maxDiff(t.lrs, used);
    const limit = 1e-12 * Math.max(...used.map(Math.abs), 1e-30);
    rows.push({
      fixture: at,
      tensor: "lr_used_per_step",
      maxAbsError: e,
      tolerance: limit,
      pass: e <= limit,
    });
  }
  // Save after half the steps, restore into a fresh optimiser, continue: must equal the uninterrupted run.
  if (steps >= 2) {
    const resumed = replay(r, null, Math.floor(steps / 2));
    const plain = replay(r, null);
    const keys = new Set([...resumed.final.keys(), ...plain.final.keys()]);
    const e = Math.max(
      0,
      ...[...keys].map((k) => maxDiff(resumed.final.get(k) ?? [NaN], plain.final.get(k) ?? [NaN])),
    );
    rows.push({
      fixture: at,
      tensor: "state_save_restore",
      maxAbsError: e,
      tolerance: 0,
      pass: e === 0,
      note: `resumed = uninterrupted (${names.length} parameters and the optimiser state)`,
    });
  }
  return rows;
}

/** The lr_schedules rows: one per schedule, a failing one where a schedule cannot be computed. */
async function scheduleRows(ctx: FixtureContext, fixture: string): Promise<ConformanceRow[]> {
  const schedules = ctx.caseJson.lr_schedules;
  if (!isRecord(schedules)) return [];
  const file = caseFile(ctx);
  const at = `${fixture}/lr_schedules`;
  const fileEntry = ctx.caseJson.lr_schedules_file;
  const name =
    isRecord(fileEntry) && typeof fileEntry.file === "string" ? fileEntry.file : "lr_schedules.safetensors";
  let stored: ReadonlyMap<string, HostTensor> = new Map();
  let storedError: unknown;
  try {
    stored = await readSafetensors(join(ctx.dir, name));
  } catch (error) {
    storedError = error;
  }
  const rows: ConformanceRow[] = [];
  for (const [key, raw] of Object.entries(schedules)) {
    try {
      if (!isRecord(raw)) throw new ConfigError(file, `lr_schedules.${key}`, "an object", raw);
      const call = typeof raw.call === "string" ? parseGetSchedulerCall(raw.call) : null;
      const scheduleName = call?.name ?? raw.name;
      if (!GET_SCHEDULER_NAMES.includes(scheduleName as GetSchedulerName))
        throw new UnsupportedError(`lr schedule ${JSON.stringify(scheduleName)}`, {
          hint: `schedules: ${GET_SCHEDULER_NAMES.join(", ")}`,
        });
      const merged: GetSchedulerCall = {
        name: scheduleName as GetSchedulerName,
        kwargs: { ...pyKwargs(file, `lr_schedules.${key}.kwargs`, raw.kwargs), ...call?.kwargs },
      };
      const base = num(raw.base_lr);
      if (base === undefined)
        throw new ConfigError(file, `lr_schedules.${key}.base_lr`, "a number", raw.base_lr);
      const ref = stored.get(`lr_schedule.${key}`);
      const want = ref
        ? Array.from(ref.data as ArrayLike<number>, Number)
        : Array.isArray(raw.lr_per_step)
          ? raw.lr_per_step.map(Number)
          : [];
      if (want.length === 0)
        throw new ConfigError(file, `lr_schedules.${key}.lr_per_step`, "reference lrs", raw.lr_per_step, {
          ...(storedError === undefined ? {} : { cause: storedError, hint: `${name} could not be read` }),
        });
      const lr = getSchedulerLr(merged, base);
      const got = want.map((_, s) => lr(s));
      const e = maxDiff(got, want);
      const limit = 1e-12 * Math.max(...want.map(Math.abs), 1e-30);
      rows.push({ fixture: at, tensor: key, maxAbsError: e, tolerance: limit, pass: e <= limit });
    } catch (error) {
      rows.push(failedRow(at, key, errorNote(error)));
    }
  }
  return rows;
}

async function runOptimizerFixture(ctx: FixtureContext): Promise<ConformanceRow[]> {
  const fixture = fixtureName(ctx, "optimizer");
  const file = caseFile(ctx);
  const runs = ctx.caseJson.runs;
  if (!isRecord(runs)) throw new ConfigError(file, "runs", "an object of run name -> settings", runs);
  const inputs = await readTensorFile(ctx, "inputs_file", "inputs.safetensors");
  const outputs = await readTensorFile(ctx, "outputs_file", "outputs.safetensors");
  const order = ctx.caseJson.param_order;
  const names = Array.isArray(order)
    ? order.map(String)
    : isRecord(ctx.caseJson.params)
      ? Object.keys(ctx.caseJson.params)
      : [...inputs.keys()].filter((k) => k.startsWith("param0.")).map((k) => k.slice("param0.".length));
  // Steps: every gradient of any parameter counts (a parameter may have none at some steps).
  const gradSteps = stepsIn(inputs.keys(), /^grad\.step(\d+)\./);
  const rows: ConformanceRow[] = [];
  for (const [run, raw] of Object.entries(runs)) {
    try {
      if (!isRecord(raw)) throw new ConfigError(file, `runs.${run}`, "an object", raw);
      const tol = raw.max_abs_err ?? {};
      if (!isRecord(tol)) throw new ConfigError(file, `runs.${run}.max_abs_err`, "an object", tol);
      // A run's own length: its reference outputs and lrs (steps at which no parameter had a
      // gradient still count), else the gradients given.
      const used = Array.isArray(raw.lr_used_per_step) ? raw.lr_used_per_step.length : 0;
      const own = Math.max(used, stepsIn(outputs.keys(), new RegExp(`^${escape(run)}\\.step(\\d+)\\.`)));
      const steps = own > 0 ? own : gradSteps;
      rows.push(...runRows({ ctx, run, spec: raw, inputs, names, steps }, fixture, outputs, tol));
    } catch (error) {
      rows.push(failedRow(`${fixture}/${run}`, "run", errorNote(error)));
    }
  }
  rows.push(...(await scheduleRows(ctx, fixture)));
  return rows;
}

export const optimizerKind: FixtureKind = {
  kind: "optimizer",
  description:
    "torch.optim AdamW/Adam/SGD trajectories, clip_grad_norm_, diffusers lr schedules, state save/restore",
  run: (ctx) => runOptimizerFixture(ctx),
};
