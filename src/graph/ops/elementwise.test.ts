import { describe, expect, it } from "vitest";
import { erf, mapTensor, randomTensor } from "../../../test/helpers/graph-reference.js";
import { expectClose, expectError, runGraph, values } from "../../../test/helpers/run-graph.js";
import { GraphError } from "../../errors.js";
import { tensor } from "../../tensor.js";
import { GraphBuilder } from "../builder.js";
import * as op from "./index.js";

describe("elementwise ops", () => {
  it("broadcast binary ops with number operands match the reference", async () => {
    const g = new GraphBuilder();
    const a = g.input("a", "float32", [2, 3, 4]);
    const b = g.input("b", "float32", [4]);
    g.output(op.Add(g, a, b), "add");
    g.output(op.Sub(g, 1, a), "sub");
    g.output(op.Mul(g, a, b), "mul");
    g.output(op.Div(g, a, 2), "div");
    g.output(op.Pow(g, op.Abs(g, a), 2), "pow");
    const x = randomTensor([2, 3, 4], 1);
    const y = randomTensor([4], 2);
    const r = await runGraph(g, { a: x, b: y });
    expectClose(
      r["add"],
      mapTensor(x, (v, i) => v + (y.data[i % 4] ?? 0)),
    );
    expectClose(
      r["sub"],
      mapTensor(x, (v) => 1 - v),
    );
    expectClose(
      r["mul"],
      mapTensor(x, (v, i) => v * (y.data[i % 4] ?? 0)),
    );
    expectClose(
      r["div"],
      mapTensor(x, (v) => v / 2),
    );
    expectClose(
      r["pow"],
      mapTensor(x, (v) => v * v),
    );
  });

  it("unary math ops match Math.*", async () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", [16]);
    const fns = {
      Sqrt: Math.sqrt,
      Exp: Math.exp,
      Sigmoid: (v: number) => 1 / (1 + Math.exp(-v)),
      Tanh: Math.tanh,
      Cos: Math.cos,
      Sin: Math.sin,
      Erf: erf,
    } as const;
    const pos = op.Abs(g, x);
    for (const name of Object.keys(fns) as (keyof typeof fns)[]) g.output(op[name](g, pos), name);
    g.output(op.Neg(g, x), "Neg");
    g.output(op.Gelu(g, x), "Gelu");
    const t = randomTensor([16], 3, 2);
    const r = await runGraph(g, { x: t });
    for (const [name, f] of Object.entries(fns))
      expectClose(
        r[name],
        mapTensor(t, (v) => f(Math.abs(v))),
        { atol: 1e-6 },
      );
    expectClose(
      r["Neg"],
      mapTensor(t, (v) => -v),
    );
    expectClose(
      r["Gelu"],
      mapTensor(t, (v) => 0.5 * v * (1 + erf(v / Math.SQRT2))),
      { atol: 1e-6 },
    );
  });

  it("Where, comparisons and Cast", async () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", [5]);
    g.output(op.Where(g, op.Greater(g, x, 0), x, 0), "relu");
    g.output(op.Cast(g, x, "int64"), "int");
    g.output(op.Cast(g, op.Cast(g, x, "float16"), "float32"), "roundtrip");
    expect(op.Cast(g, x, "float32")).toBe(x);
    const t = tensor("float32", [5], Float32Array.of(-2.5, -1, 0, 1.5, 3.25));
    const r = await runGraph(g, { x: t });
    expect(values(r["relu"])).toEqual([0, 0, 0, 1.5, 3.25]);
    expect(values(r["int"])).toEqual([-2, -1, 0, 1, 3]);
    expectClose(r["roundtrip"], t);
  });

  it("reports dtype mismatches and non-float inputs", async () => {
    const g = new GraphBuilder();
    const a = g.input("a", "float32", [2]);
    const i = g.input("i", "int64", [2]);
    await expectError(
      () => op.Add(g, a, i),
      GraphError,
      "E_GRAPH",
      "Add: operand dtypes differ: float32 and int64 (i)",
    );
    await expectError(
      () => op.Sqrt(g, i),
      GraphError,
      "E_GRAPH",
      "Sqrt: i must be a float tensor but is int64",
    );
    await expectError(() => op.Where(g, a, a, a), GraphError, "E_GRAPH", "Where: condition must be bool");
  });
});
