import { describe, expect, it } from "vitest";
import {
  randomTensor,
  refConv2d,
  refLinear,
  refMatMul,
  refUpsampleNearest,
} from "../../../test/helpers/graph-reference.js";
import { expectClose, expectError, runGraph } from "../../../test/helpers/run-graph.js";
import { GraphError } from "../../errors.js";
import { GraphBuilder } from "../builder.js";
import { tensorSource } from "../weight-source.js";
import * as op from "./index.js";

describe("MatMul and Gemm", () => {
  it("MatMul broadcasts a 2-D weight over batch dims and infers symbolic shapes", async () => {
    const g = new GraphBuilder();
    const a = g.input("a", "float32", ["batch", 3, 5]);
    const wT = randomTensor([5, 4], 2);
    const y = op.MatMul(g, a, g.initializer("w", tensorSource(wT)));
    expect(y.shape).toEqual(["batch", 3, 4]);
    g.output(y, "y");
    const x = randomTensor([2, 3, 5], 1);
    expectClose((await runGraph(g, { a: x }))["y"], refMatMul(x, wT));
  });

  it("Gemm with transB equals a torch Linear", async () => {
    const g = new GraphBuilder();
    const a = g.input("a", "float32", [3, 5]);
    const w = randomTensor([4, 5], 3);
    const b = randomTensor([4], 4);
    g.output(
      op.Gemm(g, a, g.initializer("w", tensorSource(w)), g.initializer("b", tensorSource(b)), {
        transB: true,
      }),
      "y",
    );
    const x = randomTensor([3, 5], 5);
    expectClose((await runGraph(g, { a: x }))["y"], refLinear(x, w, b));
  });

  it("reports inner-dim mismatches with the shapes", async () => {
    const g = new GraphBuilder();
    const a = g.input("a", "float32", [2, 3]);
    const b = g.input("b", "float32", [4, 5]);
    await expectError(
      () => op.MatMul(g, a, b),
      GraphError,
      "E_GRAPH",
      "MatMul: inner dims differ: [2, 3] x [4, 5] (3 vs 4)",
    );
    await expectError(() => op.Gemm(g, a, b, null), GraphError, "E_GRAPH", "Gemm: inner dims differ");
  });
});

describe("Conv", () => {
  it("strided, padded, grouped and dilated convs match the reference", async () => {
    const cases = [
      {
        cin: 3,
        cout: 4,
        k: 3,
        opts: { strides: [1, 1], pads: [1, 1, 1, 1] },
        ref: { pads: [1, 1, 1, 1] as const },
      },
      {
        cin: 4,
        cout: 6,
        k: 3,
        opts: { strides: [2, 2], pads: [0, 0, 1, 1] },
        ref: { stride: [2, 2] as const, pads: [0, 0, 1, 1] as const },
      },
      {
        cin: 4,
        cout: 4,
        k: 3,
        opts: { group: 2, dilations: [2, 2], pads: [2, 2, 2, 2] },
        ref: { group: 2, dilation: [2, 2] as const, pads: [2, 2, 2, 2] as const },
      },
    ];
    for (const [i, c] of cases.entries()) {
      const g = new GraphBuilder();
      const x = g.input("x", "float32", ["n", c.cin, 7, 6]);
      const w = randomTensor([c.cout, c.cin / (c.opts.group ?? 1), c.k, c.k], 10 + i);
      const b = randomTensor([c.cout], 20 + i);
      const y = op.Conv(
        g,
        x,
        g.initializer("w", tensorSource(w)),
        g.initializer("b", tensorSource(b)),
        c.opts,
      );
      g.output(y, "y");
      const xt = randomTensor([2, c.cin, 7, 6], 30 + i);
      const expected = refConv2d(xt, w, b, c.ref);
      expect(y.shape.slice(1)).toEqual(expected.shape.slice(1));
      expectClose((await runGraph(g, { x: xt }))["y"], expected, { atol: 1e-5 });
    }
  });

  it("explains channel mismatches", async () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", [1, 6, 8, 8]);
    const w = g.input("w", "float32", [4, 3, 3, 3]);
    await expectError(
      () => op.Conv(g, x, w, null),
      GraphError,
      "E_GRAPH",
      "Conv: input channels 6 must match weight channels 3 x group 1",
    );
    const small = g.input("s", "float32", [1, 3, 2, 2]);
    await expectError(() => op.Conv(g, small, w, null), GraphError, "E_GRAPH", "smaller than kernel 3");
  });
});

describe("Resize", () => {
  it("nearest x2 with asymmetric/floor equals PyTorch nearest upsampling", async () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", [1, 2, 3, 4]);
    const y = op.Resize(g, x, [1, 1, 2, 2]);
    expect(y.shape).toEqual([1, 2, 6, 8]);
    g.output(y, "y");
    const t = randomTensor([1, 2, 3, 4], 7);
    expectClose((await runGraph(g, { x: t }))["y"], refUpsampleNearest(t, 2), { atol: 0 });
  });
});
