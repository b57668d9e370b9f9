import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { optimizerKind } from "../src/conformance/kinds/optimizer.js";
import { runConformance } from "../src/conformance/run.js";
import type { ConformanceRow } from "../src/conformance/types.js";
import { InvalidArgumentError } from "../src/errors.js";
import { type HostTensor, tensor } from "../src/tensor.js";
import { Adam, AdamW, SGD, clipGradNorm, learningRateSchedule, sumRows } from "../src/train/optim/index.js";
import { serializeSafetensors } from "../src/weights/safetensors.js";
import { GOLDEN } from "./helpers/golden-fixture.js";
import { type TorchAdamSpec, torchAdamStep } from "./helpers/torch-adam.js";

describe("optimizer golden fixture (torch.optim 1.13, diffusers get_scheduler)", () => {
  it("every run, kind, schedule and the state save/restore check pass", async () => {
    const rows = (await runConformance([join(GOLDEN, "optimizer")])).flatMap((r) => r.rows);
    expect(rows.length).toBeGreaterThan(50);
    for (const row of rows) {
      console.log(
        `${row.fixture} ${row.tensor}: max abs err ${row.maxAbsError.toExponential(2)} (tol ${row.tolerance})`,
      );
      expect(row.pass, `${row.fixture} ${row.tensor} ${row.note ?? ""} err ${row.maxAbsError}`).toBe(true);
    }
    for (const run of ["adamw_strong_decay", "adamw_tiny_grads", "sgd_nesterov_wd", "adamw_clip_cosine"])
      expect(rows.some((r) => r.fixture === `optimizer/${run}` && r.tensor === "param")).toBe(true);
  });
});

describe("optimisers", () => {
  it("skip parameters without a gradient (no decay, no state)", () => {
    const p = Float32Array.from([1, 2]);
    const q = Float32Array.from([3]);
    const opt = new AdamW({ lr: 0.1, weightDecay: 0.5 });
    opt.step(
      new Map([
        ["p", p],
        ["q", q],
      ]),
      new Map([
        ["p", Float32Array.from([0.1, -0.1])],
        ["q", null],
      ]),
    );
    expect(Array.from(q)).toEqual([3]);
    expect(Object.keys(opt.state().tensors).sort()).toEqual(["p.exp_avg", "p.exp_avg_sq"]);
  });

  it("lazy parameters (SparseAdam semantics): zero-gradient elements keep value and moments", () => {
    const grads = [
      [0.5, 0, -0.25],
      [0, 0, 0.75],
      [0.1, 0, 0],
    ];
    const lazy = new Adam({ lr: 0.01, lazy: (n) => n === "table" });
    const plain = new Adam({ lr: 0.01 });
    const table = Float32Array.from([1, 2, 3]);
    const dense = Float32Array.from([1, 2, 3]);
    for (const g of grads) {
      lazy.step(new Map([["table", table]]), new Map([["table", Float32Array.from(g)]]));
      plain.step(new Map([["table", dense]]), new Map([["table", Float32Array.from(g)]]));
    }
    // element 1 never had a gradient: untouched, no moments
    expect(table[1]).toBe(2);
    const m = lazy.state().tensors["table.exp_avg"]?.data as Float32Array;
    expect(m[1]).toBe(0);
    // element 0: steps 1 and 3 only (its moments did not decay at step 2), so it differs from Adam,
    // whose step 2 moves it with the decayed momentum
    expect(table[0]).not.toBe(dense[0]);
    expect(dense[1]).toBe(2);
    // the same schedule written out: m, v updated at t = 1 and t = 3, bias corrections of t
    let [p, mm, vv] = [1, 0, 0];
    for (const [t, g] of [
      [1, 0.5],
      [3, 0.1],
    ] as const) {
      mm = 0.9 * mm + 0.1 * g;
      vv = 0.999 * vv + 0.001 * g * g;
      p -= (0.01 / (1 - 0.9 ** t)) * (mm / (Math.sqrt(vv) / Math.sqrt(1 - 0.999 ** t) + 1e-8));
    }
    expect(table[0]).toBeCloseTo(p, 6);
  });

  it("sumRows: one float32 sum per distinct row, rows in order of first appearance, across calls", () => {
    const f = Math.fround;
    const a = sumRows(
      [7, 2, 7, 100000, 2, 7],
      Float32Array.from([0.1, 1, 0.2, 2, 0.3, 3, 5, 5, 0.4, 4, 1e8, 1]),
      2,
    );
    expect(Array.from(a.rows)).toEqual([7, 2, 100000]);
    expect(Array.from(a.values)).toEqual([
      f(f(f(0.1) + f(0.3)) + 1e8),
      f(f(1 + 3) + 1),
      f(f(0.2) + f(0.4)),
      6,
      5,
      5,
    ]);
    // a later call with fewer, smaller rows sees none of the first call's slots
    const b = sumRows([3, 7, 3], Float32Array.from([1, 2, 4]), 1);
    expect(Array.from(b.rows)).toEqual([3, 7]);
    expect(Array.from(b.values)).toEqual([5, 2]);
    expect(sumRows([], new Float32Array(), 3).rows.length).toBe(0);
    expect(() => sumRows([1, -1], new Float32Array(2), 1)).toThrow(InvalidArgumentError);
  });

  it("clip_grad_norm_ returns the norm before clipping and scales every gradient", () => {
    const a = Float32Array.from([3, 0]);
    const b = Float32Array.from([4]);
    expect(clipGradNorm([a, b], 1)).toBeCloseTo(5, 6);
    expect(a[0]).toBeCloseTo(0.6, 6);
    expect(b[0]).toBeCloseTo(0.8, 6);
  });

  it("reject bad settings with typed errors", () => {
    expect(() => new SGD({ lr: 0.1, nesterov: true })).toThrow(InvalidArgumentError);
    expect(() => learningRateSchedule("cosine", 1e-4)).toThrow(InvalidArgumentError);
    const opt = new AdamW({ lr: 0.1 });
    expect(() =>
      opt.loadState({
        step: 1,
        tensors: { "w.momentum_buffer": { dtype: "float32", shape: [1], data: new Float32Array(1) } },
      }),
    ).toThrow(InvalidArgumentError);
  });
});

