import ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { expectError, runGraph } from "../../../test/helpers/run-graph.js";
import { GraphError, InvalidArgumentError } from "../../errors.js";
import { fromOrtTensor, toOrtTensor } from "../../runtime/ort-tensor.js";
import { type HostTensor, tensor } from "../../tensor.js";
import { GraphBuilder, type Value } from "../builder.js";
import * as op from "../ops/index.js";
import { encodeModelInline } from "../serialize.js";
import { tensorSource } from "../weight-source.js";
import { backward, gradients, matchesParameter, promoteToInputs, selectParameters } from "./index.js";

/** Deterministic values in [-1, 1) (xorshift). */
function random(shape: readonly number[], seed: number, scale = 1): HostTensor<"float32"> {
  let s = (seed * 2654435761) >>> 0 || 1;
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    data[i] = ((s / 4294967296) * 2 - 1) * scale;
  }
  return tensor("float32", shape, data);
}

type Build = (g: GraphBuilder, xs: Value[]) => Value;

/**
 * Checks the backward graph of `build` against central finite differences of L = sum(y * r) (r
 * random), for every input, on small random inputs.
 */
async function checkGradients(
  shapes: number[][],
  build: Build,
  options: { eps?: number; tol?: number; scale?: number; samples?: number } = {},
): Promise<void> {
  const g = new GraphBuilder();
  const xs = shapes.map((s, i) => g.input(`x${i}`, "float32", s));
  const y = build(g, xs);
  const yShape = y.shape.map(Number);
  const r = g.input("r", "float32", yShape);
  const loss = op.ReduceSum(
    g,
    op.Mul(g, y, r),
    y.shape.map((_, i) => i),
    { keepdims: false },
  );
  g.output(loss, "loss");
  const { grads } = backward(g, [{ value: y, grad: r }], xs);
  grads.forEach((gr, i) => g.output(gr, `grad${i}`));
  const session = await ort.InferenceSession.create(await encodeModelInline(g), {
    executionProviders: ["cpu"],
    intraOpNumThreads: 1,
    logSeverityLevel: 3,
  });
  try {
    const inputs = shapes.map((s, i) => random(s, 11 + i, options.scale ?? 1));
    const rT = random(yShape, 97);
    const run = async (values: HostTensor[]): Promise<Record<string, HostTensor>> => {
      const feeds: Record<string, ort.Tensor> = { r: toOrtTensor(rT) };
      values.forEach((v, i) => (feeds[`x${i}`] = toOrtTensor(v)));
      const out = await session.run(feeds);
      const res: Record<string, HostTensor> = {};
      for (const [k, v] of Object.entries(out)) res[k] = fromOrtTensor(v as ort.Tensor, k);
      return res;
    };
    const base = await run(inputs);
    const eps = options.eps ?? 1e-2;
    for (let i = 0; i < inputs.length; i++) {
      const x = inputs[i] as HostTensor<"float32">;
      const analytic = base[`grad${i}`]?.data as Float32Array;
      let worst = 0;
      let scaleRef = 1e-3;
      // every element, or `samples` evenly spread ones (large inputs)
      const stride = Math.max(1, Math.floor(x.data.length / (options.samples ?? x.data.length)));
      for (let j = 0; j < x.data.length; j += stride) {
        const plus = tensor("float32", x.shape, Float32Array.from(x.data));
        const minus = tensor("float32", x.shape, Float32Array.from(x.data));
        plus.data[j] = (x.data[j] ?? 0) + eps;
        minus.data[j] = (x.data[j] ?? 0) - eps;
        const vp = (await run(inputs.map((v, k) => (k === i ? plus : v))))["loss"]?.data[0] as number;
        const vm = (await run(inputs.map((v, k) => (k === i ? minus : v))))["loss"]?.data[0] as number;
        const numeric = (vp - vm) / (2 * eps);
        worst = Math.max(worst, Math.abs(numeric - (analytic[j] ?? NaN)));
        scaleRef = Math.max(scaleRef, Math.abs(numeric));
      }
      expect(worst / scaleRef, `${y.name} input ${i}: max error ${worst} (scale ${scaleRef})`).toBeLessThan(
        options.tol ?? 2e-2,
      );
    }
  } finally {
    await session.release();
  }
}

