/**
 * LayerNorm (torch.nn.LayerNorm) over the trailing `normalizedShape` dims: `weight` and `bias`
 * of that shape when elementwise-affine.
 */
import type { Value } from "../graph/builder.js";
import * as op from "../graph/ops/index.js";
import { Module } from "./module.js";
import type { WeightScope } from "./weights.js";

export interface LayerNormOptions {
  /** Size of the last dim, or the trailing dims. */
  readonly normalizedShape: number | readonly number[];
  /** Default 1e-5. */
  readonly eps?: number;
  /** Has weight (and bias) (default true). */
  readonly elementwiseAffine?: boolean;
  /** Has a bias when affine (default true). */
  readonly bias?: boolean;
}

export class LayerNorm extends Module {
  readonly weight: Value | null;
  readonly bias: Value | null;
  private readonly shape: readonly number[];

  constructor(
    w: WeightScope,
    readonly options: LayerNormOptions,
  ) {
    super(w);
    this.shape =
      typeof options.normalizedShape === "number" ? [options.normalizedShape] : [...options.normalizedShape];
    const affine = options.elementwiseAffine ?? true;
    this.weight = affine ? w.param("weight", this.shape) : null;
    this.bias = affine && options.bias !== false ? w.param("bias", this.shape) : null;
  }

  /** x [..., *normalizedShape] -> same shape. */
  forward(x: Value): Value {
    const g = this.graph;
    return this.scoped(() => {
      const n = this.shape.reduce((a, b) => a * b, 1);
      const scale = this.weight ?? g.constantOf(x.dtype, this.shape, Array<number>(n).fill(1));
      return op.LayerNormalization(g, x, scale, this.bias, {
        axis: -this.shape.length,
        epsilon: this.options.eps ?? 1e-5,
      });
    });
  }
}
