import { describe, expect, it } from "vitest";
import {
  randomTensor,
  refAttention,
  refConcatSeq,
  refGroupNorm,
  refLinear,
  refSelectFrames,
} from "../../test/helpers/graph-reference.js";
import { expectClose, expectError, runGraph } from "../../test/helpers/run-graph.js";
import { GraphError } from "../errors.js";
import { GraphBuilder } from "../graph/builder.js";
import { type HostTensor, tensor, toFloat16, toFloat32 } from "../tensor.js";
import { Attention } from "./attention.js";
import { crossFrameAttention } from "./cross-frame.js";
import { mapStore } from "./weight-store.js";
import { type BindOptions, WeightScope } from "./weights.js";

type F32 = HostTensor<"float32">;

function attnWeights(
  prefix: string,
  queryDim: number,
  kvDim: number,
  inner: number,
  seed: number,
  bias = false,
): Record<string, F32> {
  const w: Record<string, F32> = {
    [`${prefix}.to_q.weight`]: randomTensor([inner, queryDim], seed),
    [`${prefix}.to_k.weight`]: randomTensor([inner, kvDim], seed + 1),
    [`${prefix}.to_v.weight`]: randomTensor([inner, kvDim], seed + 2),
    [`${prefix}.to_out.0.weight`]: randomTensor([queryDim, inner], seed + 3),
    [`${prefix}.to_out.0.bias`]: randomTensor([queryDim], seed + 4),
  };
  if (bias)
    for (const n of ["to_q", "to_k", "to_v"])
      w[`${prefix}.${n}.bias`] = randomTensor([inner], seed + 5 + n.length);
  return w;
}

const get = (w: Record<string, F32>, k: string): F32 => {
  const t = w[k];
  if (!t) throw new Error(`test weight ${k} missing`);
  return t;
};

/** Reference attention module: projections, attention over (possibly replaced) K/V, output projection. */
function refModule(
  w: Record<string, F32>,
  p: string,
  x: F32,
  ctx: F32,
  heads: number,
  kv: (k: F32, v: F32) => [F32, F32] = (k, v) => [k, v],
): F32 {
  const b = (n: string): F32 | null => w[`${p}.${n}.bias`] ?? null;
  const q = refLinear(x, get(w, `${p}.to_q.weight`), b("to_q"));
  const [k, v] = kv(
    refLinear(ctx, get(w, `${p}.to_k.weight`), b("to_k")),
    refLinear(ctx, get(w, `${p}.to_v.weight`), b("to_v")),
  );
  return refLinear(
    refAttention(q, k, v, heads),
    get(w, `${p}.to_out.0.weight`),
    get(w, `${p}.to_out.0.bias`),
  );
}

function build(
  weights: Record<string, HostTensor>,
  options: BindOptions = {},
): { g: GraphBuilder; w: WeightScope } {
  const g = new GraphBuilder();
  return { g, w: WeightScope.bind(g, mapStore(weights), options) };
}

