import { describe, expect, it } from "vitest";
import { expectError } from "../../test/helpers/run-graph.js";
import { InvalidArgumentError } from "../errors.js";
import { tensor } from "../tensor.js";
import { GraphBuilder } from "./builder.js";
import { ConcreteDimsGraphBuilder, countFlops, formatFlops } from "./flops.js";
import * as op from "./ops/index.js";
import { tensorSource } from "./weight-source.js";

const weight = (g: GraphBuilder, name: string, shape: number[]) =>
  g.initializer(name, tensorSource(tensor("float32", shape)));

describe("countFlops", () => {
  it("counts Conv as 2*N*Cout*Hout*Wout*(Cin/g)*kh*kw with symbolic dims resolved", () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", ["batch", 8, 16, 12]);
    // 3x3, stride 2, pad 1: 16x12 -> 8x6; grouped 1x1: Cin/g = 4.
    const y = op.Conv(g, x, weight(g, "c1.weight", [6, 8, 3, 3]), weight(g, "c1.bias", [6]), {
      strides: [2, 2],
      pads: [1, 1, 1, 1],
    });
    op.Conv(g, y, weight(g, "c2.weight", [4, 3, 1, 1]), null, { group: 2 });
    const r = countFlops(g, { batch: 2 });
    const conv1 = 2 * 2 * 6 * 8 * 6 * 8 * 3 * 3;
    const conv2 = 2 * 2 * 4 * 8 * 6 * 3 * 1 * 1;
    expect(r.conv).toBe(conv1 + conv2);
    expect(r.flops).toBe(conv1 + conv2);
    expect(r.byOpType["Conv"]).toEqual({ category: "conv", nodes: 2, work: conv1 + conv2 });
    expect(r.unresolved).toEqual([]);
  });

  it("counts batched MatMul and Gemm (with transA) as 2*batch*M*K*N", () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", [2, "seq", 320]);
    op.MatMul(g, x, weight(g, "proj.weight", [320, 1280]));
    const a = g.input("a", "float32", [64, 10]); // A^T is [10, 64]: M = 10, K = 64
    op.Gemm(g, a, weight(g, "fc.weight", [32, 64]), null, { transA: true, transB: true });
    const r = countFlops(g, { seq: 4096 });
    expect(r.byOpType["MatMul"]?.work).toBe(2 * 2 * 4096 * 320 * 1280);
    expect(r.byOpType["Gemm"]?.work).toBe(2 * 10 * 64 * 32);
    expect(r.matmul).toBe(2 * 2 * 4096 * 320 * 1280 + 2 * 10 * 64 * 32);
  });

  it("counts MultiHeadAttention as 2*2*B*heads*S*L*headDim and its softmax scores as other", () => {
    const g = new GraphBuilder();
    const q = g.input("q", "float32", [2, 4096, 320]);
    const kv = g.input("kv", "float32", [2, 77, 320]);
    op.MultiHeadAttention(g, q, kv, kv, { numHeads: 8 });
    const r = countFlops(g);
    expect(r.attention).toBe(2 * 2 * 2 * 8 * 4096 * 77 * 40);
    expect(r.byOpType["com.microsoft.MultiHeadAttention"]?.nodes).toBe(1);
    expect(r.byOpType["(attention softmax)"]?.work).toBe(2 * 8 * 4096 * 77);
    expect(r.otherElements).toBe(2 * 8 * 4096 * 77);
  });

  it("counts elementwise ops and norms as other elements and layout ops as movement", () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", [2, 4, 3, 5]);
    const n = op.GroupNormalization(g, x, weight(g, "n.weight", [4]), weight(g, "n.bias", [4]), {
      numGroups: 2,
    });
    const s = op.Sigmoid(g, n);
    const t = op.Transpose(g, s, [0, 2, 3, 1]);
    op.ReduceMean(g, t, [1, 2]);
    const r = countFlops(g);
    expect(r.flops).toBe(0);
    expect(r.byOpType["GroupNormalization"]?.work).toBe(120);
    expect(r.byOpType["Sigmoid"]?.work).toBe(120);
    expect(r.byOpType["ReduceMean"]?.work).toBe(120); // the input's element count
    expect(r.otherElements).toBe(360);
    expect(r.movementElements).toBe(120);
  });

  it("lists nodes whose shapes have unknown dims instead of guessing", () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", ["n", 6]);
    const shape = op.Shape(g, x);
    const y = op.Reshape(g, x, shape); // target known only at run time: dims unknown
    op.MatMul(g, y, weight(g, "w", [6, 3]));
    const r = countFlops(g, { n: 2 });
    expect(r.unresolved.some((name) => name.includes("MatMul"))).toBe(true);
    expect(r.matmul).toBe(0);
  });

  it("resolves strided convs over symbolic dims when built into a ConcreteDimsGraphBuilder", () => {
    const build = (g: GraphBuilder) => {
      const x = g.input("x", "float32", ["batch", 4, "height", "width"]);
      const y = op.Conv(g, x, weight(g, "down.weight", [4, 4, 3, 3]), null, {
        strides: [2, 2],
        pads: [1, 1, 1, 1],
      });
      op.Conv(g, y, weight(g, "conv.weight", [8, 4, 3, 3]), null, { pads: [1, 1, 1, 1] });
    };
    const symbolic = new GraphBuilder();
    build(symbolic);
    expect(countFlops(symbolic, { batch: 1, height: 8, width: 8 }).unresolved).toHaveLength(2);
    const concrete = new ConcreteDimsGraphBuilder({ height: 8, width: 8 });
    build(concrete);
    expect(concrete.inputs[0]?.shape).toEqual(["batch", 4, 8, 8]);
    const r = countFlops(concrete, { batch: 1 });
    expect(r.unresolved).toEqual([]);
    expect(r.conv).toBe(2 * 4 * 4 * 4 * 4 * 3 * 3 + 2 * 8 * 4 * 4 * 4 * 3 * 3);
  });

  it("refuses missing or invalid sizes for symbolic dims, naming them all", async () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", ["batch", "seq", 8]);
    op.MatMul(g, x, weight(g, "w", [8, 8]));
    await expectError(
      () => countFlops(g, { seq: 3 }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "sizes for the symbolic dims batch",
    );
    const e = await expectError(
      () => countFlops(g),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "symbolic dims batch, seq",
    );
    expect(e.message).toContain("{ batch: 1, seq: 1 }");
    await expectError(
      () => countFlops(g, { batch: 1.5, seq: 2 }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "for dims.batch but received 1.5",
    );
  });

  it("formats FLOP counts with SI units", () => {
    expect(formatFlops(1.5e12)).toBe("1.50 TFLOP");
    expect(formatFlops(2e9)).toBe("2.00 GFLOP");
    expect(formatFlops(12)).toBe("12 FLOP");
  });
});
