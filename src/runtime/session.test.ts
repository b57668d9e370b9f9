import { mkdtemp, readdir, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomTensor } from "../../test/helpers/graph-reference.js";
import { expectClose, expectError } from "../../test/helpers/run-graph.js";
import {
  BackendError,
  CancelledError,
  FileNotFoundError,
  InvalidArgumentError,
  SessionInputError,
} from "../errors.js";
import { GraphBuilder } from "../graph/builder.js";
import * as op from "../graph/ops/index.js";
import { writeModel } from "../graph/serialize.js";
import { randomWeights } from "../nn/weight-store.js";
import { WeightScope } from "../nn/weights.js";
import { tensor } from "../tensor.js";
import { DEVICE_ENV, type ProviderFailure, createSession, defaultExecutionProviders } from "./session.js";

let dir = "";
let modelPath = "";

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sf-session-"));
  modelPath = join(dir, "tiny.onnx");
  const g = new GraphBuilder();
  const w = WeightScope.bind(g, randomWeights({ seed: 3 }));
  const x = g.input("x", "float32", ["batch", 16]);
  const ids = g.input("ids", "int64", ["batch"]);
  const h = op.MatMul(g, x, w.at("proj").param("weight", [16, 64]));
  const picked = op.Cast(g, op.Unsqueeze(g, ids, [1]), "float32");
  g.output(op.Add(g, h, picked), "y");
  w.finish();
  await writeModel(g, modelPath, { durable: false });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const feeds = (batch: number) => ({
  x: randomTensor([batch, 16], 1),
  ids: tensor(
    "int64",
    [batch],
    BigInt64Array.from({ length: batch }, (_, i) => BigInt(i)),
  ),
});

