import { describe, expect, it } from "vitest";
import {
  randomTensor,
  refGroupNorm,
  refLayerNorm,
  refSoftmax,
} from "../../../test/helpers/graph-reference.js";
import { expectClose, expectError, runGraph } from "../../../test/helpers/run-graph.js";
import { GraphError } from "../../errors.js";
import { GraphBuilder } from "../builder.js";
import { tensorSource } from "../weight-source.js";
import * as op from "./index.js";

describe("normalization ops", () => {
  it("GroupNormalization-21 and the InstanceNormalization composition match the reference", async () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", ["batch", 6, 3, 5]);
    const scale = randomTensor([6], 2);
    const bias = randomTensor([6], 3);
    const s = g.initializer("s", tensorSource(scale));
    const b = g.initializer("b", tensorSource(bias));
    g.output(op.GroupNormalization(g, x, s, b, { numGroups: 3, epsilon: 1e-6 }), "onnx");
    const composite = op.GroupNormalizationComposite(g, x, s, b, { numGroups: 3, epsilon: 1e-6 });
    expect(composite.shape).toEqual(["batch", 6, 3, 5]);
    g.output(composite, "composite");
    g.output(op.GroupNormalizationComposite(g, x, null, null, { numGroups: 2 }), "plain");
    const t = randomTensor([2, 6, 3, 5], 1, 3);
    const r = await runGraph(g, { x: t });
    const expected = refGroupNorm(t, 3, 1e-6, scale, bias);
    expectClose(r["onnx"], expected, { atol: 1e-5 });
    expectClose(r["composite"], expected, { atol: 1e-5 });
    expectClose(r["plain"], refGroupNorm(t, 2, 1e-5, null, null), { atol: 1e-5 });
  });

  it("LayerNormalization and InstanceNormalization", async () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", [2, 4, 8]);
    const scale = randomTensor([8], 5);
    const bias = randomTensor([8], 6);
    g.output(
      op.LayerNormalization(
        g,
        x,
        g.initializer("s", tensorSource(scale)),
        g.initializer("b", tensorSource(bias)),
      ),
      "ln",
    );
    const ones = g.constantOf("float32", [4], [1, 1, 1, 1]);
    const zeros = g.constantOf("float32", [4], [0, 0, 0, 0]);
    g.output(op.InstanceNormalization(g, x, ones, zeros), "in");
    const t = randomTensor([2, 4, 8], 4, 2);
    const r = await runGraph(g, { x: t });
    expectClose(r["ln"], refLayerNorm(t, 1e-5, scale, bias), { atol: 1e-5 });
    expectClose(r["in"], refLayerNorm(t, 1e-5, null, null), { atol: 1e-5 });
  });

  it("explains group and channel mismatches", async () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", [1, 6, 4, 4]);
    const v4 = g.input("v4", "float32", [4]);
    const v6 = g.input("v6", "float32", [6]);
    await expectError(
      () => op.GroupNormalization(g, x, v6, v6, { numGroups: 4 }),
      GraphError,
      "E_GRAPH",
      "GroupNormalization: channels 6 must be divisible by num_groups 4",
    );
    await expectError(
      () => op.GroupNormalization(g, x, v4, v6, { numGroups: 3 }),
      GraphError,
      "E_GRAPH",
      "scale must be [6] (one per channel) but v4 is [4]",
    );
    await expectError(
      () => op.LayerNormalization(g, x, v6, null),
      GraphError,
      "E_GRAPH",
      "LayerNormalization: scale must be [4] but v6 is [6]",
    );
  });
});

describe("reductions and softmax", () => {
  it("ReduceMean, ReduceSum, ReduceMax and Softmax", async () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", [2, 3, 4]);
    const mean = op.ReduceMean(g, x, [-1]);
    expect(mean.shape).toEqual([2, 3, 1]);
    g.output(mean, "mean");
    const sum = op.ReduceSum(g, x, [1, 2], { keepdims: false });
    expect(sum.shape).toEqual([2]);
    g.output(sum, "sum");
    g.output(op.ReduceMax(g, x, [2], { keepdims: false }), "max");
    g.output(op.Softmax(g, x), "softmax");
    const t = randomTensor([2, 3, 4], 9, 3);
    const r = await runGraph(g, { x: t });
    const rows = Array.from({ length: 6 }, (_, i) => Array.from(t.data.subarray(i * 4, i * 4 + 4)));
    expectClose(r["mean"], {
      dtype: "float32",
      shape: [2, 3, 1],
      data: Float32Array.from(rows.map((row) => row.reduce((a, b) => a + b) / 4)),
    });
    expectClose(r["max"], {
      dtype: "float32",
      shape: [2, 3],
      data: Float32Array.from(rows.map((row) => Math.max(...row))),
    });
    const total = [0, 1].map((bi) =>
      rows
        .slice(bi * 3, bi * 3 + 3)
        .flat()
        .reduce((a, b) => a + b),
    );
    expectClose(r["sum"], { dtype: "float32", shape: [2], data: Float32Array.from(total) }, { atol: 1e-5 });
    expectClose(r["softmax"], refSoftmax(t));
  });
});
