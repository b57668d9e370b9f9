/**
 * GroupNorm (torch.nn.GroupNorm): `weight` and `bias` [num_channels] when affine. Lowered as chosen
 * by the scope's `groupNorm` option (see GraphBuildOptions).
 */
import { GraphError } from "../errors.js";
import type { Value } from "../graph/builder.js";
import * as op from "../graph/ops/index.js";
import { Module } from "./module.js";
import type { WeightScope } from "./weights.js";

export interface GroupNormOptions {
  readonly numGroups: number;
  readonly numChannels: number;
  /** Default 1e-5 (PyTorch default; diffusers blocks usually pass 1e-6 or 1e-5 from config). */
  readonly eps?: number;
  /** Has weight and bias (default true). */
  readonly affine?: boolean;
}

export class GroupNorm extends Module {
  readonly weight: Value | null;
  readonly bias: Value | null;

  constructor(
    w: WeightScope,
    readonly options: GroupNormOptions,
  ) {
    super(w);
    if (options.numChannels % options.numGroups !== 0) {
      throw new GraphError(
        "GroupNorm",
        `${w.path}: num_channels ${options.numChannels} must divide by num_groups ${options.numGroups}`,
      );
    }
    const affine = options.affine ?? true;
    this.weight = affine ? w.param("weight", [options.numChannels]) : null;
    this.bias = affine ? w.param("bias", [options.numChannels]) : null;
  }

  /** x [N, C, ...] -> same shape. */
  forward(x: Value): Value {
    const g = this.graph;
    const options = { numGroups: this.options.numGroups, epsilon: this.options.eps ?? 1e-5 };
    return this.scoped(() => {
      if (this.w.options.groupNorm === "onnx") {
        const c = this.options.numChannels;
        const scale = this.weight ?? g.constantOf(x.dtype, [c], Array<number>(c).fill(1));
        const bias = this.bias ?? g.constantOf(x.dtype, [c], Array<number>(c).fill(0));
        return op.GroupNormalization(g, x, scale, bias, options);
      }
      return op.GroupNormalizationComposite(g, x, this.weight, this.bias, options);
    });
  }
}