describe("Attention (diffusers keys)", () => {
  it("self- and cross-attention match the reference with both lowerings; keys are to_q/to_k/to_v/to_out.0", async () => {
    const weights = { ...attnWeights("attn1", 6, 6, 8, 1), ...attnWeights("attn2", 6, 5, 8, 20) };
    const x = randomTensor([2, 4, 6], 40);
    const ctx = randomTensor([2, 3, 5], 41);
    for (const attention of ["mha", "matmul"] as const) {
      const { g, w } = build(weights, { attention });
      const attn1 = new Attention(w.at("attn1"), { queryDim: 6, heads: 2, dimHead: 4 });
      const attn2 = new Attention(w.at("attn2"), { queryDim: 6, crossAttentionDim: 5, heads: 2, dimHead: 4 });
      w.finish();
      expect(g.initializers.map((i) => i.name).slice(0, 5)).toEqual([
        "attn1.to_q.weight",
        "attn1.to_k.weight",
        "attn1.to_v.weight",
        "attn1.to_out.0.weight",
        "attn1.to_out.0.bias",
      ]);
      const xv = g.input("x", "float32", ["batch", 4, 6]);
      const self = attn1.forward(xv);
      expect(self.shape).toEqual(["batch", 4, 6]);
      g.output(self, "self");
      g.output(
        attn2.forward(xv, { encoderHiddenStates: g.input("ctx", "float32", ["batch", 3, 5]) }),
        "cross",
      );
      expect(g.nodes.some((n) => n.opType === "MultiHeadAttention")).toBe(attention === "mha");
      const r = await runGraph(g, { x, ctx });
      expectClose(r["self"], refModule(weights, "attn1", x, x, 2), { atol: 1e-5 });
      expectClose(r["cross"], refModule(weights, "attn2", x, ctx, 2), { atol: 1e-5 });
    }
  });

  it("VAE-style: [B, C, H, W] input with group_norm, biases, residual connection and output rescale", async () => {
    const weights: Record<string, F32> = {
      ...attnWeights("mid_block.attentions.0", 8, 8, 8, 1, true),
      "mid_block.attentions.0.group_norm.weight": randomTensor([8], 9),
      "mid_block.attentions.0.group_norm.bias": randomTensor([8], 10),
    };
    const { g, w } = build(weights);
    const attn = new Attention(w.at("mid_block").at("attentions").at(0), {
      queryDim: 8,
      heads: 1,
      dimHead: 8,
      bias: true,
      normNumGroups: 2,
      eps: 1e-6,
      residualConnection: true,
      rescaleOutputFactor: 2,
    });
    w.finish();
    const xv = g.input("x", "float32", ["batch", 8, 2, 3]);
    const y = attn.forward(xv);
    expect(y.shape).toEqual(["batch", 8, 2, 3]);
    g.output(y, "y");
    const x = randomTensor([1, 8, 2, 3], 11);
    const p = "mid_block.attentions.0";
    const normed = refGroupNorm(
      x,
      2,
      1e-6,
      get(weights, `${p}.group_norm.weight`),
      get(weights, `${p}.group_norm.bias`),
    );
    const toTokens = (t: F32): F32 =>
      tensor(
        "float32",
        [1, 6, 8],
        Float32Array.from({ length: 48 }, (_, i) => t.data[(i % 8) * 6 + Math.floor(i / 8)] ?? 0),
      );
    const tokens = refModule(weights, p, toTokens(normed), toTokens(normed), 1);
    const expected = tensor(
      "float32",
      [1, 8, 2, 3],
      Float32Array.from(
        { length: 48 },
        (_, i) => ((tokens.data[(i % 6) * 8 + Math.floor(i / 6)] ?? 0) + (x.data[i] ?? 0)) / 2,
      ),
    );
    expectClose((await runGraph(g, { x }))["y"], expected, { atol: 1e-5 });
  });

  it("upcasts a float16 graph to float32 attention with the contrib op", async () => {
    const weights = attnWeights("attn", 8, 8, 8, 1);
    const { g, w } = build(weights, { dtype: "float16" });
    const attn = new Attention(w.at("attn"), { queryDim: 8, heads: 2, dimHead: 4, upcastAttention: true });
    w.finish();
    g.output(attn.forward(g.input("x", "float16", [1, 4, 8])), "y");
    const x = randomTensor([1, 4, 8], 2);
    const r = await runGraph(g, { x: toFloat16(x) });
    expect(r["y"]?.dtype).toBe("float16");
    expectClose(r["y"] && toFloat32(r["y"]), refModule(weights, "attn", x, x, 2), { atol: 1e-2 });
  });
});

