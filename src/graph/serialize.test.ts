import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import ort from "onnxruntime-node";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { randomTensor } from "../../test/helpers/graph-reference.js";
import { expectClose, expectError, runGraph } from "../../test/helpers/run-graph.js";
import { GraphError } from "../errors.js";
import { fromOrtTensor, toOrtTensor } from "../runtime/ort-tensor.js";
import { type HostTensor, toFloat16, toFloat32 } from "../tensor.js";
import { GraphBuilder } from "./builder.js";
import * as op from "./ops/index.js";
import { onnxType } from "./proto.js";
import { EXTERNAL_DATA_ALIGNMENT, tensorBytes, writeModel } from "./serialize.js";
import { type WeightSource, lazySource, tensorSource } from "./weight-source.js";

let dir = "";
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "sf-serialize-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface DecodedTensor {
  name: string;
  dims: number[];
  data_type: number;
  data_location?: number;
  external_data?: { key: string; value: string }[];
  raw_data?: Uint8Array;
}

interface DecodedModel {
  ir_version: number;
  opset_import: { domain: string; version: number }[];
  graph: { initializer: DecodedTensor[] };
}

async function decode(path: string): Promise<DecodedModel> {
  const type = onnxType("ModelProto");
  return type.toObject(type.decode(await readFile(path)), { longs: Number, defaults: true }) as DecodedModel;
}

describe("writeModel", () => {
  it("writes weights to one aligned external file and the structure to a small model", async () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", ["batch", 3]);
    const w1 = randomTensor([3, 5], 1);
    const w2 = randomTensor([5, 2], 2);
    const y = op.MatMul(
      g,
      op.MatMul(g, x, g.initializer("layers.0.weight", tensorSource(w1))),
      g.initializer("layers.1.weight", tensorSource(w2)),
    );
    g.output(op.Reshape(g, y, [-1, 2]), "y");
    const path = join(dir, "model.onnx");
    const result = await writeModel(g, path);
    expect(result.dataPath).toBe(`${path}.data`);
    expect(result.externalTensors).toBe(2);
    expect((await readdir(dir)).sort()).toEqual(["model.onnx", "model.onnx.data"]);
    const model = await decode(path);
    expect(model.ir_version).toBe(10);
    expect(model.opset_import).toEqual([{ domain: "", version: 21 }]);
    const data = await readFile(`${path}.data`);
    const external = model.graph.initializer.filter((t) => t.data_location === 1);
    expect(external.map((t) => t.name)).toEqual(["layers.0.weight", "layers.1.weight"]);
    for (const [i, t] of external.entries()) {
      const entries = Object.fromEntries((t.external_data ?? []).map((e) => [e.key, e.value]));
      expect(entries["location"]).toBe("model.onnx.data");
      const offset = Number(entries["offset"]);
      const length = Number(entries["length"]);
      expect(offset % EXTERNAL_DATA_ALIGNMENT).toBe(0);
      expect(
        Buffer.from(data.subarray(offset, offset + length)).equals(
          Buffer.from(tensorBytes([w1, w2][i] as HostTensor)),
        ),
      ).toBe(true);
    }
    const session = await ort.InferenceSession.create(path, { logSeverityLevel: 3 });
    const xt = randomTensor([4, 3], 3);
    const out = await session.run({ x: toOrtTensor(xt) });
    expect(out["y"]?.dims).toEqual([4, 2]);
    await session.release();
  });

  it("streams sources one at a time and casts float16 weights to the graph dtype", async () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", [2, 4]);
    let inFlight = 0;
    let maxInFlight = 0;
    let loads = 0;
    const tracked = (t: HostTensor): WeightSource =>
      lazySource(t.dtype, t.shape, async () => {
        inFlight++;
        loads++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise((r) => setTimeout(r, 1));
        inFlight--;
        return t;
      });
    const weights = [0, 1, 2].map((i) => randomTensor([4, 4], 10 + i));
    let h = x;
    for (const [i, w] of weights.entries())
      h = op.MatMul(g, h, g.initializer(`w${i}`, tracked(toFloat16(w)), { dtype: "float32" }));
    g.output(h, "y");
    const path = join(dir, "m.onnx");
    await writeModel(g, path);
    expect(loads).toBe(3);
    expect(maxInFlight).toBe(1);
    const model = await decode(path);
    expect(model.graph.initializer.map((t) => t.data_type)).toEqual([1, 1, 1]);
    const session = await ort.InferenceSession.create(path, { logSeverityLevel: 3 });
    const xt = randomTensor([2, 4], 5);
    const got = fromOrtTensor((await session.run({ x: toOrtTensor(xt) }))["y"] as ort.Tensor);
    await session.release();
    // Reference with the float16-rounded weights, computed with a second in-memory graph.
    const g2 = new GraphBuilder();
    let h2 = g2.input("x", "float32", [2, 4]);
    for (const [i, w] of weights.entries())
      h2 = op.MatMul(g2, h2, g2.initializer(`w${i}`, tensorSource(toFloat32(toFloat16(w)))));
    g2.output(h2, "y");
    expectClose(got, (await runGraph(g2, { x: xt }))["y"] as HostTensor, { atol: 1e-6 });
  });

  it("is atomic: a failing source leaves the previous files untouched and no temp files", async () => {
    const path = join(dir, "m.onnx");
    await writeFile(path, "old model");
    await writeFile(`${path}.data`, "old data");
    const g = new GraphBuilder();
    const x = g.input("x", "float32", [1, 2]);
    const ok = g.initializer("a", tensorSource(randomTensor([2, 2], 1)));
    const bad = g.initializer(
      "b",
      lazySource("float32", [2, 2], () => Promise.reject(new Error("disk on fire"))),
    );
    g.output(op.MatMul(g, op.MatMul(g, x, ok), bad), "y");
    await expect(writeModel(g, path)).rejects.toThrow("disk on fire");
    expect((await readdir(dir)).sort()).toEqual(["m.onnx", "m.onnx.data"]);
    expect(await readFile(path, "utf8")).toBe("old model");
    expect(await readFile(`${path}.data`, "utf8")).toBe("old data");
  });

  it("rejects sources that break their promise and graphs without outputs", async () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", [1, 2]);
    const liar = lazySource("float32", [2, 2], () => Promise.resolve(randomTensor([2, 3], 1)));
    g.output(op.MatMul(g, x, g.initializer("w", liar)), "y");
    await expectError(
      () => writeModel(g, join(dir, "a.onnx")),
      GraphError,
      "E_GRAPH",
      "weight w: its source promised float32[2, 2] but gave float32[2, 3]",
    );
    expect(await readdir(dir)).toEqual([]);
    const empty = new GraphBuilder();
    empty.input("x", "float32", [1]);
    await expectError(
      () => writeModel(empty, join(dir, "b.onnx")),
      GraphError,
      "E_GRAPH",
      'graph "main" has no outputs',
    );
  });
});
