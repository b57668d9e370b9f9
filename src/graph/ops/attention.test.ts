import { describe, expect, it } from "vitest";
import { randomTensor, refAttention } from "../../../test/helpers/graph-reference.js";
import { expectClose, expectError, runGraph } from "../../../test/helpers/run-graph.js";
import { GraphError } from "../../errors.js";
import { toFloat16, toFloat32 } from "../../tensor.js";
import { GraphBuilder } from "../builder.js";
import * as op from "./index.js";

describe("attention ops", () => {
  it("MultiHeadAttention (com.microsoft) and MatMulAttention match the reference, with Dv != D and L != S", async () => {
    const g = new GraphBuilder();
    const q = g.input("q", "float32", ["batch", 5, 8]);
    const k = g.input("k", "float32", ["batch", 3, 8]);
    const v = g.input("v", "float32", ["batch", 3, 12]);
    const mha = op.MultiHeadAttention(g, q, k, v, { numHeads: 2 });
    const mm = op.MatMulAttention(g, q, k, v, { numHeads: 2 });
    expect(mha.shape).toEqual(["batch", 5, 12]);
    expect(mm.shape).toEqual(["batch", 5, 12]);
    g.output(mha, "mha");
    g.output(mm, "mm");
    g.output(
      op.multiHeadAttention(g, q, k, v, { numHeads: 4, scale: 0.3, implementation: "matmul" }),
      "scaled",
    );
    expect(g.opsetImports.get("com.microsoft")).toBe(1);
    const [qt, kt, vt] = [
      randomTensor([2, 5, 8], 1, 2),
      randomTensor([2, 3, 8], 2, 2),
      randomTensor([2, 3, 12], 3),
    ];
    const r = await runGraph(g, { q: qt, k: kt, v: vt });
    const expected = refAttention(qt, kt, vt, 2);
    expectClose(r["mha"], expected, { atol: 1e-5 });
    expectClose(r["mm"], expected, { atol: 1e-5 });
    expectClose(r["scaled"], refAttention(qt, kt, vt, 4, 0.3), { atol: 1e-5 });
  });

  it("causal masking (CLIP) in both lowerings", async () => {
    const g = new GraphBuilder();
    const q = g.input("q", "float32", [2, 6, 8]);
    g.output(op.MultiHeadAttention(g, q, q, q, { numHeads: 2, causal: true }), "mha");
    g.output(op.MatMulAttention(g, q, q, q, { numHeads: 2, causal: true }), "mm");
    const qt = randomTensor([2, 6, 8], 8, 2);
    const r = await runGraph(g, { q: qt });
    const expected = refAttention(qt, qt, qt, 2, undefined, true);
    expectClose(r["mha"], expected, { atol: 1e-5 });
    expectClose(r["mm"], expected, { atol: 1e-5 });
    // The same mask given as an additive attention bias [1, 1, S, L].
    const g2 = new GraphBuilder();
    const q2 = g2.input("q", "float32", [2, 6, 8]);
    const mask = g2.constantOf(
      "float32",
      [1, 1, 6, 6],
      Array.from({ length: 36 }, (_, i) => (i % 6 <= Math.floor(i / 6) ? 0 : -Infinity)),
    );
    g2.output(op.MultiHeadAttention(g2, q2, q2, q2, { numHeads: 2, attentionBias: mask }), "mha");
    g2.output(op.MatMulAttention(g2, q2, q2, q2, { numHeads: 2, attentionBias: mask }), "mm");
    const r2 = await runGraph(g2, { q: qt });
    expectClose(r2["mha"], expected, { atol: 1e-5 });
    expectClose(r2["mm"], expected, { atol: 1e-5 });
    const dyn = g.input("dyn", "float32", [1, "s", 8]);
    await expectError(
      () => op.MatMulAttention(g, dyn, dyn, dyn, { numHeads: 2, causal: true }),
      GraphError,
      "E_GRAPH",
      "a causal mask needs static sequence lengths, got s queries and s keys",
    );
  });

  it("upcasts float16 scores to float32 in the matmul lowering", async () => {
    const g = new GraphBuilder();
    const q = g.input("q", "float16", [1, 4, 8]);
    const out = op.MatMulAttention(g, q, q, q, { numHeads: 1, upcast: true });
    expect(out.dtype).toBe("float16");
    // q and k are cast up, the probabilities back down.
    expect(g.nodes.filter((n) => n.opType === "Cast").map((n) => n.attributes["to"])).toEqual([
      { type: "int", value: 1 },
      { type: "int", value: 1 },
      { type: "int", value: 10 },
    ]);
    g.output(out, "y");
    const qt = randomTensor([1, 4, 8], 4);
    const r = await runGraph(g, { q: toFloat16(qt) });
    const half = toFloat32(toFloat16(qt));
    expectClose(r["y"] && toFloat32(r["y"]), refAttention(half, half, half, 1), { atol: 2e-3 });
  });

  it("explains bad head counts and mismatched inputs", async () => {
    const g = new GraphBuilder();
    const q = g.input("q", "float32", [1, 4, 8]);
    const k = g.input("k", "float32", [1, 3, 6]);
    const v = g.input("v", "float32", [1, 2, 8]);
    await expectError(
      () => op.MultiHeadAttention(g, q, q, q, { numHeads: 3 }),
      GraphError,
      "E_GRAPH",
      "hidden sizes 8 (query) and 8 (value) must divide by num_heads 3",
    );
    await expectError(
      () => op.MultiHeadAttention(g, q, k, k, { numHeads: 2 }),
      GraphError,
      "E_GRAPH",
      "key hidden size 6 must equal query hidden size 8",
    );
    await expectError(
      () => op.MatMulAttention(g, q, q, v, { numHeads: 2 }),
      GraphError,
      "E_GRAPH",
      "key and value sequence lengths differ",
    );
  });
});
