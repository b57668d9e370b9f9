import { describe, expect, it } from "vitest";
import { GraphError } from "../errors.js";
import { broadcastShapes, normalizeAxis, reshapeTarget, shapeStr, staticNumel } from "./shape.js";

describe("broadcastShapes", () => {
  it("follows numpy rules with symbols and unknowns", () => {
    expect(broadcastShapes("Add", [2, 1, 4], [3, 1])).toEqual([2, 3, 4]);
    expect(broadcastShapes("Add", ["batch", 4, 64], [64])).toEqual(["batch", 4, 64]);
    expect(broadcastShapes("Add", ["batch", 1], [1, 5])).toEqual(["batch", 5]);
    expect(broadcastShapes("Add", [null, 3], ["b", 3])).toEqual([null, 3]);
    expect(broadcastShapes("Add", ["b", 3], [4, 3])).toEqual([4, 3]);
  });

  it("throws GraphError naming both shapes", () => {
    const e = (() => {
      try {
        broadcastShapes("Add", [2, 3], [4, 3]);
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(e).toBeInstanceOf(GraphError);
    expect((e as GraphError).code).toBe("E_GRAPH");
    expect((e as GraphError).message).toContain("Add: shapes [2, 3] and [4, 3] cannot be broadcast (2 vs 4)");
  });
});

describe("reshapeTarget", () => {
  it("copies 0 dims and infers -1, cancelling symbols", () => {
    expect(reshapeTarget("Reshape", [2, 77, 768], [0, 0, 12, -1])).toEqual([2, 77, 12, 64]);
    expect(reshapeTarget("Reshape", ["batch", 77, 768], [0, -1, 12, 64])).toEqual(["batch", 77, 12, 64]);
    expect(reshapeTarget("Reshape", ["batch", 4096, 320], [-1, 320])).toEqual([null, 320]);
    expect(reshapeTarget("Reshape", ["b", 8, 10], [-1, 80])).toEqual(["b", 80]);
  });

  it("rejects impossible targets with element counts", () => {
    expect(() => reshapeTarget("Reshape", [2, 3], [4, 2])).toThrow(
      "Reshape: cannot reshape [2, 3] (6 elements) to [4, 2] (8 elements)",
    );
    expect(() => reshapeTarget("Reshape", [2, 3], [-1, 4])).toThrow("6 elements do not divide by 4");
    expect(() => reshapeTarget("Reshape", [2, 3], [-1, -1])).toThrow("more than one -1");
  });
});

describe("axes and counts", () => {
  it("normalizes negative axes and rejects out-of-range ones", () => {
    expect(normalizeAxis("Concat", -1, 3)).toBe(2);
    expect(() => normalizeAxis("Concat", 3, 3)).toThrow(
      "Concat: axis 3 is out of range for rank 3 (valid: -3..2)",
    );
  });

  it("prints and counts shapes", () => {
    expect(shapeStr(["batch", null, 4])).toBe("[batch, ?, 4]");
    expect(staticNumel([2, 3])).toBe(6);
    expect(staticNumel([2, "b"])).toBeNull();
  });
});
