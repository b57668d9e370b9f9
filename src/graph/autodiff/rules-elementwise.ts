/**
 * Gradient rules of elementwise ONNX ops (binary ops broadcast: their gradients are summed back to
 * each operand's shape), Where, Cast and the unary math ops the models use (SiLU = x * Sigmoid(x),
 * erf and tanh GELU, quick_gelu are composed from these). Formulas as torch's derivatives.yaml.
 */
import type { Value } from "../builder.js";
import * as op from "../ops/index.js";
import { unbroadcast } from "./helpers.js";
import type { GradientRule, RuleContext } from "./rule.js";

type Unary = (ctx: RuleContext, gy: Value) => Value;

function unary(f: Unary): GradientRule {
  return (ctx, [gy]) => [gy && ctx.needs[0] ? f(ctx, gy) : null];
}

function binary(
  fa: ((ctx: RuleContext, gy: Value) => Value) | null,
  fb: ((ctx: RuleContext, gy: Value) => Value) | null,
): GradientRule {
  return (ctx, [gy]) => {
    if (!gy) return [null, null];
    const { g } = ctx;
    return [
      fa && ctx.needs[0] ? unbroadcast(g, fa(ctx, gy), ctx.input(0)) : null,
      fb && ctx.needs[1] ? unbroadcast(g, fb(ctx, gy), ctx.input(1)) : null,
    ];
  };
}

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

export const ELEMENTWISE_RULES: Readonly<Record<string, GradientRule>> = {
  Add: binary(
    (_c, gy) => gy,
    (_c, gy) => gy,
  ),
  Sub: binary(
    (_c, gy) => gy,
    (c, gy) => op.Neg(c.g, gy),
  ),
  Mul: binary(
    (c, gy) => op.Mul(c.g, gy, c.input(1)),
    (c, gy) => op.Mul(c.g, gy, c.input(0)),
  ),
  // y = a / b: da = g / b, db = -g * y / b
  Div: binary(
    (c, gy) => op.Div(c.g, gy, c.input(1)),
    (c, gy) => op.Neg(c.g, op.Div(c.g, op.Mul(c.g, gy, c.output()), c.input(1))),
  ),
  // y = a ^ b: da = g * b * a^(b-1), db = g * y * ln(a)
  Pow: binary(
    (c, gy) => {
      const b = c.input(1);
      return op.Mul(c.g, op.Mul(c.g, gy, b), op.Pow(c.g, c.input(0), op.Sub(c.g, b, 1)));
    },
    (c, gy) => op.Mul(c.g, op.Mul(c.g, gy, c.output()), op.Log(c.g, c.input(0))),
  ),
  Max: binary(
    (c, gy) => op.Where(c.g, op.Less(c.g, c.input(0), c.input(1)), 0, gy),
    (c, gy) => op.Where(c.g, op.Less(c.g, c.input(0), c.input(1)), gy, 0),
  ),
  Min: binary(
    (c, gy) => op.Where(c.g, op.Greater(c.g, c.input(0), c.input(1)), 0, gy),
    (c, gy) => op.Where(c.g, op.Greater(c.g, c.input(0), c.input(1)), gy, 0),
  ),
  Where: (ctx, [gy]) => {
    if (!gy) return [null, null, null];
    const { g } = ctx;
    const cond = ctx.input(0);
    return [
      null,
      ctx.needs[1] ? unbroadcast(g, op.Where(g, cond, gy, 0), ctx.input(1)) : null,
      ctx.needs[2] ? unbroadcast(g, op.Where(g, cond, 0, gy), ctx.input(2)) : null,
    ];
  },
  Identity: unary((_c, gy) => gy),
  Cast: unary((c, gy) => op.Cast(c.g, gy, c.input(0).dtype)),
  Neg: unary((c, gy) => op.Neg(c.g, gy)),
  Abs: unary((c, gy) => op.Mul(c.g, gy, c.g.node1("Sign", [c.input(0)], {}, c.input(0)))),
  // d sqrt(x) = 0.5 / y
  Sqrt: unary((c, gy) => op.Div(c.g, op.Mul(c.g, gy, 0.5), c.output())),
  Reciprocal: unary((c, gy) => op.Neg(c.g, op.Mul(c.g, gy, op.Mul(c.g, c.output(), c.output())))),
  Exp: unary((c, gy) => op.Mul(c.g, gy, c.output())),
  Log: unary((c, gy) => op.Div(c.g, gy, c.input(0))),
  // d tanh = 1 - y^2
  Tanh: unary((c, gy) => op.Mul(c.g, gy, op.Sub(c.g, 1, op.Mul(c.g, c.output(), c.output())))),
  // d sigmoid = y (1 - y)
  Sigmoid: unary((c, gy) => op.Mul(c.g, gy, op.Mul(c.g, c.output(), op.Sub(c.g, 1, c.output())))),
  // d erf = 2/sqrt(pi) exp(-x^2)
  Erf: unary((c, gy) => {
    const x = c.input(0);
    return op.Mul(c.g, gy, op.Mul(c.g, op.Exp(c.g, op.Neg(c.g, op.Mul(c.g, x, x))), TWO_OVER_SQRT_PI));
  }),
  Relu: unary((c, gy) => op.Where(c.g, op.Greater(c.g, c.output(), 0), gy, 0)),
  Sin: unary((c, gy) => op.Mul(c.g, gy, op.Cos(c.g, c.input(0)))),
  Cos: unary((c, gy) => op.Neg(c.g, op.Mul(c.g, gy, op.Sin(c.g, c.input(0))))),
  Softplus: unary((c, gy) => op.Mul(c.g, gy, op.Sigmoid(c.g, c.input(0)))),
  Gelu: unary((c, gy) => {
    const { g } = c;
    const x = c.input(0);
    if (c.string("approximate", "none") === "tanh") {
      // y = 0.5 x (1 + t), t = tanh(k (x + 0.044715 x^3)); dy = 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 * 0.044715 x^2)
      const k = Math.sqrt(2 / Math.PI);
      const x2 = op.Mul(g, x, x);
      const t = op.Tanh(g, op.Mul(g, op.Mul(g, x, op.Add(g, op.Mul(g, x2, 0.044715), 1)), k));
      const dInner = op.Mul(g, op.Add(g, op.Mul(g, x2, 3 * 0.044715), 1), k);
      const d = op.Add(
        g,
        op.Mul(g, op.Add(g, t, 1), 0.5),
        op.Mul(g, op.Mul(g, op.Mul(g, x, 0.5), op.Sub(g, 1, op.Mul(g, t, t))), dInner),
      );
      return op.Mul(g, gy, d);
    }
    // dy = Phi(x) + x phi(x)
    const cdf = op.Mul(g, op.Add(g, op.Erf(g, op.Div(g, x, Math.SQRT2)), 1), 0.5);
    const pdf = op.Mul(g, op.Exp(g, op.Mul(g, op.Mul(g, x, x), -0.5)), INV_SQRT_2PI);
    return op.Mul(g, gy, op.Add(g, cdf, op.Mul(g, x, pdf)));
  }),
};
