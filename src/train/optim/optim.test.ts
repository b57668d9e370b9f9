import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../errors.js";
import { Adam, AdamW } from "./adam.js";
import { clipGradNorm, globalGradNorm } from "./clip.js";
import { GET_SCHEDULER_NAMES, SCHEDULE_NAMES, learningRateSchedule } from "./schedules.js";
import { SGD } from "./sgd.js";
import {
  ADAM_START,
  type AdamElement,
  type TorchAdamSpec,
  torchAdamStep,
} from "../../../test/helpers/torch-adam.js";

/** One Adam(W) element over `grads` (steps 1, 2, ...) as torch 1.13 writes it, in float64. */
function torchAdam(
  p0: number,
  grads: readonly number[],
  o: TorchAdamSpec & { readonly lr: number },
): AdamElement {
  return grads.reduce((e, g, i) => torchAdamStep(e, g, o.lr, i + 1, o), ADAM_START(p0));
}

const one = (x: number): Map<string, Float32Array> => new Map([["p", Float32Array.from([x])]]);

describe("AMSGrad and maximize (torch 1.13 single-tensor formulas)", () => {
  // a gradient that shrinks: exp_avg_sq falls after step 1, so max_exp_avg_sq differs from it
  const grads = [1, 1e-3, 2e-3, 1e-3];
  for (const decoupled of [false, true]) {
    const name = decoupled ? "AdamW" : "Adam";
    it(`${name}: amsgrad keeps max(exp_avg_sq) and divides by its root; maximize negates the gradient first`, () => {
      for (const maximize of [false, true]) {
        const o = {
          lr: 0.1,
          b1: 0.9,
          b2: 0.9,
          wd: decoupled ? 0.2 : 0.01,
          decoupled,
          amsgrad: true,
          maximize,
        };
        const options = {
          lr: o.lr,
          betas: [o.b1, o.b2] as const,
          weightDecay: o.wd,
          amsgrad: true,
          maximize,
        };
        const opt = decoupled ? new AdamW(options) : new Adam(options);
        const params = one(1.5);
        for (const g of grads) opt.step(params, one(g));
        const want = torchAdam(1.5, grads, o);
        const plain = torchAdam(1.5, grads, { ...o, amsgrad: false });
        const flipped = torchAdam(1.5, grads, { ...o, maximize: !maximize });
        // the example tells the variants apart far beyond float32 rounding
        expect(Math.abs(want.p - plain.p)).toBeGreaterThan(1e-3);
        expect(Math.abs(want.p - flipped.p)).toBeGreaterThan(1e-3);
        expect(want.vmax).toBeGreaterThan(want.v * 1.1);
        const state = opt.state().tensors;
        expect(params.get("p")?.[0]).toBeCloseTo(want.p, 6);
        expect(state["p.exp_avg"]?.data[0]).toBeCloseTo(want.m, 6);
        expect(state["p.exp_avg_sq"]?.data[0]).toBeCloseTo(want.v, 6);
        expect(state["p.max_exp_avg_sq"]?.data[0]).toBeCloseTo(want.vmax, 6);
      }
    });
  }

  it("without amsgrad there is no max_exp_avg_sq; a saved AMSGrad state restores exactly", () => {
    const plain = new AdamW({ lr: 0.1 });
    plain.step(one(1), one(0.5));
    expect(Object.keys(plain.state().tensors).sort()).toEqual(["p.exp_avg", "p.exp_avg_sq"]);
    const a = new Adam({ lr: 0.1, amsgrad: true });
    const b = new Adam({ lr: 0.1, amsgrad: true });
    const [pa, pb] = [one(1), one(1)];
    a.step(pa, one(1));
    b.step(pb, one(1));
    const resumed = new Adam({ lr: 0.1, amsgrad: true });
    resumed.loadState(b.state());
    for (const g of [1e-3, 0.2]) {
      a.step(pa, one(g));
      resumed.step(pb, one(g));
    }
    expect(pb.get("p")?.[0]).toBe(pa.get("p")?.[0]);
    expect(resumed.state().tensors["p.max_exp_avg_sq"]?.data[0]).toBe(
      a.state().tensors["p.max_exp_avg_sq"]?.data[0],
    );
  });

  it("Adam maximize with coupled decay: g = -grad + wd p (not -(grad + wd p))", () => {
    const max = new Adam({ lr: 0.01, weightDecay: 0.5, maximize: true });
    const neg = new Adam({ lr: 0.01, weightDecay: 0.5 });
    const [pm, pn] = [one(2), one(2)];
    for (const g of [0.3, -0.1, 0.7]) {
      max.step(pm, one(g));
      neg.step(pn, one(-g));
    }
    expect(pm.get("p")?.[0]).toBe(pn.get("p")?.[0]);
    const wrong = torchAdam(2, [0.3, -0.1, 0.7], {
      lr: 0.01,
      b1: 0.9,
      b2: 0.999,
      wd: -0.5,
      decoupled: false,
      amsgrad: false,
      maximize: true,
    });
    expect(Math.abs((pm.get("p")?.[0] ?? 0) - wrong.p)).toBeGreaterThan(1e-3);
  });

  it("SGD maximize: d = -grad + wd p, then momentum (hand-computed)", () => {
    const sgd = new SGD({ lr: 0.1, momentum: 0.5, weightDecay: 0.1, maximize: true });
    const params = one(1);
    sgd.step(params, one(0.5));
    // d = -0.5 + 0.1 * 1 = -0.4; buf = d; p = 1 - 0.1 * -0.4
    expect(params.get("p")?.[0]).toBeCloseTo(1.04, 6);
    sgd.step(params, one(0.5));
    // d = -0.5 + 0.104 = -0.396; buf = 0.5 * -0.4 + -0.396 = -0.596; p = 1.04 + 0.0596
    expect(params.get("p")?.[0]).toBeCloseTo(1.0996, 6);
    expect(sgd.state().tensors["p.momentum_buffer"]?.data[0]).toBeCloseTo(-0.596, 6);
  });
});