describe("autodiff rules against finite differences", () => {
  it("Conv: stride 2 on even and odd sizes, asymmetric pads, groups, dilation", async () => {
    await checkGradients([[1, 2, 6, 6], [3, 2, 3, 3], [3]], (g, [x, w, b]) =>
      op.Conv(g, x!, w!, b!, { strides: [2, 2], pads: [1, 1, 1, 1] }),
    );
    await checkGradients(
      [
        [1, 2, 5, 7],
        [2, 2, 3, 3],
      ],
      (g, [x, w]) => op.Conv(g, x!, w!, null, { strides: [2, 2], pads: [0, 0, 1, 1] }),
    );
    await checkGradients(
      [
        [1, 4, 5, 5],
        [4, 2, 3, 3],
      ],
      (g, [x, w]) => op.Conv(g, x!, w!, null, { group: 2, dilations: [2, 1], pads: [2, 1, 2, 1] }),
    );
    await checkGradients(
      [
        [2, 3, 4, 4],
        [5, 3, 1, 1],
      ],
      (g, [x, w]) => op.Conv(g, x!, w!, null),
    );
  });

  it("Conv at >= 1024 input positions (grad_x as a Conv of the flipped kernel): pads, groups, dilation, batch, 1-D, 3-D", async () => {
    const sampled = { samples: 24 };
    await checkGradients(
      [[1, 2, 32, 32], [3, 2, 3, 3], [3]],
      (g, [x, w, b]) => op.Conv(g, x!, w!, b!, { pads: [1, 1, 1, 1] }),
      sampled,
    );
    await checkGradients(
      [
        [2, 4, 24, 24],
        [4, 2, 3, 3],
      ],
      (g, [x, w]) => op.Conv(g, x!, w!, null, { group: 2, dilations: [2, 1], pads: [2, 0, 1, 1] }),
      sampled,
    );
    await checkGradients(
      [
        [4, 3, 16, 16],
        [2, 3, 1, 1],
      ],
      (g, [x, w]) => op.Conv(g, x!, w!, null),
      sampled,
    );
    // 1-D and 3-D kernels
    await checkGradients(
      [
        [2, 2, 600],
        [3, 2, 5],
      ],
      (g, [x, w]) => op.Conv(g, x!, w!, null, { pads: [2, 1] }),
      sampled,
    );
    await checkGradients(
      [
        [1, 2, 4, 16, 16],
        [2, 2, 3, 3, 3],
      ],
      (g, [x, w]) => op.Conv(g, x!, w!, null, { pads: [1, 1, 1, 1, 1, 1] }),
      sampled,
    );
  });

  it("MatMul with broadcast batch dims and 1-D operands; Gemm with transposes", async () => {
    await checkGradients(
      [
        [2, 1, 3, 4],
        [3, 4, 2],
      ],
      (g, [a, b]) => op.MatMul(g, a!, b!),
    );
    await checkGradients(
      [
        [2, 3, 4],
        [4, 5],
      ],
      (g, [a, b]) => op.MatMul(g, a!, b!),
    );
    await checkGradients([[4], [2, 4, 3]], (g, [a, b]) => op.MatMul(g, a!, b!));
    await checkGradients([[4, 3], [5, 4], [5]], (g, [a, b, c]) =>
      op.Gemm(g, a!, b!, c!, { transA: true, transB: true, alpha: 0.7, beta: 1.3 }),
    );
    // row biases [M] / [1, M] (a ones·dY product), a column bias [N, 1] and a full one (summed otherwise)
    for (const bias of [[3], [1, 3], [5, 1], [5, 3]])
      await checkGradients([[5, 4], [4, 3], bias], (g, [a, b, c]) => op.Gemm(g, a!, b!, c!, { beta: 0.5 }));
  });

  it("a Gemm's row-bias gradient is a MatMul with ones, not a ReduceSum over the batch", () => {
    const g = new GraphBuilder({ name: "gemm_bias" });
    const x = g.input("x", "float32", [9, 4]);
    const w = g.input("w", "float32", [4, 3]);
    const b = g.input("b", "float32", [3]);
    const y = op.Gemm(g, x, w, b);
    const [gb] = gradients(g, op.ReduceSum(g, op.Mul(g, y, y), [0, 1], { keepdims: false }), [b]).grads;
    expect(gb?.shape).toEqual([3]);
    const ops = g.nodes.map((n) => n.opType);
    expect(ops.filter((o) => o === "ReduceSum")).toHaveLength(1); // the loss's own
    expect(ops).toContain("ConstantOfShape");
  });

  it("normalisations: instance norm, group norm (composite and op), layer norm", async () => {
    await checkGradients([[2, 3, 4, 2], [3], [3]], (g, [x, s, b]) => op.InstanceNormalization(g, x!, s!, b!));
    await checkGradients([[2, 4, 3, 2], [4], [4]], (g, [x, s, b]) =>
      op.GroupNormalizationComposite(g, x!, s!, b!, { numGroups: 2, epsilon: 1e-5 }),
    );
    await checkGradients([[2, 4, 3], [4], [4]], (g, [x, s, b]) =>
      op.GroupNormalization(g, x!, s!, b!, { numGroups: 2 }),
    );
    await checkGradients([[2, 3, 6], [6], [6]], (g, [x, s, b]) => op.LayerNormalization(g, x!, s!, b!));
  });

  it("softmax, reductions and elementwise ops with broadcasting", async () => {
    await checkGradients([[2, 3, 4]], (g, [x]) => op.Softmax(g, x!, 1));
    await checkGradients([[2, 3, 4]], (g, [x]) => op.ReduceMean(g, x!, [1, 2], { keepdims: false }));
    await checkGradients(
      [
        [2, 3, 4],
        [3, 1],
      ],
      (g, [a, b]) => {
        const b2 = op.Add(g, op.Mul(g, b!, b!), 1);
        const t = op.Add(g, op.Div(g, a!, b2), op.Mul(g, op.Tanh(g, a!), op.Sigmoid(g, b!)));
        const u = op.Sub(g, op.Sqrt(g, b2), op.Exp(g, op.Mul(g, a!, -0.5)));
        return op.Add(g, op.Add(g, t, u), op.Mul(g, op.Erf(g, a!), op.Pow(g, b2, 1.5)));
      },
    );
    await checkGradients([[3, 4]], (g, [x]) => op.Mul(g, op.Sin(g, x!), op.Cos(g, op.Mul(g, x!, 2))));
    await checkGradients([[3, 4]], (g, [x]) => op.Gelu(g, x!, { approximate: "tanh" }));
    await checkGradients([[3, 4]], (g, [x]) => op.Gelu(g, x!));
    await checkGradients([[3, 4], [4]], (g, [a, b]) => op.Where(g, op.Greater(g, a!, 0), a!, b!));
  });

  it("movement ops: slices with steps and negative steps, pad, resize, concat/split, tile, expand, gather", async () => {
    await checkGradients([[2, 7, 5]], (g, [x]) =>
      op.Slice(g, x!, { starts: [1, -1], ends: [6, -100], axes: [1, 2], steps: [2, -2] }),
    );
    await checkGradients([[2, 3, 4]], (g, [x]) => op.Pad(g, x!, [0, 1, 0, 0, 0, 2]));
    await checkGradients([[1, 2, 2, 3]], (g, [x]) => op.Resize(g, x!, [1, 1, 2, 2]));
    await checkGradients(
      [
        [2, 3],
        [2, 2],
      ],
      (g, [a, b]) => {
        const [p, q] = op.Split(g, op.Concat(g, [a!, b!], 1), 1, [1, 4]);
        return op.Mul(g, op.Tile(g, p!, [1, 4]), q!);
      },
    );
    await checkGradients([[3, 1]], (g, [x]) => op.Expand(g, x!, [2, 3, 4]));
    await checkGradients([[5, 3]], (g, [x]) => op.Gather(g, x!, [0, 3, 3, 1], 0));
    await checkGradients([[2, 3, 4]], (g, [x]) => op.Transpose(g, op.Reshape(g, x!, [3, 8]), [1, 0]));
  });

  it("com.microsoft MultiHeadAttention (with and without causal mask) recomputes its probabilities", async () => {
    await checkGradients(
      [
        [2, 3, 4],
        [2, 5, 4],
        [2, 5, 6],
      ],
      (g, [q, k, v]) => op.MultiHeadAttention(g, q!, k!, v!, { numHeads: 2 }),
      { scale: 1 },
    );
    await checkGradients(
      [
        [1, 4, 4],
        [1, 4, 4],
        [1, 4, 4],
      ],
      (g, [q, k, v]) => op.MultiHeadAttention(g, q!, k!, v!, { numHeads: 2, causal: true }),
    );
    // 1024 x 1024 scores per head: the backward runs one head at a time (two chunks)
    const chunked = { samples: 12, scale: 0.5 };
    await checkGradients(
      [
        [1, 1024, 4],
        [1, 1024, 4],
        [1, 1024, 6],
      ],
      (g, [q, k, v]) => op.MultiHeadAttention(g, q!, k!, v!, { numHeads: 2 }),
      chunked,
    );
    await checkGradients(
      [
        [1, 1024, 4],
        [1, 1024, 4],
        [1, 1024, 4],
      ],
      (g, [q, k, v]) => op.MultiHeadAttention(g, q!, k!, v!, { numHeads: 2, causal: true }),
      chunked,
    );
    // 1536 x 1536 scores (more than one chunk per head): query rows in 3 parts, dK and dV summed;
    // an attention bias split with the rows
    const n = 1536;
    await checkGradients(
      [
        [1, n, 2],
        [1, n, 2],
        [1, n, 3],
      ],
      (g, [q, k, v]) => {
        const values = Array.from({ length: n * n }, (_, i) => Math.sin(i * 0.37));
        const attentionBias = g.constantOf("float32", [1, 1, n, n], values);
        return op.MultiHeadAttention(g, q!, k!, v!, { numHeads: 1, causal: true, attentionBias });
      },
      { samples: 8, scale: 0.5 },
    );
    // attention biases per batch and per head
    for (const biasShape of [
      [2, 1, 3, 5],
      [1, 2, 3, 5],
    ]) {
      await checkGradients(
        [
          [2, 3, 4],
          [2, 5, 4],
          [2, 5, 6],
        ],
        (g, [q, k, v]) => {
          const count = biasShape.reduce((a, b) => a * b, 1);
          const values = Array.from({ length: count }, (_, i) => Math.cos(i * 1.3));
          const attentionBias = g.constantOf("float32", biasShape, values);
          return op.MultiHeadAttention(g, q!, k!, v!, { numHeads: 2, attentionBias });
        },
        { scale: 1 },
      );
    }
  });
});