describe("createSession / Session.run", () => {
  it("loads by path on the CPU provider and reports the model's inputs", async () => {
    const s = await createSession(modelPath, { intraOpNumThreads: 1 });
    expect(s.provider).toBe("cpu");
    expect(s.fallbacks).toEqual([]);
    expect(s.cache).toBe("disabled");
    expect(s.inputs).toEqual([
      { name: "x", dtype: "float32", shape: ["batch", 16] },
      { name: "ids", dtype: "int64", shape: ["batch"] },
    ]);
    const out = await s.run(feeds(3));
    expect(out["y"]?.shape).toEqual([3, 64]);
    await s.release();
  });

  it("lists every feed problem in one SessionInputError", async () => {
    const s = await createSession(modelPath);
    const e = await expectError(
      () =>
        s.run({ x: tensor("float64", [2, 16]), ids: tensor("int64", [3]), extra: tensor("float32", [1]) }),
      SessionInputError,
      "E_SESSION_INPUT",
      'input "x" is float64, expected float32',
    );
    expect(e.problems).toEqual([
      'input "x" is float64, expected float32',
      'dim "batch" is 2 in input "x" but 3 in input "ids"',
      'unexpected input "extra" (the model takes "x", "ids")',
    ]);
    await expectError(
      () => s.run({ x: tensor("float32", [2, 15]) }),
      SessionInputError,
      "E_SESSION_INPUT",
      'input "x" dim 1 is 15, expected 16',
    );
    const missing = await expectError(
      () => s.run({ x: tensor("float32", [2, 16, 1]) }),
      SessionInputError,
      "E_SESSION_INPUT",
      'missing input "ids" (int64[batch])',
    );
    expect(missing.problems[0]).toContain('input "x" has shape [2, 16, 1] (rank 3), expected rank 2');
    await s.release();
  });

  it("falls back from webgpu to cpu with the reason, or refuses when only webgpu is allowed", async () => {
    const seen: ProviderFailure[] = [];
    const s = await createSession(modelPath, {
      executionProviders: ["webgpu", "cpu"],
      onFallback: (f) => seen.push(f),
    });
    if (s.provider === "webgpu") {
      // A machine with a WebGPU adapter: no fallback needed.
      expect(s.fallbacks).toEqual([]);
    } else {
      expect(s.provider).toBe("cpu");
      expect(s.fallbacks).toHaveLength(1);
      expect(s.fallbacks[0]?.provider).toBe("webgpu");
      expect(s.fallbacks[0]?.error.length).toBeGreaterThan(0);
      expect(seen).toEqual(s.fallbacks);
      const e = await expectError(
        () => createSession(modelPath, { executionProviders: ["webgpu"] }),
        BackendError,
        "E_BACKEND",
        "no execution provider could create the session: webgpu: ",
      );
      expect(e.attempts.map((a) => a.provider)).toEqual(["webgpu"]);
      expect(e.message).toContain('add "cpu" to executionProviders as a fallback');
    }
    await s.release();
  });

  it("takes the providers from $STEADYFRAME_DEVICE when the caller names none", async () => {
    const saved = process.env[DEVICE_ENV];
    try {
      delete process.env[DEVICE_ENV];
      expect(defaultExecutionProviders()).toEqual(["cpu"]);
      process.env[DEVICE_ENV] = " webgpu , cpu,webgpu ";
      expect(defaultExecutionProviders()).toEqual(["webgpu", "cpu"]);
      // The session tried webgpu first: it either runs there or fell back to the CPU with the reason.
      const s = await createSession(modelPath);
      expect(s.provider === "webgpu" ? s.fallbacks : s.fallbacks.map((f) => f.provider)).toEqual(
        s.provider === "webgpu" ? [] : ["webgpu"],
      );
      await s.release();
      // A caller's own list wins over the variable.
      const cpu = await createSession(modelPath, { executionProviders: ["cpu"] });
      expect([cpu.provider, cpu.fallbacks.length]).toEqual(["cpu", 0]);
      await cpu.release();
      process.env[DEVICE_ENV] = "gpu";
      const e = await expectError(
        () => createSession(modelPath),
        InvalidArgumentError,
        "E_INVALID_ARGUMENT",
        "STEADYFRAME_DEVICE",
      );
      expect(e.message).toContain("cpu, webgpu, cuda");
    } finally {
      if (saved === undefined) delete process.env[DEVICE_ENV];
      else process.env[DEVICE_ENV] = saved;
    }
  });

  it("explains bad paths, providers, models and cancellation", async () => {
    await expectError(
      () => createSession(join(dir, "nope.onnx")),
      FileNotFoundError,
      "E_FILE_NOT_FOUND",
      "ONNX model not found",
    );
    await expectError(
      () => createSession(modelPath, { executionProviders: ["gpu" as "cpu"] }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "Expected one of cpu, webgpu, cuda for executionProviders",
    );
    const broken = join(dir, "broken.onnx");
    await writeFile(broken, "not a protobuf");
    const e = await expectError(
      () => createSession(broken, { executionProviders: ["cpu"] }),
      BackendError,
      "E_BACKEND",
      "cpu: ",
    );
    expect(e.attempts).toHaveLength(1);
    const controller = new AbortController();
    controller.abort();
    await expectError(
      () => createSession(modelPath, { signal: controller.signal }),
      CancelledError,
      "E_CANCELLED",
      "loading",
    );
  });
});

describe("compiled-model cache", () => {
  it("writes the optimized model once, reuses it, and rebuilds when the weights change or the cache is damaged", async () => {
    const cacheDir = join(dir, "cache");
    const first = await createSession(modelPath, { cacheDir });
    const second = await createSession(modelPath, { cacheDir });
    expect([first.cache, second.cache]).toEqual(["written", "hit"]);
    const input = feeds(2);
    expectClose((await second.run(input))["y"], (await first.run(input))["y"] ?? tensor("float32", [0]), {
      atol: 1e-6,
    });
    const files = await readdir(cacheDir);
    const model = files.find((f) => f.endsWith(".onnx")) ?? "";
    expect(model).toMatch(/^tiny-cpu-[0-9a-f]{32}\.onnx$/);
    expect(files).toHaveLength(2);
    expect(files.find((f) => f.endsWith(".onnx.data"))?.startsWith(model.replace(/\.onnx$/, "."))).toBe(true);
    await Promise.all([first.release(), second.release()]);
    // A touched weight file gives a new key.
    await utimes(`${modelPath}.data`, new Date(), new Date(Date.now() + 5000));
    const third = await createSession(modelPath, { cacheDir });
    expect(third.cache).toBe("written");
    await third.release();
    // A damaged entry is rebuilt, with the reason.
    for (const f of await readdir(cacheDir))
      if (f.endsWith(".onnx")) await writeFile(join(cacheDir, f), "garbage");
    const fourth = await createSession(modelPath, { cacheDir });
    expect(fourth.cache).toBe("rebuilt");
    expect(fourth.cacheNote).toContain("failed to load");
    expect((await fourth.run(input))["y"]?.shape).toEqual([2, 64]);
    await fourth.release();
    // Two entries (before and after the weights changed), each with exactly one data file.
    expect((await readdir(cacheDir)).filter((f) => f.endsWith(".onnx.data"))).toHaveLength(2);
  });
});
