/**
 * Every error the nn layer throws that other tests do not cover, by class, code and message fragment.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "vitest";
import { randomTensor } from "../../test/helpers/graph-reference.js";
import { expectError } from "../../test/helpers/run-graph.js";
import { GraphError, InvalidArgumentError } from "../errors.js";
import { GraphBuilder } from "../graph/builder.js";
import { openSafetensors, writeSafetensors } from "../weights/safetensors.js";
import { type ActivationName, activation } from "./activations.js";
import { crossFrameSelect } from "./cross-frame.js";
import { mapStore, randomWeights, safetensorsStore, zeroWeights } from "./weight-store.js";
import { WeightScope } from "./weights.js";

describe("nn errors", () => {
  it("weight scopes", async () => {
    const w = WeightScope.bind(
      new GraphBuilder(),
      mapStore({ "a.weight": randomTensor([2, 3], 1), "conv.weight": randomTensor([2, 3, 1, 1], 2) }),
    );
    await expectError(
      () => w.at("a.b"),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      'Expected one key segment without dots for segment but received "a.b"',
    );
    w.at("a").param("weight", [2, 3]);
    await expectError(
      () => w.at("a").param("weight", [3, 2]),
      GraphError,
      "E_GRAPH",
      "param: a.weight was requested as [2, 3] and now as [3, 2]",
    );
    await expectError(
      () => w.at("conv").param("weight", [2, 3, 1, 1], { transpose: true }),
      GraphError,
      "E_GRAPH",
      "conv.weight: only 2-D weights can be stored transposed, got [2, 3, 1, 1]",
    );
  });

  it("stores asked for keys they do not have", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sf-nn-errors-"));
    try {
      const path = join(dir, "w.safetensors");
      await writeSafetensors(path, { a: randomTensor([1], 1) });
      const file = safetensorsStore(await openSafetensors(path));
      await expectError(
        () => file.source("b"),
        InvalidArgumentError,
        "E_INVALID_ARGUMENT",
        `Expected a tensor name in ${path} for key`,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    await expectError(
      () => mapStore({}, "unit").source("x"),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "Expected one of the 0 keys of unit for key",
    );
    await expectError(
      () => randomWeights().source("x"),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "random weights synthesize only",
    );
    await expectError(
      () => zeroWeights().source("x"),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "zero weights synthesize only",
    );
  });

  it("activations and cross-frame options", async () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", [4, 2, 3]);
    await expectError(
      () => activation(g, x, "relu6" as ActivationName),
      GraphError,
      "E_GRAPH",
      'activation: unknown activation "relu6"',
    );
    await expectError(
      () => crossFrameSelect(g, x, { frames: 0 }),
      GraphError,
      "E_GRAPH",
      "crossFrame: frames must be a positive integer, got 0",
    );
  });
});
