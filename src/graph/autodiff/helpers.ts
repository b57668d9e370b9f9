/**
 * Building blocks shared by gradient rules: undoing a broadcast (sum over the broadcast axes, as
 * torch's `sum_to_size`), zeros of a value's shape, and static-shape checks.
 */
import { GraphError } from "../../errors.js";
import { type GraphBuilder, type Value, attr } from "../builder.js";
import * as op from "../ops/index.js";
import { type GraphShape, dimsEqual, isStaticShape, shapeStr } from "../shape.js";
import { tensorOf } from "../tensor-of.js";

/** The value's shape when every dim is a number; throws naming `what` otherwise. */
export function staticShape(what: string, v: Value): number[] {
  if (!isStaticShape(v.shape)) {
    throw new GraphError(`${what} gradient`, `needs a static shape but ${v.name} is ${shapeStr(v.shape)}`, {
      hint: "declare the graph inputs of a training graph with numeric dims",
    });
  }
  return [...v.shape];
}

/** True when the two shapes are certainly the same. */
export function sameShape(a: GraphShape, b: GraphShape): boolean {
  return a.length === b.length && a.every((d, i) => dimsEqual(d, b[i] ?? null) === true);
}

/**
 * Sums `grad` (the shape of a broadcast result) down to `target`'s shape: leading axes that the
 * broadcast added, and axes where the target has size 1.
 */
export function unbroadcast(g: GraphBuilder, grad: Value, target: Value): Value {
  if (sameShape(grad.shape, target.shape)) return grad;
  const lead = grad.rank - target.rank;
  if (lead < 0) {
    throw new GraphError(
      "unbroadcast",
      `gradient ${shapeStr(grad.shape)} has a lower rank than ${target.name} ${shapeStr(target.shape)}`,
    );
  }
  const axes: number[] = [];
  for (let i = 0; i < grad.rank; i++) {
    if (i < lead) {
      axes.push(i);
      continue;
    }
    const t = target.shape[i - lead] ?? null;
    const d = grad.shape[i] ?? null;
    if (t === 1 && d !== 1) axes.push(i);
    else if (dimsEqual(t, d) !== true) {
      throw new GraphError(
        "unbroadcast",
        `cannot tell whether ${target.name} ${shapeStr(target.shape)} was broadcast to ${shapeStr(grad.shape)} (axis ${i})`,
        { hint: "use static shapes in training graphs" },
      );
    }
  }
  let out = axes.length === 0 ? grad : op.ReduceSum(g, grad, axes, { keepdims: true });
  if (lead > 0)
    out = op.Squeeze(
      g,
      out,
      Array.from({ length: lead }, (_, i) => i),
    );
  return out;
}

/** `fill` with the shape and dtype of `like` (ConstantOfShape; no large constant in the model). */
export function filledLike(g: GraphBuilder, like: Value, fill: number): Value {
  return g.node1(
    "ConstantOfShape",
    [op.Shape(g, like)],
    { value: attr.tensor(tensorOf(like.dtype, [1], [fill])) },
    { dtype: like.dtype, shape: like.shape },
  );
}

/** Zeros with the shape and dtype of `like`. */
export function zerosLike(g: GraphBuilder, like: Value): Value {
  return filledLike(g, like, 0);
}

/** Sums gradient contributions of one value (one node when several). */
export function sumAll(g: GraphBuilder, parts: readonly Value[]): Value {
  const first = parts[0];
  if (!first) throw new GraphError("gradient", "internal: no gradient contributions to sum");
  if (parts.length === 1) return first;
  if (parts.length === 2) return op.Add(g, first, parts[1] ?? first);
  return g.node1("Sum", parts, {}, { dtype: first.dtype, shape: first.shape });
}

/** Reshapes `grad` back to `like`'s shape (constant target when static). */
export function reshapeTo(g: GraphBuilder, grad: Value, like: Value): Value {
  if (sameShape(grad.shape, like.shape)) return grad;
  return isStaticShape(like.shape) ? op.Reshape(g, grad, like.shape) : op.ReshapeLike(g, grad, like);
}
