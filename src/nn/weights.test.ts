import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { randomTensor, refLinear } from "../../test/helpers/graph-reference.js";
import { expectClose, expectError, runGraph, values } from "../../test/helpers/run-graph.js";
import { GraphError, InvalidArgumentError, MissingWeightsError } from "../errors.js";
import { GraphBuilder } from "../graph/builder.js";
import * as op from "../graph/ops/index.js";
import { writeModel } from "../graph/serialize.js";
import { tensor, toFloat16, toFloat32 } from "../tensor.js";
import { openSafetensors, writeSafetensors } from "../weights/safetensors.js";
import { Linear } from "./linear.js";
import { mapStore, randomWeights, safetensorsStore, zeroWeights } from "./weight-store.js";
import { WeightScope } from "./weights.js";

let dir = "";
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "sf-weights-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("WeightScope", () => {
  it("binds params under their full dotted key and reuses a key requested twice", () => {
    const g = new GraphBuilder();
    const store = mapStore({ "down_blocks.0.resnets.1.conv1.weight": randomTensor([4, 2, 3, 3], 1) });
    const w = WeightScope.bind(g, store);
    const conv1 = w.at("down_blocks").at(0).at("resnets").at(1).at("conv1");
    const v = conv1.param("weight", [4, 2, 3, 3]);
    expect(v.name).toBe("down_blocks.0.resnets.1.conv1.weight");
    expect(conv1.param("weight", [4, 2, 3, 3])).toBe(v);
    expect(g.initializers.map((i) => i.name)).toEqual(["down_blocks.0.resnets.1.conv1.weight"]);
    expect(w.finish().bound).toBe(1);
    expect(() => conv1.param("weight", [4, 2, 1, 1])).toThrow(GraphError);
    expect(() => w.at("a.b")).toThrow(InvalidArgumentError);
  });

  it("reports every missing, unexpected and mis-shaped key in one MissingWeightsError", async () => {
    const g = new GraphBuilder();
    const store = mapStore(
      {
        "to_q.weight": randomTensor([8, 8], 1),
        "to_k.weight": randomTensor([8, 4], 2),
        "to_v.wieght": randomTensor([8, 8], 3),
        "extra.bias": randomTensor([8], 4),
        position_ids: tensor("int64", [2], BigInt64Array.of(0n, 1n)),
      },
      "unet/diffusion_pytorch_model.safetensors",
    );
    const w = WeightScope.bind(g, store);
    for (const name of ["to_q", "to_k", "to_v"]) w.at(name).param("weight", [8, 8]);
    expect(w.report().bound).toBe(1);
    const e = await expectError(
      () => w.finish({ ignoreUnexpected: (k) => k === "position_ids" }),
      MissingWeightsError,
      "E_WEIGHTS_MISMATCH",
      "unet/diffusion_pytorch_model.safetensors",
    );
    expect(e.missing).toEqual(["to_v.weight"]);
    expect(e.unexpected).toEqual(["to_v.wieght", "extra.bias"]);
    expect(e.misshaped).toEqual([{ key: "to_k.weight", expected: [8, 8], actual: [8, 4] }]);
    expect(e.message).toContain("to_k.weight is [8,4], expected [8,8]");
    expect(e.hint).toContain("to_v.weight is missing but to_v.wieght is stored");
    // Writing anyway fails on the placeholder, naming the key.
    g.output(op.Add(g, g.input("x", "float32", [8]), 1), "y");
    await expectError(
      () => writeModel(g, join(dir, "m.onnx")),
      MissingWeightsError,
      "E_WEIGHTS_MISMATCH",
      "1 missing: to_k.weight",
    );
  });

  it("reports weights of an unusable dtype and recognises LDM checkpoints", async () => {
    const g = new GraphBuilder();
    const w = WeightScope.bind(
      g,
      mapStore({ "model.diffusion_model.conv_in.weight": randomTensor([2], 1), ids: tensor("int64", [2]) }),
    );
    w.param("ids", [2], { dtype: "float32" });
    w.param("conv_in.weight", [2]);
    const e = await expectError(
      () => w.finish(),
      MissingWeightsError,
      "E_WEIGHTS_MISMATCH",
      "1 missing: conv_in.weight",
    );
    expect(e.hint).toContain("looks like an original (LDM) Stable Diffusion checkpoint");
    expect(e.hint).toContain("unusable dtypes: ids: int64 -> float32");
  });

  it("translates foreign keys with a key map before binding, and refuses many-to-one maps", async () => {
    const g = new GraphBuilder();
    const store = mapStore({
      "model.diffusion_model.conv_in.weight": randomTensor([2], 1),
      "first_stage_model.x": randomTensor([1], 2),
    });
    const strip = (k: string): string | undefined =>
      k.startsWith("model.diffusion_model.") ? k.slice("model.diffusion_model.".length) : undefined;
    const w = WeightScope.bind(g, store, { keyMap: strip });
    expect(w.param("conv_in.weight", [2]).name).toBe("conv_in.weight");
    expect(w.finish().unexpected).toEqual([]);
    await expectError(
      () => WeightScope.bind(new GraphBuilder(), store, { keyMap: () => "same" }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      'store keys "model.diffusion_model.conv_in.weight" and "first_stage_model.x" both map to "same"',
    );
  });

  it("accepts a same-size stored shape with allowReshape (conv 1x1 as linear)", async () => {
    const g = new GraphBuilder();
    const conv = randomTensor([3, 2, 1, 1], 1);
    const w = WeightScope.bind(g, mapStore({ "proj_in.weight": conv, "proj_in.bias": randomTensor([3], 2) }));
    const lin = new Linear(w.at("proj_in"), { inFeatures: 2, outFeatures: 3, allowReshape: true });
    w.finish();
    g.output(lin.forward(g.input("x", "float32", [4, 2])), "y");
    const x = randomTensor([4, 2], 3);
    // Without allowReshape the same store reports the shape.
    const strict = WeightScope.bind(new GraphBuilder(), mapStore({ "proj_in.weight": conv }));
    strict.at("proj_in").param("weight", [3, 2]);
    expect(strict.report().misshaped).toHaveLength(1);
    expect(lin.weight.shape).toEqual([2, 3]);
    expect((await runGraph(g, { x }))["y"]?.shape).toEqual([4, 3]);
  });
});

