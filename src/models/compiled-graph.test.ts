import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectError } from "../../test/helpers/run-graph.js";
import { FileNotFoundError } from "../errors.js";
import { GraphBuilder } from "../graph/builder.js";
import * as op from "../graph/ops/index.js";
import { mapStore } from "../nn/weight-store.js";
import { WeightScope } from "../nn/weights.js";
import { tensor, toFloat32 } from "../tensor.js";
import { compileGraph, graphStructureHash, openComponentWeights } from "./compiled-graph.js";

let cacheDir = "";
beforeAll(async () => {
  cacheDir = await mkdtemp(join(tmpdir(), "sf-compiled-"));
});
afterAll(async () => {
  await rm(cacheDir, { recursive: true, force: true });
});

function scaleGraph(factor: number): GraphBuilder {
  const g = new GraphBuilder();
  const w = WeightScope.bind(g, mapStore({ "lin.weight": tensor("float32", [2], Float32Array.of(1, 2)) }));
  g.output(
    op.Mul(g, op.Mul(g, g.input("x", "float32", ["n", 2]), w.at("lin").param("weight", [2])), factor),
    "y",
  );
  return g;
}

describe("compileGraph", () => {
  it("hashes the graph structure, not the weight values", () => {
    expect(graphStructureHash(scaleGraph(2))).toBe(graphStructureHash(scaleGraph(2)));
    expect(graphStructureHash(scaleGraph(2))).not.toBe(graphStructureHash(scaleGraph(3)));
  });

  it("reuses a model written for the same graph and weights; an unnamed one is removed on release", async () => {
    const first = await compileGraph(scaleGraph(2), "toy", "weights-a", { cacheDir });
    const again = await compileGraph(scaleGraph(2), "toy", "weights-a", { cacheDir });
    const other = await compileGraph(scaleGraph(2), "toy", "weights-b", { cacheDir });
    expect([first.reused, again.reused, other.reused]).toEqual([false, true, false]);
    expect(again.modelPath).toBe(first.modelPath);
    expect(other.modelPath).not.toBe(first.modelPath);
    const y = (await first.session.run({ x: tensor("float32", [1, 2], Float32Array.of(3, 4)) }))["y"];
    expect(y ? Array.from(toFloat32(y).data) : []).toEqual([6, 16]);
    for (const c of [first, again, other]) await c.release();
    const temp = await compileGraph(scaleGraph(2), "toy", null, { cacheDir });
    expect((await stat(temp.modelPath)).isFile()).toBe(true);
    await temp.release();
    expect(await stat(dirname(temp.modelPath)).catch(() => null)).toBeNull();
  });

  it("writes a cached model again when it no longer loads", async () => {
    const first = await compileGraph(scaleGraph(5), "toy", "weights-c", { cacheDir });
    await first.release();
    await writeFile(`${first.modelPath}.data`, new Uint8Array(1));
    const again = await compileGraph(scaleGraph(5), "toy", "weights-c", { cacheDir });
    expect(again.reused).toBe(false);
    const y = (await again.session.run({ x: tensor("float32", [1, 2], Float32Array.of(1, 1)) }))["y"];
    expect(y ? Array.from(toFloat32(y).data) : []).toEqual([5, 10]);
    await again.release();
  });

  it("openComponentWeights names a missing weights file", async () => {
    await expectError(
      () => openComponentWeights(cacheDir),
      FileNotFoundError,
      "E_FILE_NOT_FOUND",
      "diffusion_pytorch_model.safetensors",
    );
  });
});
