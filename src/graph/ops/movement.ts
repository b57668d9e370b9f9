/**
 * Shape and layout ops: Reshape, Transpose, Unsqueeze, Squeeze, Expand, Shape, Flatten.
 * Shape-like arguments are given as number lists (become int64 constants) or int64 graph values.
 */
import { GraphError } from "../../errors.js";
import type { GraphBuilder, Value } from "../builder.js";
import { attr } from "../builder.js";
import {
  type Dim,
  broadcastShapes,
  isStaticShape,
  normalizeAxis,
  reshapeTarget,
  shapeStr,
  staticNumel,
} from "../shape.js";
import { intsInput } from "./common.js";

/** Reshape with ONNX semantics: 0 copies the input dim, -1 is inferred. */
export function Reshape(g: GraphBuilder, x: Value, shape: readonly number[] | Value): Value {
  const { value, ints } = intsInput(g, "Reshape", "shape", shape);
  let out: readonly Dim[];
  if (ints) out = reshapeTarget("Reshape", x.shape, ints);
  else {
    const n = value.shape[0];
    if (value.rank !== 1 || typeof n !== "number") {
      throw new GraphError(
        "Reshape",
        `a runtime shape must be a 1-D int64 tensor of static length, got ${shapeStr(value.shape)}`,
      );
    }
    out = Array<Dim>(n).fill(null);
  }
  return g.node1("Reshape", [x, value], {}, { dtype: x.dtype, shape: out });
}

/**
 * Reshapes x to the shape of `like` (same element count), keeping like's symbolic dims in the
 * inferred shape. Uses a constant target when like's dims are static, else a runtime Shape.
 */
export function ReshapeLike(g: GraphBuilder, x: Value, like: Value): Value {
  const a = staticNumel(x.shape);
  const b = staticNumel(like.shape);
  if (a !== null && b !== null && a !== b) {
    throw new GraphError(
      "Reshape",
      `cannot reshape ${shapeStr(x.shape)} (${a} elements) like ${like.name} ${shapeStr(like.shape)} (${b} elements)`,
    );
  }
  return g.node1("Reshape", [x, Shape(g, like)], {}, { dtype: x.dtype, shape: like.shape });
}

/** Transpose by `perm` (default: reverse the axes). */
export function Transpose(g: GraphBuilder, x: Value, perm?: readonly number[]): Value {
  const p = perm ?? x.shape.map((_, i) => x.rank - 1 - i);
  const sorted = [...p].sort((a, b) => a - b);
  if (p.length !== x.rank || sorted.some((v, i) => v !== i)) {
    throw new GraphError(
      "Transpose",
      `perm [${p.join(", ")}] is not a permutation of the ${x.rank} axes of ${shapeStr(x.shape)}`,
    );
  }
  return g.node1(
    "Transpose",
    [x],
    { perm: attr.ints(p) },
    { dtype: x.dtype, shape: p.map((i) => x.shape[i] ?? null) },
  );
}

/** Inserts size-1 axes at `axes` (positions in the output). */
export function Unsqueeze(g: GraphBuilder, x: Value, axes: readonly number[]): Value {
  const rank = x.rank + axes.length;
  const norm = axes.map((a) => normalizeAxis("Unsqueeze", a, rank));
  if (new Set(norm).size !== norm.length)
    throw new GraphError("Unsqueeze", `axes [${axes.join(", ")}] repeat an axis`);
  const out: Dim[] = [];
  let k = 0;
  for (let i = 0; i < rank; i++) out.push(norm.includes(i) ? 1 : (x.shape[k++] ?? null));
  return g.node1("Unsqueeze", [x, g.int64s(norm)], {}, { dtype: x.dtype, shape: out });
}

/** Removes the size-1 axes at `axes`. */
export function Squeeze(g: GraphBuilder, x: Value, axes: readonly number[]): Value {
  const norm = axes.map((a) => normalizeAxis("Squeeze", a, x.rank));
  for (const a of norm) {
    const d = x.shape[a];
    if (typeof d === "number" && d !== 1)
      throw new GraphError("Squeeze", `axis ${a} of ${shapeStr(x.shape)} has size ${d}, not 1`);
  }
  const out = x.shape.filter((_, i) => !norm.includes(i));
  return g.node1("Squeeze", [x, g.int64s(norm)], {}, { dtype: x.dtype, shape: out });
}

/** Broadcasts x to `shape` (numpy rules; 1 in `shape` keeps the input dim). */
export function Expand(g: GraphBuilder, x: Value, shape: readonly number[] | Value): Value {
  const { value, ints } = intsInput(g, "Expand", "shape", shape);
  let out: readonly Dim[];
  if (ints) out = broadcastShapes("Expand", x.shape, ints);
  else {
    const n = value.shape[0];
    if (value.rank !== 1 || typeof n !== "number") {
      throw new GraphError(
        "Expand",
        `a runtime shape must be a 1-D int64 tensor of static length, got ${shapeStr(value.shape)}`,
      );
    }
    out = Array<Dim>(Math.max(n, x.rank)).fill(null);
  }
  return g.node1("Expand", [x, value], {}, { dtype: x.dtype, shape: out });
}

/**
 * The shape of x as a 1-D int64 tensor (dims start..end). Folded to a constant when those dims are
 * static, so later Reshape/Expand see known values.
 */
export function Shape(g: GraphBuilder, x: Value, options: { start?: number; end?: number } = {}): Value {
  const start = options.start === undefined ? 0 : clampAxis(options.start, x.rank);
  const end = options.end === undefined ? x.rank : clampAxis(options.end, x.rank);
  const dims = x.shape.slice(start, Math.max(start, end));
  if (isStaticShape(dims)) return g.int64s(dims);
  return g.node1(
    "Shape",
    [x],
    {
      start: options.start === undefined ? undefined : attr.int(start),
      end: options.end === undefined ? undefined : attr.int(end),
    },
    { dtype: "int64", shape: [dims.length] },
  );
}

function clampAxis(a: number, rank: number): number {
  return Math.min(Math.max(a < 0 ? a + rank : a, 0), rank);
}

/** Flattens to 2-D: [prod(dims before axis), prod(dims from axis)]. */
export function Flatten(g: GraphBuilder, x: Value, axis = 1): Value {
  const a = axis === x.rank ? axis : normalizeAxis("Flatten", axis, x.rank);
  const prod = (dims: readonly Dim[]): Dim => {
    const symbolic = dims.filter((d) => typeof d !== "number");
    const n = dims.reduce<number>((acc, d) => (typeof d === "number" ? acc * d : acc), 1);
    if (symbolic.length === 0) return n;
    return symbolic.length === 1 && n === 1 ? (symbolic[0] ?? null) : null;
  };
  return g.node1(
    "Flatten",
    [x],
    { axis: attr.int(a) },
    { dtype: x.dtype, shape: [prod(x.shape.slice(0, a)), prod(x.shape.slice(a))] },
  );
}
