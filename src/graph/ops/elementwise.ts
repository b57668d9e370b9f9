/**
 * Elementwise ONNX ops: binary arithmetic with numpy broadcasting, unary math, Where and Cast.
 * Numbers are accepted as operands and become scalar constants of the tensor operand's dtype.
 */
import { GraphError } from "../../errors.js";
import type { DType } from "../../tensor.js";
import type { GraphBuilder, Value } from "../builder.js";
import { attr } from "../builder.js";
import { toOnnxDataType } from "../dtype.js";
import { broadcastShapes } from "../shape.js";
import { type Operand, commonDType, expectFloat, operand } from "./common.js";

function binary(op: string, g: GraphBuilder, a: Operand, b: Operand, outDType?: DType): Value {
  const dtype = commonDType(op, a, b);
  const va = operand(g, a, dtype);
  const vb = operand(g, b, dtype);
  const shape = broadcastShapes(op, va.shape, vb.shape);
  return g.node1(op, [va, vb], {}, { dtype: outDType ?? dtype, shape });
}

export const Add = (g: GraphBuilder, a: Operand, b: Operand): Value => binary("Add", g, a, b);
export const Sub = (g: GraphBuilder, a: Operand, b: Operand): Value => binary("Sub", g, a, b);
export const Mul = (g: GraphBuilder, a: Operand, b: Operand): Value => binary("Mul", g, a, b);
export const Div = (g: GraphBuilder, a: Operand, b: Operand): Value => binary("Div", g, a, b);
export const Pow = (g: GraphBuilder, a: Operand, b: Operand): Value => binary("Pow", g, a, b);
export const Max = (g: GraphBuilder, a: Operand, b: Operand): Value => binary("Max", g, a, b);
export const Min = (g: GraphBuilder, a: Operand, b: Operand): Value => binary("Min", g, a, b);
export const Equal = (g: GraphBuilder, a: Operand, b: Operand): Value => binary("Equal", g, a, b, "bool");
export const Less = (g: GraphBuilder, a: Operand, b: Operand): Value => binary("Less", g, a, b, "bool");
export const Greater = (g: GraphBuilder, a: Operand, b: Operand): Value => binary("Greater", g, a, b, "bool");

function unaryFloat(
  op: string,
  g: GraphBuilder,
  x: Value,
  attributes: Parameters<GraphBuilder["node1"]>[2] = {},
): Value {
  expectFloat(op, x);
  return g.node1(op, [x], attributes, x);
}

export const Sqrt = (g: GraphBuilder, x: Value): Value => unaryFloat("Sqrt", g, x);
export const Reciprocal = (g: GraphBuilder, x: Value): Value => unaryFloat("Reciprocal", g, x);
export const Erf = (g: GraphBuilder, x: Value): Value => unaryFloat("Erf", g, x);
export const Sigmoid = (g: GraphBuilder, x: Value): Value => unaryFloat("Sigmoid", g, x);
export const Tanh = (g: GraphBuilder, x: Value): Value => unaryFloat("Tanh", g, x);
export const Cos = (g: GraphBuilder, x: Value): Value => unaryFloat("Cos", g, x);
export const Sin = (g: GraphBuilder, x: Value): Value => unaryFloat("Sin", g, x);
export const Exp = (g: GraphBuilder, x: Value): Value => unaryFloat("Exp", g, x);
export const Log = (g: GraphBuilder, x: Value): Value => unaryFloat("Log", g, x);
export const Relu = (g: GraphBuilder, x: Value): Value => unaryFloat("Relu", g, x);
export const Softplus = (g: GraphBuilder, x: Value): Value => unaryFloat("Softplus", g, x);

/** Gelu (opset 20): approximate "none" (erf) or "tanh". */
export const Gelu = (g: GraphBuilder, x: Value, options: { approximate?: "none" | "tanh" } = {}): Value =>
  unaryFloat("Gelu", g, x, { approximate: options.approximate === "tanh" ? attr.string("tanh") : undefined });

export function Neg(g: GraphBuilder, x: Value): Value {
  return g.node1("Neg", [x], {}, x);
}

export function Abs(g: GraphBuilder, x: Value): Value {
  return g.node1("Abs", [x], {}, x);
}

export function Identity(g: GraphBuilder, x: Value): Value {
  return g.node1("Identity", [x], {}, x);
}

/** Where(condition, x, y): picks x where condition is true; all three broadcast together. */
export function Where(g: GraphBuilder, condition: Value, x: Operand, y: Operand): Value {
  if (condition.dtype !== "bool")
    throw new GraphError("Where", `condition must be bool but ${condition.name} is ${condition.dtype}`);
  const dtype = commonDType("Where", x, y);
  const vx = operand(g, x, dtype);
  const vy = operand(g, y, dtype);
  const shape = broadcastShapes("Where", broadcastShapes("Where", condition.shape, vx.shape), vy.shape);
  return g.node1("Where", [condition, vx, vy], {}, { dtype, shape });
}

/** Cast to another dtype (a no-op returns x itself). */
export function Cast(g: GraphBuilder, x: Value, to: DType): Value {
  if (x.dtype === to) return x;
  return g.node1("Cast", [x], { to: attr.int(toOnnxDataType(to)) }, { dtype: to, shape: x.shape });
}
