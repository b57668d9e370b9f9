/**
 * Build-time shapes: a dim is a number, a symbolic name ("batch") or null (unknown). Helpers for
 * broadcasting, axes and products used by every op's shape inference.
 */
import { GraphError } from "../errors.js";

/** One dimension: a size, a symbolic name shared by graph inputs ("batch"), or null when unknown. */
export type Dim = number | string | null;
export type GraphShape = readonly Dim[];

export function dimToString(d: Dim): string {
  return d === null ? "?" : String(d);
}

export function shapeStr(shape: GraphShape): string {
  return `[${shape.map(dimToString).join(", ")}]`;
}

export function isStaticShape(shape: GraphShape): shape is readonly number[] {
  return shape.every((d) => typeof d === "number");
}

/** Product of the dims when all are numbers, else null. */
export function staticNumel(shape: GraphShape): number | null {
  let n = 1;
  for (const d of shape) {
    if (typeof d !== "number") return null;
    n *= d;
  }
  return n;
}

/** True when the two dims are certainly equal; false when certainly different; null if unknown. */
export function dimsEqual(a: Dim, b: Dim): boolean | null {
  if (a === null || b === null) return null;
  if (typeof a === "number" && typeof b === "number") return a === b;
  if (typeof a === "string" && typeof b === "string") return a === b ? true : null;
  return null;
}

/** Numpy-style broadcast of two shapes (ONNX multidirectional broadcasting). */
export function broadcastShapes(op: string, a: GraphShape, b: GraphShape): GraphShape {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const da = i < rank - a.length ? 1 : (a[i - (rank - a.length)] ?? null);
    const db = i < rank - b.length ? 1 : (b[i - (rank - b.length)] ?? null);
    out.push(broadcastDim(op, da, db, a, b));
  }
  return out;
}

function broadcastDim(op: string, a: Dim, b: Dim, sa: GraphShape, sb: GraphShape): Dim {
  if (a === 1) return b;
  if (b === 1) return a;
  if (typeof a === "number" && typeof b === "number") {
    if (a !== b) {
      throw new GraphError(
        op,
        `shapes ${shapeStr(sa)} and ${shapeStr(sb)} cannot be broadcast (${a} vs ${b})`,
      );
    }
    return a;
  }
  if (a === b) return a;
  // A number > 1 against a symbol/unknown: the symbol must be that number (or 1), so the result is the number.
  if (typeof a === "number") return a;
  if (typeof b === "number") return b;
  return null;
}

/** Normalizes a possibly negative axis into [0, rank). */
export function normalizeAxis(op: string, axis: number, rank: number): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) {
    throw new GraphError(op, `axis ${axis} is out of range for rank ${rank} (valid: ${-rank}..${rank - 1})`);
  }
  return axis < 0 ? axis + rank : axis;
}

/** Adds two dims where possible (numbers add; anything symbolic gives unknown). */
export function addDims(a: Dim, b: Dim): Dim {
  return typeof a === "number" && typeof b === "number" ? a + b : null;
}

/**
 * Resolves a Reshape target against the input shape (ONNX Reshape with allowzero=0): 0 copies the
 * input dim, -1 is inferred from the element count, cancelling identical symbols on both sides.
 */
export function reshapeTarget(op: string, input: GraphShape, target: readonly number[]): GraphShape {
  const out: Dim[] = [];
  let inferAt = -1;
  for (let i = 0; i < target.length; i++) {
    const t = target[i] ?? 0;
    if (t === -1) {
      if (inferAt >= 0) throw new GraphError(op, `target shape [${target.join(", ")}] has more than one -1`);
      inferAt = i;
      out.push(null);
    } else if (t === 0) {
      if (i >= input.length) {
        throw new GraphError(
          op,
          `target dim ${i} is 0 (copy) but the input ${shapeStr(input)} has rank ${input.length}`,
        );
      }
      out.push(input[i] ?? null);
    } else if (Number.isInteger(t) && t > 0) {
      out.push(t);
    } else {
      throw new GraphError(op, `target shape [${target.join(", ")}] has invalid dim ${t}`);
    }
  }
  const inCount = factor(input);
  const outCount = factor(out.filter((_, i) => i !== inferAt));
  if (inCount === null || outCount === null) return out;
  // Cancel symbols present on both sides.
  const symbols = [...inCount.symbols];
  const rest: string[] = [];
  for (const s of outCount.symbols) {
    const k = symbols.indexOf(s);
    if (k >= 0) symbols.splice(k, 1);
    else rest.push(s);
  }
  if (inferAt < 0) {
    if (symbols.length === 0 && rest.length === 0 && inCount.value !== outCount.value) {
      throw new GraphError(
        op,
        `cannot reshape ${shapeStr(input)} (${inCount.value} elements) to ${shapeStr(out)} (${outCount.value} elements)`,
      );
    }
    return out;
  }
  if (rest.length > 0) return out;
  if (outCount.value === 0 || inCount.value % outCount.value !== 0) {
    if (symbols.length === 0) {
      throw new GraphError(
        op,
        `cannot reshape ${shapeStr(input)} to [${target.join(", ")}]: ${inCount.value} elements do not divide by ${outCount.value}`,
      );
    }
    return out;
  }
  const q = inCount.value / outCount.value;
  if (symbols.length === 0) out[inferAt] = q;
  else if (symbols.length === 1 && q === 1) out[inferAt] = symbols[0] ?? null;
  return out;
}

/** Splits a shape's element count into a numeric factor and a multiset of symbols (null if unknown dims). */
function factor(shape: GraphShape): { value: number; symbols: string[] } | null {
  let value = 1;
  const symbols: string[] = [];
  for (const d of shape) {
    if (d === null) return null;
    if (typeof d === "number") value *= d;
    else symbols.push(d);
  }
  return { value, symbols };
}
