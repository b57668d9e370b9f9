/**
 * Activations by the names diffusers' `get_activation` accepts (models/activations.py):
 * silu/swish, mish, gelu (erf), relu. Any other name is refused with an UnsupportedError.
 */
import { UnsupportedError } from "../../errors.js";
import type { GraphBuilder, Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import { activation } from "../../nn/activations.js";

export function diffusersActivation(g: GraphBuilder, x: Value, name: string): Value {
  switch (name) {
    case "silu":
    case "swish":
    case "gelu":
      return activation(g, x, name);
    case "relu":
      return op.Relu(g, x);
    case "mish":
      return op.Mul(g, x, op.Tanh(g, op.Softplus(g, x)));
    default:
      throw new UnsupportedError(`activation "${name}"`, {
        hint: "diffusers get_activation knows silu, swish, mish, gelu and relu",
      });
  }
}
