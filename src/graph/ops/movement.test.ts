import { describe, expect, it } from "vitest";
import { randomTensor } from "../../../test/helpers/graph-reference.js";
import { expectError, runGraph, values } from "../../../test/helpers/run-graph.js";
import { GraphError } from "../../errors.js";
import { tensor } from "../../tensor.js";
import { GraphBuilder } from "../builder.js";
import * as op from "./index.js";

const iota = (n: number): Float32Array => Float32Array.from({ length: n }, (_, i) => i);

describe("shape ops", () => {
  it("Reshape, Transpose, Unsqueeze, Squeeze, Expand, Flatten infer shapes and run", async () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", ["batch", 2, 3]);
    const r = op.Reshape(g, x, [0, 3, 2]);
    const t = op.Transpose(g, x, [0, 2, 1]);
    const u = op.Unsqueeze(g, x, [1, -1]);
    const s = op.Squeeze(g, u, [1]);
    const e = op.Expand(g, op.Unsqueeze(g, x, [1]), [1, 2, 1, 1]);
    const f = op.Flatten(g, x, 1);
    expect([r.shape, t.shape, u.shape, s.shape, e.shape, f.shape]).toEqual([
      ["batch", 3, 2],
      ["batch", 3, 2],
      ["batch", 1, 2, 3, 1],
      ["batch", 2, 3, 1],
      ["batch", 2, 2, 3],
      ["batch", 6],
    ]);
    for (const [name, v] of Object.entries({ r, t, u, s, e, f })) g.output(v, name);
    const out = await runGraph(g, { x: tensor("float32", [1, 2, 3], iota(6)) });
    expect(values(out["t"])).toEqual([0, 3, 1, 4, 2, 5]);
    expect(out["u"]?.shape).toEqual([1, 1, 2, 3, 1]);
    expect(values(out["e"])).toEqual([0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5]);
  });

  it("Shape folds static dims to a constant and emits a node for symbolic ones", async () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", ["batch", 2, 3]);
    const tail = op.Shape(g, x, { start: 1 });
    expect(tail.kind).toBe("constant");
    const full = op.Shape(g, x);
    expect(full.kind).toBe("node");
    g.output(full, "shape");
    const out = await runGraph(g, { x: tensor("float32", [4, 2, 3], iota(24)) });
    expect(values(out["shape"])).toEqual([4, 2, 3]);
  });

  it("Concat, Split, Slice, Gather, Pad, Tile", async () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", [2, 4]);
    const c = op.Concat(g, [x, x], 1);
    const [a, b] = op.Split(g, x, 1, [1, 3]);
    const halves = op.Split(g, x, 1, { count: 2 });
    const sl = op.Slice(g, x, {
      starts: [-1, 1],
      ends: [Number.MAX_SAFE_INTEGER, 4],
      axes: [0, 1],
      steps: [1, 2],
    });
    const ga = op.Gather(g, x, [1, 0, 1], 0);
    const gs = op.Gather(g, x, 2, 1);
    const p = op.Pad(g, x, [0, 1, 0, 1], { value: 9 });
    const ti = op.Tile(g, x, [1, 2]);
    expect([
      c.shape,
      a?.shape,
      b?.shape,
      halves[1]?.shape,
      sl.shape,
      ga.shape,
      gs.shape,
      p.shape,
      ti.shape,
    ]).toEqual([[2, 8], [2, 1], [2, 3], [2, 2], [1, 2], [3, 4], [2], [2, 6], [2, 8]]);
    for (const [name, v] of Object.entries({ c, a, b, h1: halves[1], sl, ga, gs, p, ti }))
      if (v) g.output(v, name);
    const out = await runGraph(g, { x: tensor("float32", [2, 4], iota(8)) });
    expect(values(out["b"])).toEqual([1, 2, 3, 5, 6, 7]);
    expect(values(out["h1"])).toEqual([2, 3, 6, 7]);
    expect(values(out["sl"])).toEqual([5, 7]);
    expect(values(out["ga"])).toEqual([4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7]);
    expect(values(out["gs"])).toEqual([2, 6]);
    expect(values(out["p"])).toEqual([9, 0, 1, 2, 3, 9, 9, 4, 5, 6, 7, 9]);
    expect(values(out["ti"])).toEqual([0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7]);
  });

  it("explains bad shape arguments", async () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", [2, 3]);
    await expectError(
      () => op.Transpose(g, x, [0, 0]),
      GraphError,
      "E_GRAPH",
      "Transpose: perm [0, 0] is not a permutation of the 2 axes of [2, 3]",
    );
    await expectError(
      () => op.Squeeze(g, x, [0]),
      GraphError,
      "E_GRAPH",
      "Squeeze: axis 0 of [2, 3] has size 2, not 1",
    );
    await expectError(
      () => op.Concat(g, [x, op.Transpose(g, x)], 0),
      GraphError,
      "E_GRAPH",
      "Concat: dim 1 differs (3 vs 2)",
    );
    await expectError(
      () => op.Split(g, x, 1, [1, 1]),
      GraphError,
      "E_GRAPH",
      "Split: sizes [1, 1] sum to 2 but axis 1 of [2, 3] has 3",
    );
    await expectError(
      () => op.Reshape(g, x, [4, 2]),
      GraphError,
      "E_GRAPH",
      "Reshape: cannot reshape [2, 3] (6 elements) to [4, 2] (8 elements)",
    );
    await expectError(
      () => op.ReshapeLike(g, x, g.input("y", "float32", [7])),
      GraphError,
      "E_GRAPH",
      "like y [7] (7 elements)",
    );
    expect(randomTensor([1], 1).shape).toEqual([1]);
  });
});
