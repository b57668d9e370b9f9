/**
 * Reverse-mode automatic differentiation over a GraphBuilder: from output values (a scalar loss, or
 * several outputs each with an upstream gradient) back to chosen values (parameters, inputs). The
 * backward nodes are emitted into the same builder, so one ONNX graph computes the forward pass,
 * the loss and every gradient, and runs on ONNX Runtime like any other graph. As torch.autograd:
 * each node's vector-Jacobian product comes from its op's rule (./rules-*.ts), gradients reaching a
 * value through several consumers are summed, and only nodes on a path from a differentiated value
 * to an output get backward nodes (a frozen weight costs no weight-gradient computation).
 *
 * Recompute (activation checkpointing, torch.utils.checkpoint): nodes given a segment name by
 * `options.checkpoint` are emitted a second time just before the first backward node of their segment,
 * and the segment's rules read those copies, so the forward values inside a segment are dead once the
 * forward pass has used them and ONNX Runtime's memory planner frees them; only the values entering
 * a segment live until its backward. The copies' activation inputs are gated by `x + 0·Σ(upstream
 * gradient)`: the recomputation cannot start before the gradient reaches the segment, and ORT's common
 * subexpression elimination cannot merge the copies back into the originals.
 */
import { GraphError, InvalidArgumentError } from "../../errors.js";
import type { GraphBuilder, NodeRecord, Value } from "../builder.js";
import { isFloatDType } from "../dtype.js";
import * as op from "../ops/index.js";
import { shapeStr } from "../shape.js";
import { filledLike, sameShape, sumAll, zerosLike } from "./helpers.js";
import { type GradientRule, RuleContext, ruleKey } from "./rule.js";
import { ATTENTION_RULES } from "./rules-attention.js";
import { ELEMENTWISE_RULES } from "./rules-elementwise.js";
import { LINEAR_RULES } from "./rules-linear.js";
import { MOVEMENT_RULES } from "./rules-movement.js";
import { NORM_RULES } from "./rules-norm.js";

const RULES = new Map<string, GradientRule>();
for (const table of [ELEMENTWISE_RULES, LINEAR_RULES, MOVEMENT_RULES, NORM_RULES])
  for (const [name, rule] of Object.entries(table)) RULES.set(ruleKey("", name), rule);
for (const [name, rule] of Object.entries(ATTENTION_RULES)) RULES.set(ruleKey("com.microsoft", name), rule);

/** Op types (domain-qualified for contrib ops) that have a gradient rule. */
export function differentiableOps(): string[] {
  return [...RULES.keys()].map((k) => (k.startsWith("::") ? k.slice(2) : k.replace("::", ".")));
}

/** An output to differentiate and the gradient flowing into it (default: ones, e.g. d loss / d loss = 1). */
export interface Seed {
  readonly value: Value;
  /** Upstream gradient of the value's shape; omitted = 1 everywhere (a scalar loss). */
  readonly grad?: Value;
}

export interface BackwardOptions {
  /**
   * (optional) recompute (activation checkpointing): nodes for which this returns a segment name are
   * re-emitted once per segment just before that segment's backward, and the segment's rules read the
   * recomputed values (see the module comment; `checkpointByScope` makes one segment per module).
   */
  readonly checkpoint?: (node: NodeRecord) => string | undefined;
  /** (optional, default "grad") name scope of the backward nodes. */
  readonly scope?: string;
}

export interface BackwardResult {
  /** Gradient of each requested value, in request order (exact zeros when it does not reach an output). */
  readonly grads: readonly Value[];
  /** Names of the requested values that no output depends on. */
  readonly unreachable: readonly string[];
  /** Backward nodes emitted. */
  readonly nodes: number;
}

/**
 * Emits the gradients of `seeds` (sum over seeds of <grad, d value>) with respect to each value of
 * `wrt` into `g`. Throws a GraphError naming the op when a node on the path has no gradient rule.
 */
