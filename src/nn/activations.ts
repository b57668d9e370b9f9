/**
 * Activations. Functional forms (torch.nn.functional style) are composed from basic ONNX ops, which
 * every execution provider has and ORT's optimizer fuses (Erf pattern -> Gelu, tanh pattern ->
 * FastGelu). The classes mirror diffusers `models/activations.py`: GELU, GEGLU and ApproximateGELU
 * own a `proj` Linear, so their keys are `<path>.proj.weight` / `.proj.bias`.
 */
import type { GraphBuilder, Value } from "../graph/builder.js";
import * as op from "../graph/ops/index.js";
import { GraphError } from "../errors.js";
import { Linear } from "./linear.js";
import { Module } from "./module.js";
import type { WeightScope } from "./weights.js";

/** x * sigmoid(x). */
export function silu(g: GraphBuilder, x: Value): Value {
  return op.Mul(g, x, op.Sigmoid(g, x));
}

/** GELU: "none" = 0.5 x (1 + erf(x / sqrt 2)); "tanh" = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
export function gelu(g: GraphBuilder, x: Value, options: { approximate?: "none" | "tanh" } = {}): Value {
  if (options.approximate === "tanh") {
    const inner = op.Mul(
      g,
      op.Add(g, x, op.Mul(g, op.Mul(g, op.Mul(g, x, x), x), 0.044715)),
      Math.sqrt(2 / Math.PI),
    );
    return op.Mul(g, op.Mul(g, x, 0.5), op.Add(g, op.Tanh(g, inner), 1));
  }
  return op.Mul(g, op.Mul(g, x, 0.5), op.Add(g, op.Erf(g, op.Div(g, x, Math.SQRT2)), 1));
}

/** x * sigmoid(1.702 x) (CLIP's "quick_gelu"). */
export function quickGelu(g: GraphBuilder, x: Value): Value {
  return op.Mul(g, x, op.Sigmoid(g, op.Mul(g, x, 1.702)));
}

/** Names of activation functions as diffusers/transformers configs spell them. */
export type ActivationName = "silu" | "swish" | "gelu" | "gelu_tanh" | "quick_gelu";

/** Applies an activation chosen by its config name (`act_fn`, `hidden_act`). */
export function activation(g: GraphBuilder, x: Value, name: ActivationName): Value {
  switch (name) {
    case "silu":
    case "swish":
      return silu(g, x);
    case "gelu":
      return gelu(g, x);
    case "gelu_tanh":
      return gelu(g, x, { approximate: "tanh" });
    case "quick_gelu":
      return quickGelu(g, x);
    default:
      throw new GraphError("activation", `unknown activation "${String(name)}"`, {
        hint: "use silu, swish, gelu, gelu_tanh or quick_gelu",
      });
  }
}

export interface ProjectedActivationOptions {
  readonly dimIn: number;
  readonly dimOut: number;
  /** Linear bias (default true). */
  readonly bias?: boolean;
}

/** diffusers GELU: gelu(proj(x)), with `approximate` "none" (default) or "tanh". */
export class GELU extends Module {
  readonly proj: Linear;
  constructor(
    w: WeightScope,
    readonly options: ProjectedActivationOptions & { readonly approximate?: "none" | "tanh" },
  ) {
    super(w);
    this.proj = new Linear(w.at("proj"), {
      inFeatures: options.dimIn,
      outFeatures: options.dimOut,
      bias: options.bias ?? true,
    });
  }
  forward(x: Value): Value {
    const approximate = this.options.approximate ?? "none";
    return this.scoped(() => gelu(this.graph, this.proj.forward(x), { approximate }));
  }
}

/** diffusers GEGLU: proj to 2 * dim_out, split into hidden and gate, hidden * gelu(gate). */
export class GEGLU extends Module {
  readonly proj: Linear;
  constructor(
    w: WeightScope,
    readonly options: ProjectedActivationOptions,
  ) {
    super(w);
    this.proj = new Linear(w.at("proj"), {
      inFeatures: options.dimIn,
      outFeatures: options.dimOut * 2,
      bias: options.bias ?? true,
    });
  }
  forward(x: Value): Value {
    const g = this.graph;
    return this.scoped(() => {
      const [hidden, gate] = op.Split(g, this.proj.forward(x), -1, { count: 2 });
      if (!hidden || !gate) throw new GraphError("GEGLU", "internal: Split returned fewer than 2 outputs");
      return op.Mul(g, hidden, gelu(g, gate));
    });
  }
}

/** diffusers ApproximateGELU: x' = proj(x); x' * sigmoid(1.702 x'). */
export class ApproximateGELU extends Module {
  readonly proj: Linear;
  constructor(
    w: WeightScope,
    readonly options: ProjectedActivationOptions,
  ) {
    super(w);
    this.proj = new Linear(w.at("proj"), {
      inFeatures: options.dimIn,
      outFeatures: options.dimOut,
      bias: options.bias ?? true,
    });
  }
  forward(x: Value): Value {
    return this.scoped(() => quickGelu(this.graph, this.proj.forward(x)));
  }
}