describe("backward API", () => {
  it("ReduceMax routes the gradient to the maximum", async () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", [1, 4]);
    const y = op.ReduceMax(g, x, [1]);
    const { grads } = backward(g, [{ value: y, grad: g.constantOf("float32", [1, 1], [2]) }], [x]);
    g.output(grads[0] as Value, "gx");
    const out = await runGraph(g, { x: tensor("float32", [1, 4], Float32Array.from([0.1, 0.7, -0.3, 0.2])) });
    expect(Array.from(out["gx"]?.data as Float32Array)).toEqual([0, 2, 0, 0]);
  });

  it("sums gradients over several consumers and reports unreachable values with zero gradients", async () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", [3]);
    const unused = g.input("u", "float32", [2]);
    const loss = op.ReduceSum(g, op.Add(g, op.Mul(g, x, x), x), [0], { keepdims: false });
    const r = gradients(g, loss, [x, unused]);
    expect(r.unreachable).toEqual(["u"]);
    expect(r.grads[0]?.shape).toEqual([3]);
  });

  it("names the op without a gradient rule", async () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", [3]);
    const y = g.node1("HardSwish", [x], {}, x);
    await expectError(
      () => gradients(g, op.ReduceSum(g, y, [0]), [x]),
      GraphError,
      "E_GRAPH",
      "no gradient rule for HardSwish",
    );
  });

  it("selects parameters by diffusers module-name patterns and promotes them to inputs", () => {
    expect(
      matchesParameter("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight", "attn1.to_q"),
    ).toBe(true);
    expect(matchesParameter("mid_block.attn_temp.to_k.weight", "attn_temp")).toBe(true);
    expect(matchesParameter("x.attn2.to_q.weight", "attn1.to_q")).toBe(false);
    const g = new GraphBuilder();
    const source = tensorSource(tensor("float32", [2]));
    g.initializer("a.attn1.to_q.weight", source);
    g.initializer("a.attn1.to_k.weight", source);
    const chosen = selectParameters(g, ["attn1.to_q"]);
    expect(chosen.map((c) => c.name)).toEqual(["a.attn1.to_q.weight"]);
    expect(() => selectParameters(g, ["attn9"])).toThrow(InvalidArgumentError);
    // the training scripts' loop passes over a name that matches nothing, but not over all of them
    expect(() => selectParameters(g, ["attn1.to_q", "attn9"])).toThrow(/attn9/);
    expect(selectParameters(g, ["attn1.to_q", "attn9"], "ignore").map((c) => c.name)).toEqual([
      "a.attn1.to_q.weight",
    ]);
    expect(() => selectParameters(g, ["attn9"], "ignore")).toThrow(InvalidArgumentError);
    promoteToInputs(g, ["a.attn1.to_q.weight"]);
    expect(g.initializers.map((i) => i.name)).toEqual(["a.attn1.to_k.weight"]);
    expect(g.inputs.map((i) => i.name)).toEqual(["a.attn1.to_q.weight"]);
  });
});