describe("parameters without a gradient (torch: p.grad is None)", () => {
  it("keep value, state and step count; their bias correction uses their own steps", () => {
    const opt = new AdamW({ lr: 0.1, weightDecay: 0.5 });
    const p = Float32Array.from([1]);
    const q = Float32Array.from([2]);
    const params = new Map([
      ["p", p],
      ["q", q],
    ]);
    opt.step(
      params,
      new Map([
        ["p", Float32Array.from([0.1])],
        ["q", Float32Array.from([0.4])],
      ]),
    );
    const q1 = q[0];
    const before = opt.state().tensors;
    // null, undefined and absent all mean "no gradient"
    for (const missing of [null, undefined, "absent"] as const) {
      const grads = new Map<string, Float32Array | null | undefined>([["p", Float32Array.from([0.1])]]);
      if (missing !== "absent") grads.set("q", missing);
      opt.step(params, grads);
      expect(q[0]).toBe(q1);
      expect(opt.state().tensors["q.exp_avg"]?.data).toEqual(before["q.exp_avg"]?.data);
      expect(opt.state().tensors["q.exp_avg_sq"]?.data).toEqual(before["q.exp_avg_sq"]?.data);
    }
    expect(opt.state()).toMatchObject({ step: 4, paramSteps: { p: 4, q: 1 } });
    opt.step(params, new Map([["q", Float32Array.from([0.4])]]));
    // q has taken two steps (t = 1, 2), exactly as an optimiser that only ever saw q
    const alone = new AdamW({ lr: 0.1, weightDecay: 0.5 });
    const qq = new Map([["q", Float32Array.from([2])]]);
    alone.step(qq, new Map([["q", Float32Array.from([0.4])]]));
    alone.step(qq, new Map([["q", Float32Array.from([0.4])]]));
    expect(q[0]).toBe(qq.get("q")?.[0]);
    const torch = torchAdam(2, [0.4, 0.4], {
      lr: 0.1,
      b1: 0.9,
      b2: 0.999,
      wd: 0.5,
      decoupled: true,
      amsgrad: false,
      maximize: false,
    });
    expect(q[0]).toBeCloseTo(torch.p, 6);
  });

  it("per-parameter steps survive save/restore; a state without them takes `step`", () => {
    const run = (resume: boolean, dropCounts = false): number | undefined => {
      let opt = new Adam({ lr: 0.1 });
      const params = new Map([
        ["p", Float32Array.from([1])],
        ["q", Float32Array.from([1])],
      ]);
      opt.step(params, new Map([["p", Float32Array.from([0.3])]]));
      opt.step(
        params,
        new Map([
          ["p", Float32Array.from([0.3])],
          ["q", Float32Array.from([0.3])],
        ]),
      );
      if (resume) {
        const saved = opt.state();
        opt = new Adam({ lr: 0.1 });
        opt.loadState(dropCounts ? { step: saved.step, tensors: saved.tensors } : saved);
      }
      opt.step(params, new Map([["q", Float32Array.from([0.3])]]));
      return params.get("q")?.[0];
    };
    expect(run(true)).toBe(run(false));
    // without the counts q restarts from step 2 (its count would have been 1): another value
    expect(run(true, true)).not.toBe(run(false));
    const opt = new Adam({ lr: 0.1 });
    expect(() => opt.loadState({ step: 1, tensors: {}, paramSteps: { p: -1 } })).toThrow(
      InvalidArgumentError,
    );
  });

  it("SGD leaves a parameter without a gradient and its momentum buffer alone", () => {
    const sgd = new SGD({ lr: 0.1, momentum: 0.9, weightDecay: 0.1 });
    const params = new Map([
      ["p", Float32Array.from([1])],
      ["q", Float32Array.from([1])],
    ]);
    sgd.step(
      params,
      new Map([
        ["p", Float32Array.from([1])],
        ["q", Float32Array.from([1])],
      ]),
    );
    const q = params.get("q")?.[0];
    const buf = sgd.state().tensors["q.momentum_buffer"]?.data[0];
    sgd.step(
      params,
      new Map([
        ["p", Float32Array.from([1])],
        ["q", undefined],
      ]),
    );
    expect(params.get("q")?.[0]).toBe(q);
    expect(sgd.state().tensors["q.momentum_buffer"]?.data[0]).toBe(buf);
  });

  it("clip_grad_norm_ skips missing gradients (norm over the others; none at all: 0)", () => {
    const a = Float32Array.from([3, 0]);
    const b = Float32Array.from([4]);
    expect(clipGradNorm([a, null, undefined, b], 1)).toBeCloseTo(5, 6);
    expect(b[0]).toBeCloseTo(0.8, 6);
    expect(globalGradNorm([null, undefined])).toBe(0);
    expect(clipGradNorm([null], 1)).toBe(0);
  });
});

