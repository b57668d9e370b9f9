import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectError } from "../../test/helpers/run-graph.js";
import { InvalidArgumentError } from "../errors.js";
import type { GraphBuilder } from "../graph/builder.js";
import * as op from "../graph/ops/index.js";
import { mapStore } from "../nn/weight-store.js";
import { WeightScope } from "../nn/weights.js";
import { type HostTensor, tensor, toFloat32 } from "../tensor.js";
import type { ModelLoadOptions } from "./compiled-graph.js";
import { ModelRunner, RunnerGraph, newGraph, timestepFeed } from "./model-runner.js";

let cacheDir = "";
beforeAll(async () => {
  cacheDir = await mkdtemp(join(tmpdir(), "sf-runner-"));
});
afterAll(async () => {
  await rm(cacheDir, { recursive: true, force: true });
});

/** y = x * w * factor, with w = [1, 2]. */
function scaleGraph(name: string, factor: number): GraphBuilder {
  const g = newGraph(name);
  const w = WeightScope.bind(g, mapStore({ "lin.weight": tensor("float32", [2], Float32Array.of(1, 2)) }));
  g.output(
    op.Mul(g, op.Mul(g, g.input("x", "float32", ["n", 2]), w.at("lin").param("weight", [2])), factor),
    "y",
  );
  return g;
}

/** A two-graph runner, as AutoencoderKL is (the first graph is the main one). */
class ToyRunner extends ModelRunner {
  static load(options: ModelLoadOptions): Promise<ToyRunner> {
    const graphs = [2, 3].map((f) => new RunnerGraph(`toy_times_${f}`, scaleGraph("toy", f), null, options));
    return ModelRunner.opened(new ToyRunner("ToyModel", graphs), options);
  }

  async times(factor: 2 | 3, x: HostTensor): Promise<number[]> {
    const out = (await this.openSession(`toy_times_${factor}`)).run({ x });
    const y = (await out)["y"];
    return y ? Array.from(toFloat32(y).data) : [];
  }
}

const x = tensor("float32", [1, 2], Float32Array.of(3, 4));
const folders = async (): Promise<string[]> => (await readdir(cacheDir)).sort();

describe("ModelRunner (the one compile policy)", () => {
  it('compiles every graph in load by default, and none before use with compile: "first-use"', async () => {
    const eager = await ToyRunner.load({ cacheDir });
    expect((await folders()).length).toBe(2);
    expect(eager.session.inputs.map((s) => s.name)).toEqual(["x"]);
    expect(eager.reused).toBe(false);
    await eager.release();
    expect(await folders()).toEqual([]);

    const lazy = await ToyRunner.load({ cacheDir, compile: "first-use" });
    expect(await folders()).toEqual([]);
    await expectError(() => lazy.session, InvalidArgumentError, "E_INVALID_ARGUMENT", "call compile() first");
    expect(await lazy.times(3, x)).toEqual([9, 24]);
    expect((await folders()).map((f) => f.replace(/-uncached-.*/, ""))).toEqual(["toy_times_3"]);
    expect(await lazy.times(2, x)).toEqual([6, 16]);
    expect(lazy.modelPath).toContain("toy_times_2");
    await lazy.release();
  });

  it("opens a released runner's sessions again on the next call", async () => {
    const runner = await ToyRunner.load({ cacheDir });
    await runner.release();
    await expectError(() => runner.session, InvalidArgumentError, "E_INVALID_ARGUMENT", "released");
    expect(await runner.times(2, x)).toEqual([6, 16]);
    await runner.release();
    expect(await folders()).toEqual([]);
  });

  it("refuses an unknown compile option", async () => {
    await expectError(
      () => ToyRunner.load({ cacheDir, compile: "later" as "load" }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "one of load, first-use for compile",
    );
  });
});

describe("timestepFeed", () => {
  it("broadcasts a number or a one-element tensor to [batch] and refuses other lengths", async () => {
    expect(Array.from(timestepFeed(7, 3).data)).toEqual([7, 7, 7]);
    expect(Array.from(timestepFeed(tensor("int64", [1], BigInt64Array.of(5n)), 2).data)).toEqual([5, 5]);
    await expectError(
      () => timestepFeed(tensor("float32", [3]), 2),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "a scalar or a [2] tensor",
    );
  });
});
