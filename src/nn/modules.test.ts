import { describe, expect, it } from "vitest";
import {
  erf,
  mapTensor,
  randomTensor,
  refConv2d,
  refGroupNorm,
  refLayerNorm,
  refLinear,
  refUpsampleNearest,
} from "../../test/helpers/graph-reference.js";
import { expectClose, expectError, runGraph } from "../../test/helpers/run-graph.js";
import { GraphError } from "../errors.js";
import { GraphBuilder } from "../graph/builder.js";
import { type HostTensor, tensor } from "../tensor.js";
import { ApproximateGELU, GEGLU, GELU, activation, gelu, quickGelu, silu } from "./activations.js";
import { Conv2d } from "./conv.js";
import { Embedding } from "./embedding.js";
import { GroupNorm } from "./group-norm.js";
import { LayerNorm } from "./layer-norm.js";
import { Linear } from "./linear.js";
import { type GraphBuildOptions, moduleList } from "./module.js";
import { upsampleNearest } from "./upsample.js";
import { mapStore } from "./weight-store.js";
import { WeightScope } from "./weights.js";

type F32 = HostTensor<"float32">;

function bind(
  weights: Record<string, HostTensor>,
  options: GraphBuildOptions = {},
): { g: GraphBuilder; w: WeightScope } {
  const g = new GraphBuilder();
  return { g, w: WeightScope.bind(g, mapStore(weights), options) };
}

const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));

