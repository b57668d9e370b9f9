/**
 * Conformance kind `optimizer`: torch.optim AdamW / Adam / SGD trajectories (case.json `runs`:
 * class, hyperparameters, grad_multiplier, clip_max_norm, lr_scheduler) replayed with
 * src/train/optim on the given parameters and per-step gradients, compared per run and kind
 * (param, exp_avg, exp_avg_sq, momentum_buffer, total_norm, clipped_grad) with
 * runs.<run>.max_abs_err; the diffusers get_scheduler schedules of case.json `lr_schedules`
 * (relative 1e-12); and a state save/restore check (a resumed run equals an uninterrupted one).
 */
import { join } from "node:path";
import { ConfigError, UnsupportedError } from "../../errors.js";
import { type HostTensor, toFloat32 } from "../../tensor.js";
import {
  Adam,
  AdamW,
  type Optimizer,
  SCHEDULE_NAMES,
  SGD,
  type ScheduleName,
  clipGradNorm,
  learningRateSchedule,
} from "../../train/optim/index.js";
import { readSafetensors } from "../../weights/safetensors.js";
import type { ConformanceRow, FixtureContext, FixtureKind } from "../types.js";
import { caseFile, fixtureName, isRecord, readTensorFile } from "./model-fixture.js";

const num = (v: unknown, fallback?: number): number | undefined => (typeof v === "number" ? v : fallback);

/** The optimiser of one run (case.json runs.<run>.class + hyperparameters). */
function makeOptimizer(file: string, run: string, spec: Record<string, unknown>): Optimizer {
  const hp = isRecord(spec.hyperparameters) ? spec.hyperparameters : {};
  const lr = num(hp.lr);
  if (lr === undefined) throw new ConfigError(file, `runs.${run}.hyperparameters.lr`, "a number", hp.lr);
  const betas = Array.isArray(hp.betas) ? (hp.betas as unknown[]) : [];
  const weightDecay = num(hp.weight_decay, 0) ?? 0;
  switch (spec.class) {
    case "AdamW":
    case "Adam": {
      const options = {
        lr,
        betas: [num(betas[0], 0.9) ?? 0.9, num(betas[1], 0.999) ?? 0.999] as const,
        eps: num(hp.eps, 1e-8) ?? 1e-8,
        weightDecay,
      };
      return spec.class === "AdamW" ? new AdamW(options) : new Adam(options);
    }
    case "SGD":
      return new SGD({
        lr,
        momentum: num(hp.momentum, 0) ?? 0,
        dampening: num(hp.dampening, 0) ?? 0,
        weightDecay,
        nesterov: hp.nesterov === true,
      });
    default:
      throw new UnsupportedError(`optimizer class ${JSON.stringify(spec.class)} (run ${run})`, {
        hint: "supported: AdamW, Adam, SGD",
      });
  }
}

interface ScheduleCall {
  readonly name: ScheduleName;
  readonly kwargs: Record<string, number>;
}

/** `get_scheduler('cosine', optimizer, num_warmup_steps=2, num_training_steps=5)` -> name + kwargs. */
function parseScheduler(call: string): ScheduleCall {
  const m = /get_scheduler\(\s*['"](\w+)['"]([^)]*)\)/.exec(call);
  const name = m?.[1] as ScheduleName | undefined;
  if (!m || name === undefined || !SCHEDULE_NAMES.includes(name))
    throw new UnsupportedError(`lr scheduler call "${call}"`, {
      hint: `schedules: ${SCHEDULE_NAMES.join(", ")}`,
    });
  const kwargs: Record<string, number> = {};
  for (const kw of (m[2] ?? "").matchAll(/(\w+)\s*=\s*([-\d.e]+)/g)) kwargs[kw[1] ?? ""] = Number(kw[2]);
  return { name, kwargs };
}

function schedule(call: ScheduleCall, baseLr: number): (step: number) => number {
  const k = call.kwargs;
  return learningRateSchedule(call.name, baseLr, {
    ...(k.num_warmup_steps === undefined ? {} : { numWarmupSteps: k.num_warmup_steps }),
    ...(k.num_training_steps === undefined ? {} : { numTrainingSteps: k.num_training_steps }),
    ...(k.num_cycles === undefined ? {} : { numCycles: k.num_cycles }),
    ...(k.power === undefined ? {} : { power: k.power }),
  });
}

/** Max |a - b| over two float arrays (NaN when the lengths differ). */
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return NaN;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] ?? 0) - (b[i] ?? 0)));
  return m;
}