describe("cross-frame attention", () => {
  const frames = 3;
  const weights = attnWeights("attn1", 8, 8, 8, 1);
  const x = randomTensor([2 * frames, 4, 8], 50); // 2 videos x 3 frames, 4 tokens

  it("mode first: every frame attends to K/V of the first frame of its video (both lowerings)", async () => {
    const expected = refModule(weights, "attn1", x, x, 2, (k, v) => [
      refSelectFrames(k, frames, () => 0),
      refSelectFrames(v, frames, () => 0),
    ]);
    const plain = refModule(weights, "attn1", x, x, 2);
    for (const attention of ["mha", "matmul"] as const) {
      const { g, w } = build(weights, { attention, keyValueTransform: crossFrameAttention({ frames }) });
      const attn = new Attention(w.at("attn1"), { queryDim: 8, heads: 2, dimHead: 4 });
      w.finish();
      g.output(attn.forward(g.input("x", "float32", ["batch", 4, 8])), "y");
      expect(g.nodes.filter((n) => n.opType === "Gather").map((n) => n.name.split("/")[0])).toEqual([
        "attn1.cross_frame",
        "attn1.cross_frame",
      ]);
      const y = (await runGraph(g, { x }))["y"];
      expectClose(y, expected, { atol: 1e-5 });
      // Frame 0 of each video is unchanged; later frames differ from plain self-attention.
      const row = 4 * 8;
      expectClose(
        y && tensor("float32", [1, 4, 8], Float32Array.from(y.data as Float32Array).subarray(0, row)),
        tensor("float32", [1, 4, 8], plain.data.subarray(0, row)),
        { atol: 1e-5 },
      );
      expect(Math.abs((y?.data[row] as number) - (plain.data[row] ?? 0))).toBeGreaterThan(1e-4);
    }
  });

  it("mode first-and-previous concatenates K/V of the first and previous frames; cross-attention is untouched", async () => {
    const ctx = randomTensor([2 * frames, 3, 8], 60);
    const cross = attnWeights("attn2", 8, 8, 8, 30);
    const { g, w } = build(
      { ...weights, ...cross },
      { keyValueTransform: crossFrameAttention({ frames, mode: "first-and-previous" }) },
    );
    const attn1 = new Attention(w.at("attn1"), { queryDim: 8, heads: 2, dimHead: 4 });
    const attn2 = new Attention(w.at("attn2"), { queryDim: 8, heads: 2, dimHead: 4 });
    w.finish();
    const xv = g.input("x", "float32", [2 * frames, 4, 8]);
    g.output(attn1.forward(xv), "self");
    g.output(
      attn2.forward(xv, { encoderHiddenStates: g.input("ctx", "float32", [2 * frames, 3, 8]) }),
      "cross",
    );
    const r = await runGraph(g, { x, ctx });
    const pick = (t: F32): F32 =>
      refConcatSeq(
        refSelectFrames(t, frames, () => 0),
        refSelectFrames(t, frames, (f) => Math.max(f - 1, 0)),
      );
    expectClose(
      r["self"],
      refModule(weights, "attn1", x, x, 2, (k, v) => [pick(k), pick(v)]),
      { atol: 1e-5 },
    );
    expectClose(r["cross"], refModule(cross, "attn2", x, ctx, 2), { atol: 1e-5 });
  });

  it("works with symbolic batch and token counts (runtime reshape targets)", async () => {
    const { g, w } = build(weights, {
      attention: "matmul",
      keyValueTransform: crossFrameAttention({ frames }),
    });
    const attn = new Attention(w.at("attn1"), { queryDim: 8, heads: 2, dimHead: 4 });
    w.finish();
    g.output(attn.forward(g.input("x", "float32", ["batch", "tokens", 8])), "y");
    expect(g.nodes.some((n) => n.opType === "Shape")).toBe(true);
    const expected = refModule(weights, "attn1", x, x, 2, (k, v) => [
      refSelectFrames(k, frames, () => 0),
      refSelectFrames(v, frames, () => 0),
    ]);
    expectClose((await runGraph(g, { x }))["y"], expected, { atol: 1e-5 });
  });

  it("refuses a batch that is not a multiple of the frame count", async () => {
    const { g, w } = build(weights, { keyValueTransform: crossFrameAttention({ frames: 4 }) });
    const attn = new Attention(w.at("attn1"), { queryDim: 8, heads: 2, dimHead: 4 });
    await expectError(
      () => attn.forward(g.input("x", "float32", [6, 4, 8])),
      GraphError,
      "E_GRAPH",
      "crossFrame: batch 6 of [6, 4, 8] is not a multiple of 4 frames",
    );
  });
});