describe("nn modules", () => {
  it("Linear on 3-D input, with and without bias", async () => {
    const [w0, b0, w1] = [randomTensor([6, 4], 1), randomTensor([6], 2), randomTensor([3, 6], 3)];
    const { g, w } = bind({ "net.0.weight": w0, "net.0.bias": b0, "net.1.weight": w1 });
    const layers = moduleList(
      w.at("net"),
      2,
      (s, i) =>
        new Linear(
          s,
          i === 0 ? { inFeatures: 4, outFeatures: 6 } : { inFeatures: 6, outFeatures: 3, bias: false },
        ),
    );
    w.finish();
    const x = g.input("x", "float32", ["batch", 5, 4]);
    const y = layers.reduce((h, l) => l.forward(h), x);
    expect(y.shape).toEqual(["batch", 5, 3]);
    g.output(y, "y");
    const xt = randomTensor([2, 5, 4], 4);
    expectClose((await runGraph(g, { x: xt }))["y"], refLinear(refLinear(xt, w0, b0), w1, null), {
      atol: 1e-5,
    });
    expect(g.nodes.filter((n) => n.opType !== "Identity").map((n) => n.name.split("/")[0])).toEqual([
      "net.0",
      "net.0",
      "net.1",
    ]);
  });

  it("Conv2d with stride and padding", async () => {
    const [cw, cb] = [randomTensor([5, 3, 3, 3], 1), randomTensor([5], 2)];
    const { g, w } = bind({ "conv_in.weight": cw, "conv_in.bias": cb });
    const conv = new Conv2d(w.at("conv_in"), {
      inChannels: 3,
      outChannels: 5,
      kernelSize: 3,
      stride: 2,
      padding: 1,
    });
    w.finish();
    g.output(conv.forward(g.input("x", "float32", [1, 3, 7, 8])), "y");
    const xt = randomTensor([1, 3, 7, 8], 3);
    expectClose(
      (await runGraph(g, { x: xt }))["y"],
      refConv2d(xt, cw, cb, { stride: [2, 2], pads: [1, 1, 1, 1] }),
      { atol: 1e-5 },
    );
    await expectError(
      () => new Conv2d(w.at("c2"), { inChannels: 3, outChannels: 4, kernelSize: 1, groups: 2 }),
      GraphError,
      "E_GRAPH",
      "Conv2d: c2: in_channels 3 and out_channels 4 must divide by groups 2",
    );
  });

  it("GroupNorm (both lowerings, affine or not) and LayerNorm", async () => {
    const [s, b, ls, lb] = [
      randomTensor([8], 1),
      randomTensor([8], 2),
      randomTensor([6], 3),
      randomTensor([6], 4),
    ];
    const xt = randomTensor([2, 8, 3, 3], 5, 2);
    for (const groupNorm of ["instance-norm", "onnx"] as const) {
      const { g, w } = bind(
        { "norm.weight": s, "norm.bias": b, "ln.weight": ls, "ln.bias": lb },
        { groupNorm },
      );
      const norm = new GroupNorm(w.at("norm"), { numGroups: 4, numChannels: 8, eps: 1e-6 });
      const plain = new GroupNorm(w.at("plain"), { numGroups: 2, numChannels: 8, affine: false });
      const ln = new LayerNorm(w.at("ln"), { normalizedShape: 6 });
      w.finish();
      const x = g.input("x", "float32", ["batch", 8, 3, 3]);
      g.output(norm.forward(x), "gn");
      g.output(plain.forward(x), "plain");
      g.output(ln.forward(g.input("t", "float32", [2, 3, 6])), "ln");
      const tt = randomTensor([2, 3, 6], 6);
      const r = await runGraph(g, { x: xt, t: tt });
      expectClose(r["gn"], refGroupNorm(xt, 4, 1e-6, s, b), { atol: 1e-5 });
      expectClose(r["plain"], refGroupNorm(xt, 2, 1e-5, null, null), { atol: 1e-5 });
      expectClose(r["ln"], refLayerNorm(tt, 1e-5, ls, lb), { atol: 1e-5 });
    }
    const { w } = bind({});
    await expectError(
      () => new GroupNorm(w.at("n"), { numGroups: 3, numChannels: 8 }),
      GraphError,
      "E_GRAPH",
      "num_channels 8 must divide by num_groups 3",
    );
  });

  it("Embedding gathers rows", async () => {
    const table = randomTensor([10, 4], 1);
    const { g, w } = bind({ "token_embedding.weight": table });
    const emb = new Embedding(w.at("token_embedding"), { numEmbeddings: 10, embeddingDim: 4 });
    w.finish();
    const ids = g.input("ids", "int64", [1, 3]);
    g.output(emb.forward(ids), "y");
    const r = await runGraph(g, { ids: tensor("int64", [1, 3], BigInt64Array.of(7n, 0n, 7n)) });
    const row = (i: number): number[] => Array.from(table.data.subarray(i * 4, i * 4 + 4));
    expectClose(r["y"], tensor("float32", [1, 3, 4], Float32Array.from([...row(7), ...row(0), ...row(7)])));
    await expectError(
      () => emb.forward(g.input("bad", "float32", [2])),
      GraphError,
      "E_GRAPH",
      "token_embedding: ids must be int64 or int32",
    );
  });

  it("activations: silu, gelu (erf/tanh), quick_gelu, and diffusers GELU/GEGLU/ApproximateGELU modules", async () => {
    const pw = randomTensor([8, 3], 1);
    const pb = randomTensor([8], 2);
    const { g, w } = bind({
      "geglu.proj.weight": pw,
      "geglu.proj.bias": pb,
      "gelu.proj.weight": pw,
      "gelu.proj.bias": pb,
      "approx.proj.weight": pw,
      "approx.proj.bias": pb,
    });
    const geglu = new GEGLU(w.at("geglu"), { dimIn: 3, dimOut: 4 });
    const geluMod = new GELU(w.at("gelu"), { dimIn: 3, dimOut: 8, approximate: "tanh" });
    const approx = new ApproximateGELU(w.at("approx"), { dimIn: 3, dimOut: 8 });
    w.finish();
    const x = g.input("x", "float32", [2, 3]);
    g.output(silu(g, x), "silu");
    g.output(gelu(g, x), "gelu");
    g.output(activation(g, x, "gelu_tanh"), "gelu_tanh");
    g.output(quickGelu(g, x), "quick");
    g.output(geglu.forward(x), "geglu");
    g.output(geluMod.forward(x), "gelu_mod");
    g.output(approx.forward(x), "approx");
    const xt = randomTensor([2, 3], 3, 3);
    const r = await runGraph(g, { x: xt });
    const erfGelu = (v: number): number => 0.5 * v * (1 + erf(v / Math.SQRT2));
    const tanhGelu = (v: number): number =>
      0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
    expectClose(
      r["silu"],
      mapTensor(xt, (v) => v * sigmoid(v)),
    );
    expectClose(r["gelu"], mapTensor(xt, erfGelu), { atol: 1e-6 });
    expectClose(r["gelu_tanh"], mapTensor(xt, tanhGelu), { atol: 1e-6 });
    expectClose(
      r["quick"],
      mapTensor(xt, (v) => v * sigmoid(1.702 * v)),
    );
    const proj: F32 = refLinear(xt, pw, pb);
    const gegluRef = tensor(
      "float32",
      [2, 4],
      Float32Array.from({ length: 8 }, (_, i) => {
        const row = Math.floor(i / 4);
        const col = i % 4;
        return (proj.data[row * 8 + col] ?? 0) * erfGelu(proj.data[row * 8 + 4 + col] ?? 0);
      }),
    );
    expectClose(r["geglu"], gegluRef, { atol: 1e-5 });
    expectClose(r["gelu_mod"], mapTensor(proj, tanhGelu), { atol: 1e-5 });
    expectClose(
      r["approx"],
      mapTensor(proj, (v) => v * sigmoid(1.702 * v)),
      { atol: 1e-5 },
    );
  });

  it("upsampleNearest doubles H and W like PyTorch", async () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", ["batch", 2, 3, 3]);
    const y = upsampleNearest(g, x);
    expect(y.shape).toEqual(["batch", 2, 6, 6]);
    g.output(y, "y");
    const xt = randomTensor([2, 2, 3, 3], 1);
    expectClose((await runGraph(g, { x: xt }))["y"], refUpsampleNearest(xt, 2), { atol: 0 });
  });
});
