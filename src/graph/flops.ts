/**
 * FLOP counting over a built graph, from the shapes inferred at build time. Multiply and add count
 * as two FLOPs:
 * - Conv: 2 * N * Cout * Hout * Wout * (Cin / group) * kh * kw (bias not counted);
 *   ConvTranspose: 2 * N * Cin * Hin * Win * (Cout / group) * kh * kw.
 * - MatMul / Gemm: 2 * batch * M * K * N (Gemm's bias not counted).
 * - com.microsoft MultiHeadAttention: 2 * B * heads * S * L * (headDim + valueHeadDim), i.e.
 *   2 * 2 * B * heads * S * L * headDim for equal head dims (Q K^T and probs V).
 * Everything else is not FLOPs here but "other" work counted by element count: elementwise ops,
 * norms, softmax (the attention op's B * heads * S * L scores included), resize, reductions; layout
 * ops (Reshape, Transpose, Concat, ...) are counted apart as moved elements. Symbolic dims ("batch")
 * take the values given in `dims`; a node whose shapes have unknown dims (null: e.g. a strided Conv
 * over a symbolic "height") is listed in `unresolved` rather than guessed; build such graphs into a
 * `ConcreteDimsGraphBuilder` to count everything.
 */
import { InvalidArgumentError } from "../errors.js";
import type { DType } from "../tensor.js";
import { GraphBuilder, type GraphBuilderOptions, type NodeRecord, type Value } from "./builder.js";

export type FlopCategory = "conv" | "matmul" | "attention" | "other" | "movement";

export interface OpTypeCount {
  readonly category: FlopCategory;
  readonly nodes: number;
  /** FLOPs (conv, matmul, attention) or elements (other, movement). */
  readonly work: number;
}

type Tally = { -readonly [K in keyof OpTypeCount]: OpTypeCount[K] };

export interface FlopReport {
  /** conv + matmul + attention FLOPs. */
  readonly flops: number;
  readonly conv: number;
  readonly matmul: number;
  readonly attention: number;
  /** Elements produced by elementwise, normalization, softmax, resize and reduction nodes. */
  readonly otherElements: number;
  /** Elements produced by layout nodes (Reshape, Transpose, Concat, Slice, Cast, ...). */
  readonly movementElements: number;
  /** Per op type ("com.microsoft.MultiHeadAttention" for contrib ops). */
  readonly byOpType: Readonly<Record<string, OpTypeCount>>;
  /** Nodes left uncounted because a shape they need has an unknown dim. */
  readonly unresolved: readonly string[];
}

/** Concrete values for the graph's symbolic dims, e.g. { batch: 2, height: 64, width: 64 }. */
export type DimValues = Readonly<Record<string, number>>;

const MOVEMENT = new Set([
  "Reshape",
  "Transpose",
  "Identity",
  "Shape",
  "Unsqueeze",
  "Squeeze",
  "Flatten",
  "Expand",
  "Concat",
  "Slice",
  "Split",
  "Gather",
  "Pad",
  "Tile",
  "Constant",
  "ConstantOfShape",
  "Cast",
  "Range",
  "Size",
]);

class Unresolved extends Error {}

/** Counts the FLOPs of every node of `graph` (see the file comment for the formulas). */
export function countFlops(graph: GraphBuilder, dims: DimValues = {}): FlopReport {
  for (const [name, size] of Object.entries(dims)) {
    if (!Number.isInteger(size) || size < 0)
      throw new InvalidArgumentError(`dims.${name}`, "a non-negative integer", size);
  }
  checkSymbols(graph, dims);
  const byOpType: Record<string, Tally> = {};
  const totals: Record<FlopCategory, number> = { conv: 0, matmul: 0, attention: 0, other: 0, movement: 0 };
  const unresolved: string[] = [];
  const add = (key: string, category: FlopCategory, work: number): void => {
    const entry = (byOpType[key] ??= { category, nodes: 0, work: 0 });
    entry.work += work;
    totals[category] += work;
  };
  for (const node of graph.nodes) {
    const key = node.domain === "" ? node.opType : `${node.domain}.${node.opType}`;
    try {
      const counted = countNode(graph, node, dims);
      const entry = (byOpType[key] ??= { category: counted.category, nodes: 0, work: 0 });
      entry.nodes++;
      add(key, counted.category, counted.work);
      if (counted.softmaxElements > 0) add("(attention softmax)", "other", counted.softmaxElements);
    } catch (error) {
      if (!(error instanceof Unresolved)) throw error;
      unresolved.push(node.name);
    }
  }
  return {
    flops: totals.conv + totals.matmul + totals.attention,
    conv: totals.conv,
    matmul: totals.matmul,
    attention: totals.attention,
    otherElements: totals.other,
    movementElements: totals.movement,
    byOpType,
    unresolved,
  };
}

