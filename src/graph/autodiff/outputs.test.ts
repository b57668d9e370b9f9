import { describe, expect, it } from "vitest";
import { runGraph } from "../../../test/helpers/run-graph.js";
import { tensor, toFloat32 } from "../../tensor.js";
import { GraphBuilder } from "../builder.js";
import * as op from "../ops/index.js";
import { gradients, outputFlatGradients } from "./index.js";

describe("outputFlatGradients", () => {
  it("hands back a conv weight gradient without its final Reshape: same elements, same order", async () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", [2, 3, 6, 6]);
    const w = g.input("w", "float32", [4, 3, 3, 3]);
    const b = g.input("b", "float32", [4]);
    const y = op.Conv(g, x, w, b, { pads: [1, 1, 1, 1] });
    const loss = op.ReduceSum(g, op.Mul(g, y, y), [0, 1, 2, 3], { keepdims: false });
    const { grads } = gradients(g, loss, [w, b]);
    const [gw, gb] = grads;
    if (!gw || !gb) throw new Error("no gradients");
    g.output(gw, "reference_w");
    g.output(gb, "reference_b");
    outputFlatGradients(g, grads);
    const fill = (n: number, k: number): Float32Array =>
      Float32Array.from({ length: n }, (_, i) => Math.sin(i * k));
    const out = await runGraph(g, {
      x: tensor("float32", [2, 3, 6, 6], fill(216, 0.37)),
      w: tensor("float32", [4, 3, 3, 3], fill(108, 0.61)),
      b: tensor("float32", [4], fill(4, 1.3)),
    });
    const flat = out["grad.0"];
    expect(flat?.shape).not.toEqual([4, 3, 3, 3]); // the Reshape's input: a [4, 27] matrix
    expect(flat?.shape.reduce((a, d) => a * d, 1)).toBe(108);
    expect(Array.from(flat ? toFloat32(flat).data : [])).toEqual(
      Array.from(toFloat32(out["reference_w"] ?? tensor("float32", [0])).data),
    );
    expect(out["grad.1"]?.shape).toEqual([4]); // not a Reshape: as it is
    expect(Array.from(toFloat32(out["grad.1"] ?? tensor("float32", [0])).data)).toEqual(
      Array.from(toFloat32(out["reference_b"] ?? tensor("float32", [1])).data),
    );
  });
});
