/**
 * Module: a small class that binds its weights at construction (through a WeightScope whose path is
 * the checkpoint key prefix) and emits graph nodes in `forward`. Nothing runs; building is pure and
 * synchronous. Node names are prefixed with the module path so graph, checkpoint and code share names.
 */
import type { GraphBuilder, Value } from "../graph/builder.js";
import type { AttentionImplementation } from "../graph/ops/attention.js";
import type { LowRankBranches } from "./low-rank.js";
import type { WeightScope } from "./weights.js";

/** Context given to a key/value transform: which attention module and what it attends to. */
export interface KeyValueContext {
  readonly graph: GraphBuilder;
  /** Weight path of the Attention module ("down_blocks.0.attentions.0.transformer_blocks.0.attn1"). */
  readonly path: string;
  /** True when keys/values come from the hidden states themselves (no encoder hidden states). */
  readonly isSelfAttention: boolean;
  readonly heads: number;
}

/** Projected keys and values, [batch, length, heads * head_dim]. */
export interface KeyValue {
  readonly key: Value;
  readonly value: Value;
}

/**
 * Replaces the keys/values an Attention module attends to (after to_k/to_v, before attention).
 * Return the input unchanged to leave a module alone. Cross-frame attention is one such transform.
 */
export type KeyValueTransform = (kv: KeyValue, context: KeyValueContext) => KeyValue;

/**
 * Extra key/value sources an Attention module attends to besides its own, each with its own softmax
 * over the same query; the results are added to the attention output before `to_out` (IP-Adapter's
 * decoupled cross-attention). `queryWidth` is heads * head_dim, the width the keys/values must have.
 * Return [] to leave a module alone.
 */
export type ExtraKeyValues = (context: KeyValueContext, queryWidth: number) => readonly KeyValue[];

/** How modules lower to ONNX; fixed when the graph is built. */
export interface GraphBuildOptions {
  /** "mha": com.microsoft MultiHeadAttention (default); "matmul": plain ONNX ops (no contrib ops). */
  readonly attention?: AttentionImplementation;
  /**
   * "instance-norm" (default): Reshape + InstanceNormalization + affine, measured 2.4x faster than
   * ORT 1.30 CPU's GroupNormalization-21 on [2, 320, 64, 64]; "onnx": the GroupNormalization-21 op.
   */
  readonly groupNorm?: "instance-norm" | "onnx";
  /** Applied in every Attention module (see KeyValueTransform). */
  readonly keyValueTransform?: KeyValueTransform;
  /** Asked by every Attention module (see ExtraKeyValues). */
  readonly extraKeyValues?: ExtraKeyValues;
  /** Asked by every Linear and Conv2d: unfused LoRA branches with live scales (./low-rank.ts). */
  readonly lowRank?: LowRankBranches;
}

export abstract class Module {
  constructor(protected readonly w: WeightScope) {}

  get graph(): GraphBuilder {
    return this.w.graph;
  }

  /** The checkpoint key prefix of this module ("down_blocks.0.resnets.1"). */
  get path(): string {
    return this.w.path;
  }

  /** Runs `fn` with node names scoped by this module's path. */
  protected scoped<T>(fn: () => T): T {
    return this.w.graph.withScope(this.w.path, fn);
  }
}

/** Builds `count` children at `w.at(0)`, `w.at(1)`, ... (PyTorch ModuleList key layout). */
export function moduleList<M>(
  w: WeightScope,
  count: number,
  make: (w: WeightScope, index: number) => M,
): M[] {
  return Array.from({ length: count }, (_, i) => make(w.at(i), i));
}
