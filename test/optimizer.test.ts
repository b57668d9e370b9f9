import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runConformance } from "../src/conformance/run.js";
import { InvalidArgumentError } from "../src/errors.js";
import { Adam, AdamW, SGD, clipGradNorm, learningRateSchedule, sumRows } from "../src/train/optim/index.js";
import { GOLDEN } from "./helpers/golden-fixture.js";

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