/**
 * A small fixture written as the torch generator would write it, with references from torch 1.13's
 * formulas in float64 (independent of src/train/optim): AMSGrad + maximize with AdamW's default
 * weight decay, SGD maximize, a cosine_schedule object, a piecewise_constant run, gradients missing
 * at some steps, and settings the runner must refuse per run / per schedule.
 */
describe("optimizer runner on settings the public fixture does not use", () => {
  const P0: Record<string, number[]> = { a: [0.5, -1.25], b: [2, -0.75, 0.1] };
  // a has no gradient at the last step, b none at step 1 (torch: p.grad = None)
  const GRADS: Record<string, (number[] | null)[]> = {
    a: [[0.3, -0.2], [0.05, 0.4], null],
    b: [[-0.6, 0.1, 0.9], null, [0.2, -0.3, 0.01]],
  };
  const STEPS = 3;
  let dir = "";
  let rows: readonly ConformanceRow[] = [];

  interface AdamSpec extends TorchAdamSpec {
    lrs: number[];
  }
  /** torch 1.13 _single_tensor_adam(w), float64, per-parameter steps, None gradients skipped. */
  function adamRef(o: AdamSpec, out: Map<string, HostTensor>, run: string): void {
    for (const [name, p0] of Object.entries(P0)) {
      const p = [...p0];
      const m = p.map(() => 0);
      const v = p.map(() => 0);
      const vmax = p.map(() => 0);
      let t = 0;
      for (let s = 0; s < STEPS; s++) {
        const grad = GRADS[name]?.[s];
        const lr = o.lrs[s] ?? 0;
        if (grad) {
          t += 1;
          for (let i = 0; i < p.length; i++) {
            const e = { p: p[i] ?? 0, m: m[i] ?? 0, v: v[i] ?? 0, vmax: vmax[i] ?? 0 };
            ({ p: p[i], m: m[i], v: v[i], vmax: vmax[i] } = torchAdamStep(e, grad[i] ?? 0, lr, t, o));
          }
        }
        const put = (kind: string, x: number[]): void => {
          out.set(`${run}.step${s}.${kind}.${name}`, tensor("float32", [x.length], Float32Array.from(x)));
        };
        put("param", p);
        if (t > 0) {
          put("exp_avg", m);
          put("exp_avg_sq", v);
          if (o.amsgrad) put("max_exp_avg_sq", vmax);
        }
      }
    }
  }

  /** torch 1.13 _single_tensor_sgd, float64. */
  function sgdRef(
    o: { lr: number; momentum: number; wd: number },
    out: Map<string, HostTensor>,
    run: string,
  ): void {
    for (const [name, p0] of Object.entries(P0)) {
      const p = [...p0];
      let buf: number[] | undefined;
      for (let s = 0; s < STEPS; s++) {
        const grad = GRADS[name]?.[s];
        if (grad) {
          const d = p.map((x, i) => -(grad[i] ?? 0) + o.wd * x);
          buf = buf ? buf.map((b, i) => o.momentum * b + (d[i] ?? 0)) : d;
          for (let i = 0; i < p.length; i++) p[i] = (p[i] ?? 0) - o.lr * (buf[i] ?? 0);
        }
        out.set(`${run}.step${s}.param.${name}`, tensor("float32", [p.length], Float32Array.from(p)));
        if (buf)
          out.set(
            `${run}.step${s}.momentum_buffer.${name}`,
            tensor("float32", [buf.length], Float32Array.from(buf)),
          );
      }
    }
  }

  const tol = { param: 2e-6, exp_avg: 2e-6, exp_avg_sq: 2e-6, max_exp_avg_sq: 2e-6 };
  const cosineLrs = [0, 0.001, 0.0005];
  const piecewiseLrs = [0.01, 0.005, 0.0025];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "optimizer-fixture-"));
    const inputs = new Map<string, HostTensor>();
    for (const [name, p0] of Object.entries(P0))
      inputs.set(`param0.${name}`, tensor("float32", [p0.length], Float32Array.from(p0)));
    for (let s = 0; s < STEPS; s++)
      for (const [name, grads] of Object.entries(GRADS)) {
        const g = grads[s];
        if (g) inputs.set(`grad.step${s}.${name}`, tensor("float32", [g.length], Float32Array.from(g)));
      }
    const outputs = new Map<string, HostTensor>();
    const base = { b1: 0.9, b2: 0.9, amsgrad: false, maximize: false };
    // AdamW without weight_decay in case.json: torch's default 0.01
    adamRef(
      { ...base, lrs: [0.05, 0.05, 0.05], wd: 0.01, decoupled: true, amsgrad: true, maximize: true },
      outputs,
      "adamw_amsgrad_maximize",
    );
    adamRef(
      { ...base, lrs: [0.05, 0.05, 0.05], wd: 0.1, decoupled: false, amsgrad: true },
      outputs,
      "adam_amsgrad_l2",
    );
    sgdRef({ lr: 0.1, momentum: 0.9, wd: 0.1 }, outputs, "sgd_maximize");
    adamRef({ ...base, lrs: cosineLrs, wd: 0.01, decoupled: true }, outputs, "adamw_cosine_object");
    adamRef({ ...base, lrs: piecewiseLrs, wd: 0, decoupled: false }, outputs, "adam_piecewise");
    const runs = {
      adamw_amsgrad_maximize: {
        class: "AdamW",
        hyperparameters: {
          lr: 0.05,
          betas: [0.9, 0.9],
          eps: 1e-8,
          amsgrad: true,
          maximize: true,
          foreach: null,
        },
        grad_multiplier: 1,
        clip_max_norm: null,
        lr_scheduler: null,
        lr_used_per_step: [0.05, 0.05, 0.05],
        max_abs_err: tol,
      },
      adam_amsgrad_l2: {
        class: "Adam",
        hyperparameters: { lr: 0.05, betas: [0.9, 0.9], weight_decay: 0.1, amsgrad: true },
        max_abs_err: tol,
      },
      sgd_maximize: {
        class: "SGD",
        hyperparameters: { lr: 0.1, momentum: 0.9, weight_decay: 0.1, maximize: true },
        max_abs_err: { param: 2e-6, momentum_buffer: 2e-6 },
      },
      adamw_cosine_object: {
        class: "AdamW",
        hyperparameters: { lr: 0.001, betas: [0.9, 0.9], weight_decay: 0.01 },
        cosine_schedule: { num_warmup_steps: 1, num_training_steps: 3 },
        lr_scheduler: null,
        lr_used_per_step: cosineLrs,
        max_abs_err: { param: 2e-6, exp_avg: 2e-6, exp_avg_sq: 2e-6 },
      },
      adam_piecewise: {
        class: "Adam",
        hyperparameters: { lr: 0.01, betas: [0.9, 0.9] },
        lr_scheduler:
          "diffusers.optimization.get_scheduler('piecewise_constant', optimizer, step_rules='1:1,0.5:2,0.25')",
        lr_used_per_step: piecewiseLrs,
        max_abs_err: { param: 2e-6, exp_avg: 2e-6, exp_avg_sq: 2e-6 },
      },
      adam_capturable: { class: "Adam", hyperparameters: { lr: 0.01, capturable: true }, max_abs_err: {} },
      adamw_unknown_flag: {
        class: "AdamW",
        hyperparameters: { lr: 0.01, decoupled_lr: true },
        max_abs_err: {},
      },
      sgd_unknown_setting: {
        class: "SGD",
        hyperparameters: { lr: 0.01 },
        clip_norm_type: 1,
        max_abs_err: {},
      },
    };
    const lrSchedules = {
      piecewise: {
        name: "piecewise_constant",
        kwargs: { step_rules: "1:2,0.1:4,0.01" },
        base_lr: 0.5,
        lr_per_step: [0.5, 0.5, 0.05, 0.05, 0.005, 0.005],
      },
      piecewise_call: {
        call: "get_scheduler('piecewise_constant', optimizer, step_rules=\"1:1,0.5:2,0.25\"); base lr 2",
        base_lr: 2,
        lr_per_step: [2, 1, 0.5, 0.5],
      },
      exponential: { name: "exponential", base_lr: 1, lr_per_step: [1, 0.5] },
      linear: {
        call: "get_scheduler('linear', optimizer, num_warmup_steps=1, num_training_steps=3)",
        base_lr: 1,
        lr_per_step: [0, 1, 0.5, 0, 0],
      },
    };
    const caseJson = { fixture: "optimizer", param_order: ["a", "b"], runs, lr_schedules: lrSchedules };
    await writeFile(join(dir, "case.json"), JSON.stringify(caseJson));
    await writeFile(join(dir, "inputs.safetensors"), serializeSafetensors(inputs));
    await writeFile(join(dir, "outputs.safetensors"), serializeSafetensors(outputs));
    rows = await optimizerKind.run({ dir, caseJson });
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const rowsOf = (fixture: string): readonly ConformanceRow[] =>
    rows.filter((r) => r.fixture === `optimizer/${fixture}`);

  it("replays AMSGrad + maximize (AdamW default decay), Adam AMSGrad with L2, SGD maximize, over missing gradients", () => {
    for (const run of ["adamw_amsgrad_maximize", "adam_amsgrad_l2", "sgd_maximize"]) {
      const got = rowsOf(run);
      for (const r of got)
        expect(r.pass, `${run} ${r.tensor} ${r.note ?? ""} err ${r.maxAbsError}`).toBe(true);
      const kinds = got.map((r) => r.tensor);
      expect(kinds).toContain("param");
      expect(kinds).toContain("state_save_restore");
      if (run !== "sgd_maximize") expect(kinds).toContain("max_exp_avg_sq");
    }
  });

  it("reads a cosine_schedule object and a piecewise_constant lr_scheduler call", () => {
    for (const run of ["adamw_cosine_object", "adam_piecewise"]) {
      const got = rowsOf(run);
      expect(got.map((r) => r.tensor)).toContain("lr_used_per_step");
      for (const r of got) expect(r.pass, `${run} ${r.tensor} ${r.note ?? ""}`).toBe(true);
    }
  });

  it("refuses settings it does not implement with a failing row of that run only", () => {
    for (const [run, what] of [
      ["adam_capturable", "capturable"],
      ["adamw_unknown_flag", "decoupled_lr"],
      ["sgd_unknown_setting", "clip_norm_type"],
    ] as const) {
      const got = rowsOf(run);
      expect(got).toHaveLength(1);
      expect(got[0]?.pass).toBe(false);
      expect(got[0]?.note).toContain(what);
    }
  });

  it("lr schedules: piecewise_constant from kwargs or a call; an unknown schedule fails alone", () => {
    const got = rowsOf("lr_schedules");
    const pass = Object.fromEntries(got.map((r) => [r.tensor, r.pass]));
    expect(pass).toEqual({ piecewise: true, piecewise_call: true, exponential: false, linear: true });
  });
});
