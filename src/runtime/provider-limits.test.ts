import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectError } from "../../test/helpers/run-graph.js";
import { BackendError } from "../errors.js";
import { GraphBuilder } from "../graph/builder.js";
import * as op from "../graph/ops/index.js";
import { compileGraph } from "../models/compiled-graph.js";
import { tensor } from "../tensor.js";
import { providerLimit } from "./provider-limits.js";
import type { ProviderFailure } from "./session.js";

let cacheDir = "";
beforeAll(async () => {
  cacheDir = await mkdtemp(join(tmpdir(), "sf-provider-limits-"));
});
afterAll(async () => {
  await rm(cacheDir, { recursive: true, force: true });
});

/** x [1, channels, 8, 8] -> (optional Relu) -> Conv(kernel, stride) -> y. */
function convGraph(channels: number, kernel: number, stride: number, afterInput = false): GraphBuilder {
  const g = new GraphBuilder();
  const x = g.input("x", "float32", [1, channels, 8, 8]);
  const w = g.constant(
    tensor(
      "float32",
      [2, channels, kernel, kernel],
      new Float32Array(2 * channels * kernel * kernel).fill(0.5),
    ),
  );
  const y = op.Conv(g, afterInput ? op.Relu(g, x) : x, w, null, { strides: [stride, stride] });
  g.output(y, "y");
  return g;
}

describe("providerLimit", () => {
  it("keeps a Conv whose kernel equals its stride (a patch embedding) off WebGPU", () => {
    const g = convGraph(3, 4, 4, true);
    expect(providerLimit(g, "webgpu")).toMatch(/kernel equals its stride .*kernel 4x4/);
    expect(providerLimit(g, "cpu")).toBeNull();
    expect(providerLimit(g, "cuda")).toBeNull();
    // An ordinary strided or 1x1 Conv is fine.
    expect(providerLimit(convGraph(3, 3, 2, true), "webgpu")).toBeNull();
    expect(providerLimit(convGraph(3, 1, 1, true), "webgpu")).toBeNull();
  });

  it("keeps a Conv reading a graph input of more than 4 channels off WebGPU, not one of 4 or after another op", () => {
    expect(providerLimit(convGraph(21, 3, 1), "webgpu")).toMatch(
      /more than 4 channels .*reads x; microsoft\/onnxruntime#29651/,
    );
    expect(providerLimit(convGraph(4, 3, 1), "webgpu")).toBeNull();
    expect(providerLimit(convGraph(21, 3, 1, true), "webgpu")).toBeNull();
  });

  it("makes compileGraph fall back with the reason, or refuse when no provider is left", async () => {
    const seen: ProviderFailure[] = [];
    const compiled = await compileGraph(convGraph(21, 3, 1), "limited", "w", {
      cacheDir,
      executionProviders: ["webgpu", "cpu"],
      onFallback: (f) => seen.push(f),
    });
    expect(compiled.session.provider).toBe("cpu");
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ provider: "webgpu", knownLimit: true });
    expect(seen[0]?.error).toContain("microsoft/onnxruntime#29651");
    // The CPU runs it: 21 channels x 9 taps x 0.5 x 1 = 94.5 in the interior.
    const out = await compiled.session.run({
      x: tensor("float32", [1, 21, 8, 8], new Float32Array(21 * 64).fill(1)),
    });
    expect(out["y"]?.shape).toEqual([1, 2, 6, 6]);
    expect(out["y"]?.data[0]).toBeCloseTo(94.5, 4);
    await compiled.release();
    const e = await expectError(
      () =>
        compileGraph(convGraph(3, 4, 4, true), "limited", "w", { cacheDir, executionProviders: ["webgpu"] }),
      BackendError,
      "E_BACKEND",
      "webgpu: ONNX Runtime's WebGPU provider crashes on a Conv whose kernel equals its stride",
    );
    expect(e.message).toContain('add "cpu" to the execution providers as a fallback');
  });
});