export function backward(
  g: GraphBuilder,
  seeds: readonly Seed[],
  wrt: readonly Value[],
  options: BackwardOptions = {},
): BackwardResult {
  if (seeds.length === 0) throw new InvalidArgumentError("seeds", "at least one output to differentiate", []);
  for (const s of seeds) {
    if (!isFloatDType(s.value.dtype))
      throw new GraphError(
        "backward",
        `${s.value.name} is ${s.value.dtype}; only float outputs have gradients`,
      );
    if (s.grad && !sameShape(s.grad.shape, s.value.shape)) {
      throw new GraphError(
        "backward",
        `upstream gradient ${s.grad.name} ${shapeStr(s.grad.shape)} must have the shape of ${s.value.name} ${shapeStr(s.value.shape)}`,
      );
    }
  }
  const nodesBefore = g.nodes.length;
  const forward = g.nodes.slice();
  return g.withScope(options.scope ?? "grad", () => {
    // 1. values that depend on a differentiated value (forward sweep)
    const live = new Set<string>(wrt.map((v) => v.name));
    for (const n of forward) {
      if (!n.inputs.some((name) => live.has(name))) continue;
      for (const out of n.outputs) {
        const v = g.value(out);
        if (v && isFloatDType(v.dtype)) live.add(out);
      }
    }
    // 2. values the outputs depend on (backward sweep)
    const needed = new Set<string>(seeds.map((s) => s.value.name));
    const active: NodeRecord[] = [];
    for (let i = forward.length - 1; i >= 0; i--) {
      const n = forward[i];
      if (!n || !n.outputs.some((o) => needed.has(o) && live.has(o))) continue;
      active.push(n);
      for (const name of n.inputs) if (name !== "") needed.add(name);
    }
    // 3. vector-Jacobian products, last node first
    const contributions = new Map<string, Value[]>();
    const add = (name: string, grad: Value): void => {
      const list = contributions.get(name);
      if (list) list.push(grad);
      else contributions.set(name, [grad]);
    };
    for (const s of seeds) add(s.value.name, s.grad ?? filledLike(g, s.value, 1));
    const segmentOf = new Map<NodeRecord, string>();
    if (options.checkpoint) {
      for (const n of forward) {
        const segment = options.checkpoint(n);
        if (segment !== undefined) segmentOf.set(n, segment);
      }
    }
    const recomputed = new Map<string, Map<string, Value>>();
    for (const n of active) {
      const rule = RULES.get(ruleKey(n.domain, n.opType));
      const originals = n.outputs.map((name) => mustValue(g, name));
      const gradOutputs = originals.map((v) => {
        const parts = contributions.get(v.name);
        return parts ? sumAll(g, parts) : null;
      });
      if (gradOutputs.every((x) => x === null)) continue;
      const segment = segmentOf.get(n);
      let copies: Map<string, Value> | undefined;
      if (segment !== undefined) {
        copies = recomputed.get(segment);
        if (copies === undefined) {
          const gate = gradOutputs.find((x): x is Value => x !== null) as Value;
          copies = recompute(g, forward, (m) => segmentOf.get(m) === segment, gate);
          recomputed.set(segment, copies);
        }
      }
      const seen = (v: Value): Value => copies?.get(v.name) ?? v;
      const outputs = originals.map(seen);
      if (!rule) {
        throw new GraphError(
          "backward",
          `no gradient rule for ${n.domain === "" ? "" : `${n.domain}.`}${n.opType} (node ${n.name})`,
          { hint: `differentiable ops: ${differentiableOps().join(", ")}` },
        );
      }
      const inputs = n.inputs.map((name) => (name === "" ? undefined : mustValue(g, name)));
      const needs = inputs.map((v) => v !== undefined && live.has(v.name) && isFloatDType(v.dtype));
      const ctx = new RuleContext(
        g,
        n,
        inputs.map((v) => v && seen(v)),
        outputs,
        needs,
      );
      const grads = rule(ctx, gradOutputs);
      inputs.forEach((v, i) => {
        const grad = grads[i];
        if (!v || !needs[i] || !grad) return;
        if (!sameShape(grad.shape, v.shape)) {
          throw new GraphError(
            "backward",
            `internal: the ${n.opType} rule gave ${shapeStr(grad.shape)} for ${v.name} ${shapeStr(v.shape)} (node ${n.name})`,
          );
        }
        add(v.name, grad);
      });
    }
    // 4. the requested gradients
    const unreachable: string[] = [];
    const grads = wrt.map((v) => {
      const parts = contributions.get(v.name);
      if (parts) return sumAll(g, parts);
      unreachable.push(v.name);
      return zerosLike(g, v);
    });
    return { grads, unreachable, nodes: g.nodes.length - nodesBefore };
  });
}

