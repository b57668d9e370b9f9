import { describe, expect, it } from "vitest";
import { expectError, runGraph, values } from "../../test/helpers/run-graph.js";
import { GraphError, InvalidArgumentError } from "../errors.js";
import { tensor } from "../tensor.js";
import { GraphBuilder } from "./builder.js";
import * as op from "./ops/index.js";
import { tensorSource } from "./weight-source.js";

describe("GraphBuilder", () => {
  it("names initializers exactly, scopes node names, shares small constants", () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", ["batch", 3]);
    const w = g.initializer(
      "down_blocks.0.resnets.1.conv1.weight",
      tensorSource(tensor("float32", [3], Float32Array.of(1, 2, 3))),
    );
    const y = g.scope("down_blocks", () => g.scope(0, () => op.Mul(g, x, w)));
    const a = g.int64s([0, -1]);
    const b = g.int64s([0, -1]);
    expect(w.name).toBe("down_blocks.0.resnets.1.conv1.weight");
    expect(g.initializers.map((i) => i.name)).toEqual(["down_blocks.0.resnets.1.conv1.weight"]);
    expect(g.nodes[0]?.name).toMatch(/^down_blocks\.0\/Mul_\d+$/);
    expect(y.shape).toEqual(["batch", 3]);
    expect(a).toBe(b);
    g.withScope("mid_block.attentions.0", () => op.Neg(g, x));
    expect(g.nodes[1]?.name).toMatch(/^mid_block\.attentions\.0\/Neg_\d+$/);
  });

  it("adds an Identity when an output is renamed and runs", async () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", [2]);
    g.output(op.Add(g, x, 1), "y");
    g.output(x, "x_copy");
    expect(g.outputs.map((o) => o.name)).toEqual(["y", "x_copy"]);
    const r = await runGraph(g, { x: tensor("float32", [2], Float32Array.of(1, 2)) });
    expect(values(r["y"])).toEqual([2, 3]);
    expect(values(r["x_copy"])).toEqual([1, 2]);
  });

  it("refuses duplicate names and values from another graph", async () => {
    const g = new GraphBuilder();
    const src = tensorSource(tensor("float32", [1], Float32Array.of(1)));
    g.initializer("w", src);
    await expectError(
      () => g.initializer("w", src),
      GraphError,
      "E_GRAPH",
      'the name "w" is already used in this graph',
    );
    const other = new GraphBuilder().input("z", "float32", [1]);
    await expectError(() => op.Neg(g, other), GraphError, "E_GRAPH", "Neg: value z belongs to another graph");
    await expectError(
      () => g.input("bad", "float32", [-1]),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      'shape of input "bad"',
    );
  });

  it("refuses weights that cannot be stored in the requested dtype", async () => {
    const g = new GraphBuilder();
    const src = tensorSource(tensor("int64", [1], BigInt64Array.of(1n)));
    await expectError(
      () => g.initializer("ids", src, { dtype: "float32" }),
      GraphError,
      "E_GRAPH",
      "ids: a weight of dtype int64 cannot be stored as float32",
    );
  });
});
