/**
 * The contract of a gradient rule: given one forward node (its inputs, outputs and attributes) and
 * the gradients flowing into its outputs, emit the nodes computing the gradients of its inputs into
 * the same GraphBuilder. Rules are keyed by "domain::opType" (ONNX default domain = "").
 * Mirrors the vector-Jacobian products of torch.autograd (tools/autograd/derivatives.yaml).
 */
import { GraphError } from "../../errors.js";
import type { Attribute } from "../attribute.js";
import type { GraphBuilder, NodeRecord, Value } from "../builder.js";
import { constantInts } from "../ops/common.js";

/** What a rule sees of its node. */
export class RuleContext {
  constructor(
    readonly g: GraphBuilder,
    readonly node: NodeRecord,
    /** Forward inputs (undefined for omitted optional inputs); recomputed copies when checkpointed. */
    readonly inputs: readonly (Value | undefined)[],
    /** Forward outputs (recomputed copies when checkpointed). */
    readonly outputs: readonly Value[],
    /** Which inputs need a gradient (depend on a differentiated value and are float). */
    readonly needs: readonly boolean[],
  ) {}

  get op(): string {
    return this.node.opType;
  }

  /** Input `i`, which must be present. */
  input(i: number): Value {
    const v = this.inputs[i];
    if (!v) throw new GraphError(`${this.op} gradient`, `node ${this.node.name} has no input ${i}`);
    return v;
  }

  output(i = 0): Value {
    const v = this.outputs[i];
    if (!v) throw new GraphError(`${this.op} gradient`, `node ${this.node.name} has no output ${i}`);
    return v;
  }

  attribute(name: string): Attribute | undefined {
    return this.node.attributes[name];
  }

  int(name: string, fallback: number): number {
    const a = this.attribute(name);
    return a?.type === "int" ? a.value : fallback;
  }

  float(name: string, fallback: number): number {
    const a = this.attribute(name);
    return a?.type === "float" ? a.value : fallback;
  }

  string(name: string, fallback: string): string {
    const a = this.attribute(name);
    return a?.type === "string" ? a.value : fallback;
  }

  ints(name: string): number[] | undefined {
    const a = this.attribute(name);
    return a?.type === "ints" ? [...a.value] : undefined;
  }

  /** Input `i` as a build-time int list (axes, shapes, starts); undefined when absent. */
  constInts(i: number): number[] | undefined {
    const v = this.inputs[i];
    if (!v) return undefined;
    const ints = constantInts(v);
    if (ints === null) {
      throw new GraphError(
        `${this.op} gradient`,
        `input ${i} (${v.name}) of ${this.node.name} must be a constant to differentiate this node`,
        { hint: "build the forward graph with static axes/shapes/starts" },
      );
    }
    return ints;
  }

  /** A GraphError naming this node. */
  error(detail: string, hint?: string): GraphError {
    return new GraphError(
      `${this.op} gradient`,
      `${this.node.name}: ${detail}`,
      hint === undefined ? {} : { hint },
    );
  }
}

/**
 * A vector-Jacobian product: the gradient of each input (null/undefined = none or not needed) given
 * the gradient of each output (null = the output does not reach the loss).
 */
export type GradientRule = (ctx: RuleContext, gradOutputs: readonly (Value | null)[]) => (Value | null)[];

/** Rule key of a node: "domain::opType". */
export const ruleKey = (domain: string, opType: string): string => `${domain}::${opType}`;