/**
 * Emits the nodes `inSegment` accepts a second time, in forward order: inputs made inside the segment
 * come from the copies, float activations from outside it pass through `x + 0·Σ gate` (see the module
 * comment). Returns original value name -> copy.
 */
function recompute(
  g: GraphBuilder,
  forward: readonly NodeRecord[],
  inSegment: (n: NodeRecord) => boolean,
  gate: Value,
): Map<string, Value> {
  const copies = new Map<string, Value>();
  const gated = new Map<string, Value>();
  let zero: Value | undefined;
  const zeroOf = (dtype: Value["dtype"]): Value => {
    if (zero === undefined) {
      const total =
        gate.rank === 0 ? gate : op.ReduceSum(g, gate, [...Array(gate.rank).keys()], { keepdims: false });
      zero = op.Mul(g, total, g.scalar(0, gate.dtype));
    }
    return zero.dtype === dtype ? zero : op.Cast(g, zero, dtype);
  };
  g.withScope("recompute", () => {
    for (const n of forward) {
      if (!inSegment(n)) continue;
      const inputs = n.inputs.map((name) => {
        if (name === "") return undefined;
        const copy = copies.get(name);
        if (copy) return copy;
        const v = mustValue(g, name);
        if (v.kind !== "node" || !isFloatDType(v.dtype)) return v;
        let gatedValue = gated.get(name);
        if (gatedValue === undefined) {
          gatedValue = op.Add(g, v, zeroOf(v.dtype));
          gated.set(name, gatedValue);
        }
        return gatedValue;
      });
      const outputs = g.node(n.opType, inputs, n.attributes, {
        ...(n.domain === "" ? {} : { domain: n.domain }),
        outputs: n.outputs.map((name) => {
          const v = mustValue(g, name);
          return { dtype: v.dtype, shape: v.shape };
        }),
      });
      n.outputs.forEach((name, i) => {
        const copy = outputs[i];
        if (copy) copies.set(name, copy);
      });
    }
  });
  return copies;
}

/**
 * A `checkpoint` option with one recompute segment per module: a node belongs to the first of
 * `modules` (diffusers module paths such as "down_blocks.1", "mid_block") its name's scope starts with.
 */
export function checkpointByScope(modules: readonly string[]): (node: NodeRecord) => string | undefined {
  return (node) => {
    const slash = node.name.lastIndexOf("/");
    const scope = slash < 0 ? "" : node.name.slice(0, slash);
    return modules.find((m) => scope === m || scope.startsWith(`${m}.`) || scope.startsWith(`${m}/`));
  };
}

/** Gradients of a scalar (or any-shaped, summed) loss with respect to each value of `wrt`. */
export function gradients(
  g: GraphBuilder,
  loss: Value,
  wrt: readonly Value[],
  options: BackwardOptions = {},
): BackwardResult {
  return backward(g, [{ value: loss }], wrt, options);
}

function mustValue(g: GraphBuilder, name: string): Value {
  const v = g.value(name);
  if (!v) throw new GraphError("backward", `internal: value ${name} is not in the graph`);
  return v;
}
