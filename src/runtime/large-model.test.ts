import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomTensor } from "../../test/helpers/graph-reference.js";
import { expectClose } from "../../test/helpers/run-graph.js";
import { GraphBuilder } from "../graph/builder.js";
import * as op from "../graph/ops/index.js";
import { writeModel } from "../graph/serialize.js";
import { randomWeights } from "../nn/weight-store.js";
import { WeightScope } from "../nn/weights.js";
import { tensor } from "../tensor.js";
import { createSession } from "./session.js";

// Four MatMul layers 4096 <-> 4608: 4 x 75.5 MB = 302 MB of float32 weights, synthesized at write time.
const DIMS = [4096, 4608, 4096, 4608, 4096];
const SEED = 7;
let dir = "";

beforeAll(async () => {
  // A RAM-backed folder when there is one: the test is about our code, not the disk.
  const shm = await stat("/dev/shm").catch(() => null);
  dir = await mkdtemp(join(shm?.isDirectory() ? "/dev/shm" : tmpdir(), "sf-large-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("a model with ~300 MB of external weights", () => {
  it("is written streaming, loads by path and runs; the .onnx stays small", async () => {
    const store = randomWeights({ seed: SEED });
    const g = new GraphBuilder();
    const w = WeightScope.bind(g, store);
    let h = g.input("x", "float32", ["batch", DIMS[0] ?? 0]);
    for (let i = 0; i + 1 < DIMS.length; i++) {
      const weight = w
        .at("layers")
        .at(i)
        .param("weight", [DIMS[i] ?? 0, DIMS[i + 1] ?? 0]);
      h = op.Tanh(g, op.MatMul(g, h, weight));
    }
    g.output(h, "y");
    w.finish();
    const path = join(dir, "chain.onnx");
    let t = performance.now();
    const written = await writeModel(g, path, { durable: false });
    const writeMs = performance.now() - t;
    expect(written.externalTensors).toBe(4);
    expect((await stat(path)).size).toBeLessThan(4096);
    expect((await stat(`${path}.data`)).size).toBeGreaterThan(300_000_000);

    t = performance.now();
    const session = await createSession(path, { executionProviders: ["cpu"] });
    const loadMs = performance.now() - t;
    expect(session.provider).toBe("cpu");
    const x = randomTensor([1, DIMS[0] ?? 0], 1);
    t = performance.now();
    const y = (await session.run({ x }))["y"];
    const runMs = performance.now() - t;
    await session.release();

    // Reference: regenerate each weight from the store (deterministic per key) and multiply in TS.
    let ref = Float32Array.from(x.data);
    for (let i = 0; i + 1 < DIMS.length; i++) {
      const [n, m] = [DIMS[i] ?? 0, DIMS[i + 1] ?? 0];
      const wt = await store.synthesize?.(`layers.${i}.weight`, [n, m], "float32").load();
      const wd = wt?.data as Float32Array;
      const next = new Float64Array(m);
      for (let r = 0; r < n; r++) {
        const xr = ref[r] ?? 0;
        const row = wd.subarray(r * m, (r + 1) * m);
        for (let c = 0; c < m; c++) next[c] = (next[c] ?? 0) + xr * (row[c] ?? 0);
      }
      ref = Float32Array.from(next, Math.tanh);
    }
    expectClose(y, tensor("float32", [1, DIMS[DIMS.length - 1] ?? 0], ref), { atol: 1e-4 });
    console.log(
      `300 MB model: write ${writeMs.toFixed(0)} ms, session ${loadMs.toFixed(0)} ms, run ${runMs.toFixed(0)} ms`,
    );
  });
});