interface Trajectory {
  /** kind -> max abs error over steps and parameters */
  readonly errors: Map<string, number>;
  readonly lrs: number[];
  readonly final: Map<string, Float32Array>;
}

function replay(
  ctx: FixtureContext,
  run: string,
  spec: Record<string, unknown>,
  inputs: ReadonlyMap<string, HostTensor>,
  outputs: ReadonlyMap<string, HostTensor> | null,
  names: readonly string[],
  steps: number,
  resumeAt?: number,
): Trajectory {
  const file = caseFile(ctx);
  let optimizer = makeOptimizer(file, run, spec);
  const params = new Map(
    names.map((n) => [n, Float32Array.from(toFloat32(mustGet(inputs, `param0.${n}`)).data)]),
  );
  const hp = isRecord(spec.hyperparameters) ? spec.hyperparameters : {};
  const lrOf =
    typeof spec.lr_scheduler === "string"
      ? schedule(parseScheduler(spec.lr_scheduler), num(hp.lr) ?? 0)
      : () => num(hp.lr) ?? 0;
  const multiplier = Math.fround(num(spec.grad_multiplier, 1) ?? 1);
  const clip = num(spec.clip_max_norm);
  const errors = new Map<string, number>();
  const note = (kind: string, e: number): void => {
    errors.set(kind, Math.max(errors.get(kind) ?? 0, Number.isNaN(e) ? Infinity : e));
  };
  const lrs: number[] = [];
  for (let s = 0; s < steps; s++) {
    if (s === resumeAt) {
      const saved = optimizer.state();
      optimizer = makeOptimizer(file, run, spec);
      optimizer.loadState(saved);
    }
    const grads = new Map(
      names.map((n) => {
        const g = Float32Array.from(toFloat32(mustGet(inputs, `grad.step${s}.${n}`)).data);
        if (multiplier !== 1) for (let i = 0; i < g.length; i++) g[i] = Math.fround((g[i] ?? 0) * multiplier);
        return [n, g] as const;
      }),
    );
    if (clip !== undefined) {
      const total = clipGradNorm(grads.values(), clip);
      const want = outputs?.get(`${run}.step${s}.total_norm`);
      if (want) note("total_norm", Math.abs(total - Number(want.data[0])));
      for (const n of names) {
        const ref = outputs?.get(`${run}.step${s}.clipped_grad.${n}`);
        if (ref) note("clipped_grad", maxDiff(grads.get(n) ?? [], toFloat32(ref).data));
      }
    }
    const lr = lrOf(s);
    lrs.push(lr);
    optimizer.step(params, grads, lr);
    if (!outputs) continue;
    const state = optimizer.state().tensors;
    for (const n of names) {
      for (const [kind, got] of [
        ["param", params.get(n)],
        ["exp_avg", state[`${n}.exp_avg`]?.data],
        ["exp_avg_sq", state[`${n}.exp_avg_sq`]?.data],
        ["momentum_buffer", state[`${n}.momentum_buffer`]?.data],
      ] as const) {
        const ref = outputs.get(`${run}.step${s}.${kind}.${n}`);
        if (ref) note(kind, got ? maxDiff(got, toFloat32(ref).data) : NaN);
      }
    }
  }
  return { errors, lrs, final: params };
}

function mustGet(m: ReadonlyMap<string, HostTensor>, key: string): HostTensor {
  const t = m.get(key);
  if (!t) throw new ConfigError("inputs.safetensors", key, "a tensor", undefined);
  return t;
}

