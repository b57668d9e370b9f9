/**
 * Linear (torch.nn.Linear): y = x W^T + b with weight [out_features, in_features] in the checkpoint.
 * The initializer holds W^T ([in, out]) so the graph is MatMul + Add: on ORT 1.30 CPU this measured
 * as fast as Gemm(transB) or faster (Gemm needs 2-D input and two Reshapes: 63 vs 147 GFLOP/s on
 * [2, 4096, 320] x [320, 320]) and loads faster than MatMul(x, Transpose(W)), which ORT constant-folds
 * at session creation (124 vs 371 ms for 4 x [3072, 768]).
 */
import type { Value } from "../graph/builder.js";
import * as op from "../graph/ops/index.js";
import { type LinearBranch, addLinearBranches, linearBranches } from "./low-rank.js";
import { Module } from "./module.js";
import type { WeightScope } from "./weights.js";

export interface LinearOptions {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** Has a `bias` weight (default true). */
  readonly bias?: boolean;
  /** Also accept a stored [out, in, 1, 1] (1x1 conv) weight (default false). */
  readonly allowReshape?: boolean;
}

export class Linear extends Module {
  /** W^T, shape [in_features, out_features]; initializer name `<path>.weight`. */
  readonly weight: Value;
  readonly bias: Value | null;
  /** Unfused LoRA branches with live scales (GraphBuildOptions.lowRank); usually none. */
  private readonly branches: readonly LinearBranch[];

  constructor(
    w: WeightScope,
    readonly options: LinearOptions,
  ) {
    super(w);
    this.weight = w.param("weight", [options.outFeatures, options.inFeatures], {
      transpose: true,
      allowReshape: options.allowReshape ?? false,
    });
    this.bias = options.bias === false ? null : w.param("bias", [options.outFeatures]);
    this.branches = linearBranches(w, options.inFeatures, options.outFeatures);
  }

  /** x [..., in_features] -> [..., out_features]. */
  forward(x: Value): Value {
    return this.scoped(() => {
      const y = op.MatMul(this.graph, x, this.weight);
      const out = this.bias ? op.Add(this.graph, y, this.bias) : y;
      return this.branches.length === 0 ? out : addLinearBranches(this.graph, x, out, this.branches);
    });
  }
}
