import { describe, expect, it } from "vitest";
import { expectError } from "../../test/helpers/run-graph.js";
import { InvalidArgumentError } from "../errors.js";
import { tensor } from "../tensor.js";
import { concatBatch, splitBatch } from "./batch.js";

describe("splitBatch / concatBatch", () => {
  const t = tensor(
    "float32",
    [5, 2],
    Float32Array.from({ length: 10 }, (_, i) => i),
  );

  it("split along dim 0 into chunks of at most n items and join back", () => {
    const parts = splitBatch(t, 2);
    expect(parts.map((p) => p.shape)).toEqual([
      [2, 2],
      [2, 2],
      [1, 2],
    ]);
    expect(parts[2]?.data).toEqual(Float32Array.from([8, 9]));
    expect(concatBatch(parts)).toEqual(t);
    expect(splitBatch(t, 5)[0]).toBe(t);
  });

  it("throw InvalidArgumentError for a bad chunk size or mismatched parts", async () => {
    await expectError(() => splitBatch(t, 0), InvalidArgumentError, "E_INVALID_ARGUMENT", "batchSize");
    await expectError(
      () => concatBatch([t, tensor("float32", [1, 3])]),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "float32[1, 3]",
    );
    await expectError(
      () => concatBatch([]),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "at least one tensor",
    );
  });
});