describe("AdamW / Adam weight decay defaults (torch: AdamW 1e-2, Adam 0)", () => {
  it("applies each class's default", () => {
    expect(new AdamW({ lr: 1 }).weightDecay).toBe(0.01);
    expect(new Adam({ lr: 1 }).weightDecay).toBe(0);
  });
});

describe("piecewise_constant (diffusers 0.26.3 get_piecewise_constant_schedule)", () => {
  it("multiplies by the factor of the first rule whose step is above the current one", () => {
    const lr = learningRateSchedule("piecewise_constant", 2, { stepRules: "1:10,0.1:20,0.01:30,0.005" });
    const at = (s: number): number => lr(s) / 2;
    expect([0, 9, 10, 19, 20, 29, 30, 31, 1000].map(at)).toEqual([
      1, 1, 0.1, 0.1, 0.01, 0.01, 0.005, 0.005, 0.005,
    ]);
    expect(lr(10)).toBe(2 * 0.1);
  });

  it("sorts the rules by step, lets a later rule for the same step win, reads a lone last factor", () => {
    const unsorted = learningRateSchedule("piecewise_constant", 1, { stepRules: "0.1:20, 1:10 ,0.005" });
    expect([5, 10, 19, 20].map(unsorted)).toEqual([1, 0.1, 0.1, 0.005]);
    const dup = learningRateSchedule("piecewise_constant", 1, { stepRules: "1:10,0.5:10,0.1" });
    expect([0, 9, 10].map(dup)).toEqual([0.5, 0.5, 0.1]);
    const only = learningRateSchedule("piecewise_constant", 4, { stepRules: "0.25" });
    expect([0, 100].map(only)).toEqual([1, 1]);
  });

  it("refuses rules Python would refuse, and a missing stepRules", () => {
    for (const stepRules of [undefined, "1:10", "1:1.5,0.1", "x:10,0.1", "1:10:3,0.1", ""])
      expect(() =>
        learningRateSchedule("piecewise_constant", 1, stepRules === undefined ? {} : { stepRules }),
      ).toThrow(InvalidArgumentError);
  });

  it("is a get_scheduler name but not one of the trainer's warmup/total schedules", () => {
    expect(GET_SCHEDULER_NAMES).toContain("piecewise_constant");
    expect(SCHEDULE_NAMES as readonly string[]).not.toContain("piecewise_constant");
  });
});