describe("weight stores", () => {
  it("random weights are deterministic per key and seed; zeros are zeros", async () => {
    const make = async (seed: number, key: string) => {
      const src = randomWeights({ seed }).synthesize?.(key, [64, 32], "float32");
      return src ? await src.load() : undefined;
    };
    const a = values(await make(1, "a.weight"));
    expect(a).toHaveLength(64 * 32);
    expect(a).toEqual(values(await make(1, "a.weight")));
    expect(a.slice(0, 4)).not.toEqual(values(await make(2, "a.weight")).slice(0, 4));
    expect(a.slice(0, 4)).not.toEqual(values(await make(1, "b.weight")).slice(0, 4));
    const bound = 1 / Math.sqrt(32);
    expect(Math.max(...a.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...a.map(Math.abs))).toBeGreaterThan(bound * 0.9);
    const norm = await randomWeights().synthesize?.("norm.weight", [16], "float16").load();
    expect(norm?.dtype).toBe("float16");
    expect(Math.min(...Array.from(toFloat32(norm ?? tensor("float16", [0])).data))).toBeGreaterThan(0.8);
    const g = new GraphBuilder();
    const w = WeightScope.bind(g, zeroWeights());
    const lin = new Linear(w.at("to_q"), { inFeatures: 3, outFeatures: 2 });
    expect(w.finish().missing).toEqual([]);
    g.output(lin.forward(g.input("x", "float32", [1, 3])), "y");
    expect(values((await runGraph(g, { x: randomTensor([1, 3], 1) }))["y"])).toEqual([0, 0]);
  });

  it("a safetensors-backed store reads float16 weights lazily and casts them to float32", async () => {
    const path = join(dir, "w.safetensors");
    const weight = randomTensor([3, 4], 1);
    const bias = randomTensor([3], 2);
    await writeSafetensors(path, { "to_out.0.weight": toFloat16(weight), "to_out.0.bias": toFloat16(bias) });
    const g = new GraphBuilder();
    const w = WeightScope.bind(g, safetensorsStore(await openSafetensors(path)));
    const lin = new Linear(w.at("to_out").at(0), { inFeatures: 4, outFeatures: 3 });
    w.finish();
    expect(g.initializers.map((i) => [i.name, i.dtype, i.source.dtype])).toEqual([
      ["to_out.0.weight", "float32", "float16"],
      ["to_out.0.bias", "float32", "float16"],
    ]);
    g.output(lin.forward(g.input("x", "float32", [2, 4])), "y");
    const x = randomTensor([2, 4], 3);
    const expected = refLinear(x, toFloat32(toFloat16(weight)), toFloat32(toFloat16(bias)));
    expectClose((await runGraph(g, { x }))["y"], expected, { atol: 1e-6 });
  });
});
