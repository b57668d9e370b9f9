/**
 * Shared helpers for op wrappers: operands given as numbers, dtype checks, reading int lists from
 * constant values.
 */
import { GraphError } from "../../errors.js";
import type { DType } from "../../tensor.js";
import { type GraphBuilder, Value } from "../builder.js";
import { isFloatDType } from "../dtype.js";

/** A tensor operand, or a JS number turned into a scalar constant of the other operand's dtype. */
export type Operand = Value | number;

export function operand(g: GraphBuilder, x: Operand, dtype: DType): Value {
  return typeof x === "number" ? g.scalar(x, dtype) : x;
}

/** The dtype shared by the operands (numbers adopt it); throws when two tensors disagree. */
export function commonDType(op: string, ...xs: readonly Operand[]): DType {
  let dtype: DType | undefined;
  for (const x of xs) {
    if (typeof x === "number") continue;
    if (dtype !== undefined && x.dtype !== dtype) {
      throw new GraphError(op, `operand dtypes differ: ${dtype} and ${x.dtype} (${x.name})`, {
        hint: "insert a Cast so both operands have the same dtype",
      });
    }
    dtype = x.dtype;
  }
  if (dtype === undefined)
    throw new GraphError(op, "at least one operand must be a graph value, not only numbers");
  return dtype;
}

export function expectFloat(op: string, x: Value): void {
  if (!isFloatDType(x.dtype)) throw new GraphError(op, `${x.name} must be a float tensor but is ${x.dtype}`);
}

/** Reads a 1-D int constant (shape/axes inputs) or returns null for a runtime value. */
export function constantInts(x: Value): number[] | null {
  const t = x.constant;
  if (!t) return null;
  if (t.dtype === "int64") return Array.from(t.data as BigInt64Array, (v) => Number(v));
  if (t.dtype === "int32") return Array.from(t.data as Int32Array);
  return null;
}

/** An int list given inline or as a graph value: returns the value to wire and the known list (if any). */
export function intsInput(
  g: GraphBuilder,
  op: string,
  what: string,
  x: readonly number[] | Value,
): { value: Value; ints: number[] | null } {
  if (x instanceof Value) {
    if (x.dtype !== "int64")
      throw new GraphError(op, `${what} must be an int64 tensor but ${x.name} is ${x.dtype}`);
    return { value: x, ints: constantInts(x) };
  }
  for (const v of x)
    if (!Number.isInteger(v)) throw new GraphError(op, `${what} must be integers but got [${x.join(", ")}]`);
  return { value: g.int64s(x), ints: [...x] };
}