/** Throws one error naming every symbolic dim of the graph that `dims` lacks. */
function checkSymbols(graph: GraphBuilder, dims: DimValues): void {
  const missing = new Set<string>();
  for (const node of graph.nodes) {
    for (const name of [...node.inputs, ...node.outputs]) {
      const v = name === "" ? undefined : graph.value(name);
      for (const d of v?.shape ?? []) if (typeof d === "string" && dims[d] === undefined) missing.add(d);
    }
  }
  if (missing.size > 0) {
    const list = [...missing];
    throw new InvalidArgumentError(
      "dims",
      `sizes for the symbolic dims ${list.join(", ")}`,
      Object.keys(dims),
      {
        hint: `countFlops needs concrete sizes, e.g. { ${list.map((d) => `${d}: 1`).join(", ")} }`,
      },
    );
  }
}

interface NodeCount {
  readonly category: FlopCategory;
  readonly work: number;
  readonly softmaxElements: number;
}

function countNode(graph: GraphBuilder, node: NodeRecord, dims: DimValues): NodeCount {
  const input = (i: number): Value => {
    const name = node.inputs[i];
    const v = name === undefined || name === "" ? undefined : graph.value(name);
    if (!v) throw new Unresolved();
    return v;
  };
  const shapeOf = (v: Value): number[] => v.shape.map((d) => resolve(d, dims));
  const output = (i: number): number[] => {
    const name = node.outputs[i];
    const v = name === undefined ? undefined : graph.value(name);
    if (!v) throw new Unresolved();
    return shapeOf(v);
  };
  const flops = (category: FlopCategory, work: number, softmaxElements = 0): NodeCount => ({
    category,
    work,
    softmaxElements,
  });
  const key = node.domain === "" ? node.opType : `${node.domain}.${node.opType}`;
  switch (key) {
    case "Conv": {
      const w = shapeOf(input(1));
      return flops("conv", 2 * product(output(0)) * product(w.slice(1)));
    }
    case "ConvTranspose": {
      const w = shapeOf(input(1));
      return flops("conv", 2 * product(shapeOf(input(0))) * product(w.slice(1)));
    }
    case "MatMul": {
      const a = shapeOf(input(0));
      const k = a[a.length - 1] ?? 1;
      return flops("matmul", 2 * product(output(0)) * k);
    }
    case "Gemm": {
      const a = shapeOf(input(0));
      const transA = node.attributes["transA"];
      const k = (transA?.type === "int" && transA.value !== 0 ? a[0] : a[1]) ?? 1;
      return flops("matmul", 2 * product(output(0)) * k);
    }
    case "com.microsoft.MultiHeadAttention": {
      const [b = 1, s = 1, hidden = 1] = shapeOf(input(0));
      const keyLength = shapeOf(input(1))[1] ?? 1;
      const valueHidden = shapeOf(input(2))[2] ?? hidden;
      const heads = node.attributes["num_heads"];
      const h = heads?.type === "int" ? heads.value : 1;
      return flops("attention", 2 * b * s * keyLength * (hidden + valueHidden), b * h * s * keyLength);
    }
    default: {
      const out = node.outputs.reduce((sum, _, i) => sum + product(output(i)), 0);
      if (MOVEMENT.has(key)) return flops("movement", out);
      const first = node.inputs[0] ? product(shapeOf(input(0))) : 0;
      return flops("other", Math.max(out, first));
    }
  }
}

function resolve(d: number | string | null, dims: DimValues): number {
  if (typeof d === "number") return d;
  const v = d === null ? undefined : dims[d];
  if (v === undefined) throw new Unresolved();
  return v;
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** "1.23 TFLOP"-style formatting for reports. */
export function formatFlops(flops: number): string {
  const units: readonly [number, string][] = [
    [1e15, "PFLOP"],
    [1e12, "TFLOP"],
    [1e9, "GFLOP"],
    [1e6, "MFLOP"],
    [1e3, "kFLOP"],
  ];
  for (const [scale, unit] of units)
    if (Math.abs(flops) >= scale) return `${(flops / scale).toFixed(2)} ${unit}`;
  return `${flops} FLOP`;
}

/**
 * A GraphBuilder whose inputs get concrete sizes for the symbolic dims named in `dims`. Ops that
 * cannot keep a symbolic dim (a strided Conv turns "height" into an unknown) then infer static
 * shapes throughout, so `countFlops` resolves every node. Build the model into it only to count.
 */
export class ConcreteDimsGraphBuilder extends GraphBuilder {
  constructor(
    readonly dims: DimValues,
    options: GraphBuilderOptions = {},
  ) {
    super(options);
  }

  override input(name: string, dtype: DType, shape: readonly (number | string)[]): Value {
    return super.input(
      name,
      dtype,
      shape.map((d) => (typeof d === "string" ? (this.dims[d] ?? d) : d)),
    );
  }
}
