/**
 * Every error the graph layer throws, by class, code and message fragment.
 */
import { describe, it } from "vitest";
import { expectError } from "../../test/helpers/run-graph.js";
import { GraphError, InvalidArgumentError, UnsupportedError } from "../errors.js";
import { tensor } from "../tensor.js";
import { GraphBuilder } from "./builder.js";
import * as op from "./ops/index.js";
import { reshapeTarget } from "./shape.js";
import { castSource, castTensor, lazySource, reshapedSource, tensorSource } from "./weight-source.js";

const g = new GraphBuilder();
const x = g.input("x", "float32", [2, 3, 4, 4]);
const m = g.input("m", "float32", [2, 3]);
const seq = g.input("seq", "float32", [2, 5, 8]);
const ids = g.input("ids", "int64", ["n"]);
const scalar = g.scalar(1, "float32");
const runtimeShape = op.Shape(g, g.input("dyn", "float32", ["a", "b"]));

type Case = readonly [
  label: string,
  fn: () => unknown,
  type: typeof GraphError | typeof InvalidArgumentError | typeof UnsupportedError,
  code: string,
  fragment: string,
];

const cases: readonly Case[] = [
  ["empty name", () => g.input("", "float32", [1]), InvalidArgumentError, "E_INVALID_ARGUMENT", "input name"],
  [
    "bad initializer shape",
    () =>
      g.initializer(
        "w",
        lazySource("float32", [1.5], () => Promise.reject(new Error())),
      ),
    GraphError,
    "E_GRAPH",
    "w: bad shape [1.5]",
  ],
  [
    "float8 constant",
    () => g.constantOf("float8e4m3fn", [1], [1]),
    GraphError,
    "E_GRAPH",
    "constants of float8e4m3fn cannot be made from numbers",
  ],
  [
    "numbers only",
    () => op.Add(g, 1, 2),
    GraphError,
    "E_GRAPH",
    "Add: at least one operand must be a graph value",
  ],
  [
    "non-integer shape",
    () => op.Reshape(g, m, [1.5, 4]),
    GraphError,
    "E_GRAPH",
    "Reshape: shape must be integers but got [1.5, 4]",
  ],
  [
    "float shape value",
    () => op.Reshape(g, m, m),
    GraphError,
    "E_GRAPH",
    "Reshape: shape must be an int64 tensor but m is float32",
  ],
  [
    "Expand to bad shape",
    () => op.Expand(g, m, [4, 3]),
    GraphError,
    "E_GRAPH",
    "Expand: shapes [2, 3] and [4, 3] cannot be broadcast",
  ],
  [
    "Unsqueeze repeats",
    () => op.Unsqueeze(g, m, [0, 0]),
    GraphError,
    "E_GRAPH",
    "Unsqueeze: axes [0, 0] repeat an axis",
  ],
  [
    "MatMul scalar",
    () => op.MatMul(g, scalar, m),
    GraphError,
    "E_GRAPH",
    "MatMul: operands must have rank >= 1",
  ],
  ["Gemm 3-D", () => op.Gemm(g, seq, m, null), GraphError, "E_GRAPH", "Gemm: A and B must be 2-D"],
  [
    "Conv rank 2",
    () => op.Conv(g, m, m, null),
    GraphError,
    "E_GRAPH",
    "Conv: input must be [N, C, ...spatial]",
  ],
  [
    "Conv weight rank",
    () => op.Conv(g, x, seq, null),
    GraphError,
    "E_GRAPH",
    "Conv: weight rank 3 ([2, 5, 8]) must equal input rank 4",
  ],
  [
    "Conv strides",
    () => op.Conv(g, x, g.input("w1", "float32", [6, 3, 1, 1]), null, { strides: [1] }),
    GraphError,
    "E_GRAPH",
    "expected 2 strides, 2 dilations and 4 pads, got 1, 2 and 4",
  ],
  [
    "Conv groups",
    () => op.Conv(g, x, g.input("w2", "float32", [5, 1, 1, 1]), null, { group: 3 }),
    GraphError,
    "E_GRAPH",
    "output channels 5 must be divisible by group 3",
  ],
  [
    "Conv bias",
    () => op.Conv(g, x, g.input("w3", "float32", [6, 3, 1, 1]), g.input("b3", "float32", [5]), {}),
    GraphError,
    "E_GRAPH",
    "Conv: bias must be [6] but b3 is [5]",
  ],
  [
    "Resize scales",
    () => op.Resize(g, x, [2, 2]),
    GraphError,
    "E_GRAPH",
    "Resize: got 2 scales for input [2, 3, 4, 4] of rank 4",
  ],
  [
    "GroupNorm rank",
    () => op.GroupNormalizationComposite(g, scalar, null, null, { numGroups: 1 }),
    GraphError,
    "E_GRAPH",
    "GroupNormalization: input must be [N, C, ...]",
  ],
  [
    "GroupNorm groups",
    () => op.GroupNormalizationComposite(g, x, null, null, { numGroups: 0 }),
    GraphError,
    "E_GRAPH",
    "num_groups must be a positive integer, got 0",
  ],
  [
    "InstanceNorm rank",
    () => op.InstanceNormalization(g, m, m, m),
    GraphError,
    "E_GRAPH",
    "InstanceNormalization: input must be [N, C, D1, ...]",
  ],
  ["Concat nothing", () => op.Concat(g, [], 0), GraphError, "E_GRAPH", "Concat: needs at least one input"],
  [
    "Concat ranks",
    () => op.Concat(g, [m, x], 0),
    GraphError,
    "E_GRAPH",
    "Concat: ranks differ: [2, 3] and [2, 3, 4, 4]",
  ],
  [
    "Split count",
    () => op.Split(g, m, 1, { count: 2 }),
    GraphError,
    "E_GRAPH",
    "Split: axis 1 of size 3 does not split into 2 equal parts",
  ],
  [
    "Slice lengths",
    () => op.Slice(g, m, { starts: [0], ends: [1, 2] }),
    GraphError,
    "E_GRAPH",
    "Slice: starts, ends, axes and steps must have equal lengths (1, 2, 1, 1)",
  ],
  [
    "Slice step",
    () => op.Slice(g, m, { starts: [0], ends: [1], steps: [0] }),
    GraphError,
    "E_GRAPH",
    "Slice: step must not be 0",
  ],
  [
    "Gather float indices",
    () => op.Gather(g, m, m),
    GraphError,
    "E_GRAPH",
    "Gather: indices must be int64 or int32 but m is float32",
  ],
  ["Pad count", () => op.Pad(g, m, [1, 1]), GraphError, "E_GRAPH", "Pad: needs 4 pads for [2, 3], got 2"],
  ["Tile count", () => op.Tile(g, m, [2]), GraphError, "E_GRAPH", "Tile: needs 2 repeats for [2, 3], got 1"],
  ["Softmax int", () => op.Softmax(g, ids), GraphError, "E_GRAPH", "Softmax: ids must be a float tensor"],
  [
    "ReduceMean axis",
    () => op.ReduceMean(g, m, [5]),
    GraphError,
    "E_GRAPH",
    "ReduceMean: axis 5 is out of range for rank 2",
  ],
  [
    "attention rank",
    () => op.MultiHeadAttention(g, m, m, m, { numHeads: 1 }),
    GraphError,
    "E_GRAPH",
    "query must be [batch, sequence, heads*head_dim] but m is [2, 3]",
  ],
  [
    "attention bias rank",
    () => op.MultiHeadAttention(g, seq, seq, seq, { numHeads: 2, attentionBias: m }),
    GraphError,
    "E_GRAPH",
    "attention bias must be [B or 1, H or 1, S, L] but m is [2, 3]",
  ],
  [
    "attention heads",
    () => op.MultiHeadAttention(g, seq, seq, seq, { numHeads: 0 }),
    GraphError,
    "E_GRAPH",
    "num_heads must be a positive integer, got 0",
  ],
  [
    "attention static hidden",
    () => op.MultiHeadAttention(g, g.input("q", "float32", [1, 2, "h"]), seq, seq, { numHeads: 1 }),
    GraphError,
    "E_GRAPH",
    "the hidden sizes must be static",
  ],
  [
    "attention batch",
    () =>
      op.MatMulAttention(g, seq, g.input("k4", "float32", [3, 5, 8]), g.input("v4", "float32", [3, 5, 8]), {
        numHeads: 2,
      }),
    GraphError,
    "E_GRAPH",
    "batch sizes differ",
  ],
  [
    "reshape 0 past rank",
    () => reshapeTarget("Reshape", [2], [2, 0]),
    GraphError,
    "E_GRAPH",
    "target dim 1 is 0 (copy) but the input [2] has rank 1",
  ],
  [
    "reshape negative",
    () => reshapeTarget("Reshape", [2], [-2]),
    GraphError,
    "E_GRAPH",
    "has invalid dim -2",
  ],
  [
    "reshape source size",
    () => reshapedSource(tensorSource(tensor("float32", [2, 3])), [5]),
    InvalidArgumentError,
    "E_INVALID_ARGUMENT",
    "a shape with 6 elements (source is [2, 3])",
  ],
  [
    "cast int",
    () => castTensor(tensor("int64", [1]), "float32"),
    UnsupportedError,
    "E_UNSUPPORTED",
    "casting a weight from int64 to float32",
  ],
  [
    "cast source",
    () => castSource(tensorSource(tensor("float32", [1])), "int32"),
    UnsupportedError,
    "E_UNSUPPORTED",
    "casting a weight from float32 to int32",
  ],
];

describe("graph errors", () => {
  it.each(cases)("%s", async (_label, fn, type, code, fragment) => {
    await expectError(fn, type, code, fragment);
  });
  it("runtime shapes must have a static length", async () => {
    const unknownLength = op.Concat(g, [runtimeShape, ids], 0); // [2 + n]
    await expectError(
      () => op.Expand(g, m, unknownLength),
      GraphError,
      "E_GRAPH",
      "Expand: a runtime shape must be a 1-D int64 tensor of static length",
    );
    await expectError(
      () => op.Reshape(g, m, unknownLength),
      GraphError,
      "E_GRAPH",
      "Reshape: a runtime shape must be a 1-D int64 tensor of static length, got [?]",
    );
  });
});