async function runOptimizerFixture(ctx: FixtureContext): Promise<ConformanceRow[]> {
  const fixture = fixtureName(ctx, "optimizer");
  const file = caseFile(ctx);
  const runs = ctx.caseJson.runs;
  if (!isRecord(runs)) throw new ConfigError(file, "runs", "an object of run name -> settings", runs);
  const order = ctx.caseJson.param_order;
  const names = Array.isArray(order)
    ? order.map(String)
    : isRecord(ctx.caseJson.params)
      ? Object.keys(ctx.caseJson.params)
      : [];
  const inputs = await readTensorFile(ctx, "inputs_file", "inputs.safetensors");
  const outputs = await readTensorFile(ctx, "outputs_file", "outputs.safetensors");
  let steps = 0;
  while (inputs.has(`grad.step${steps}.${names[0] ?? ""}`)) steps++;
  const rows: ConformanceRow[] = [];
  for (const [run, raw] of Object.entries(runs)) {
    if (!isRecord(raw)) throw new ConfigError(file, `runs.${run}`, "an object", raw);
    const tol = isRecord(raw.max_abs_err) ? raw.max_abs_err : {};
    const t = replay(ctx, run, raw, inputs, outputs, names, steps);
    for (const [kind, tolerance] of Object.entries(tol)) {
      const e = t.errors.get(kind);
      const limit = num(tolerance, 0) ?? 0;
      rows.push(
        e === undefined
          ? {
              fixture: `${fixture}/${run}`,
              tensor: kind,
              maxAbsError: NaN,
              tolerance: limit,
              pass: false,
              note: "not computed",
            }
          : {
              fixture: `${fixture}/${run}`,
              tensor: kind,
              maxAbsError: e,
              tolerance: limit,
              pass: e <= limit,
            },
      );
    }
    const used = Array.isArray(raw.lr_used_per_step) ? raw.lr_used_per_step.map(Number) : [];
    if (used.length > 0) {
      const e = maxDiff(t.lrs, used);
      const limit = 1e-12 * Math.max(...used.map(Math.abs), 1e-30);
      rows.push({
        fixture: `${fixture}/${run}`,
        tensor: "lr_used_per_step",
        maxAbsError: e,
        tolerance: limit,
        pass: e <= limit,
      });
    }
    // Save after half the steps, restore into a fresh optimiser, continue: must equal the uninterrupted run.
    if (steps >= 2) {
      const resumed = replay(ctx, run, raw, inputs, null, names, steps, Math.floor(steps / 2));
      const plain = replay(ctx, run, raw, inputs, null, names, steps);
      const e = Math.max(...names.map((n) => maxDiff(resumed.final.get(n) ?? [], plain.final.get(n) ?? [])));
      rows.push({
        fixture: `${fixture}/${run}`,
        tensor: "state_save_restore",
        maxAbsError: e,
        tolerance: 0,
        pass: e === 0,
        note: "resumed = uninterrupted",
      });
    }
  }
  const schedules = ctx.caseJson.lr_schedules;
  if (isRecord(schedules)) {
    const fileEntry = ctx.caseJson.lr_schedules_file;
    const name =
      isRecord(fileEntry) && typeof fileEntry.file === "string" ? fileEntry.file : "lr_schedules.safetensors";
    const stored = await readSafetensors(join(ctx.dir, name));
    for (const [key, raw] of Object.entries(schedules)) {
      if (!isRecord(raw)) continue;
      const call = typeof raw.call === "string" ? parseScheduler(raw.call) : null;
      const kwargs = isRecord(raw.kwargs) ? raw.kwargs : {};
      const sc: ScheduleCall = call ?? { name: String(raw.name) as ScheduleName, kwargs: {} };
      const merged: ScheduleCall = {
        name: sc.name,
        kwargs: {
          ...Object.fromEntries(Object.entries(kwargs).map(([k, v]) => [k, Number(v)])),
          ...sc.kwargs,
        },
      };
      const base = num(raw.base_lr, 0) ?? 0;
      const ref = stored.get(`lr_schedule.${key}`);
      const want = ref
        ? Array.from(ref.data as Float64Array)
        : Array.isArray(raw.lr_per_step)
          ? raw.lr_per_step.map(Number)
          : [];
      const lr = schedule(merged, base);
      const got = want.map((_, s) => lr(s));
      const e = maxDiff(got, want);
      const limit = 1e-12 * Math.max(...want.map(Math.abs), 1e-30);
      rows.push({
        fixture: `${fixture}/lr_schedules`,
        tensor: key,
        maxAbsError: e,
        tolerance: limit,
        pass: e <= limit,
      });
    }
  }
  return rows;
}

export const optimizerKind: FixtureKind = {
  kind: "optimizer",
  description:
    "torch.optim AdamW/Adam/SGD trajectories, clip_grad_norm_, diffusers lr schedules, state save/restore",
  run: (ctx) => runOptimizerFixture(ctx),
};
