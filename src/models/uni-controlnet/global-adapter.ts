/**
 * Uni-ControlNet's GlobalAdapter as a graph-building module, as ShihaoZhaoZSH/Uni-ControlNet
 * `models/global_adapter.py`: LayerNorm(in) -> FF1 (GEGLU, widths below) ->
 * LayerNorm(in*mult1) -> FF2 -> reshape `'b (n d) -> b n d'` with n = channel_mult[-1] tokens of width
 * in_dim. Keys verbatim: `norm1`, `ff1.net.0.proj`, `ff1.net.2`, `norm2`, `ff2.net.0.proj`, `ff2.net.2`.
 *
 * ldm FeedForward(dim, dim_out, mult, glu=True): inner = dim * mult, GEGLU `net.0.proj` dim -> 2*inner
 * (value half first, erf gelu on the gate half), dropout (off at inference), Linear `net.2` inner ->
 * dim_out. FF1: dim in, dim_out in*m1, mult 2*m1; FF2: dim in*m1, dim_out in*m2, mult 2*m2/m1.
 */
import type { Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import { GEGLU } from "../../nn/activations.js";
import { LayerNorm } from "../../nn/layer-norm.js";
import { Linear } from "../../nn/linear.js";
import { Module } from "../../nn/module.js";
import type { WeightScope } from "../../nn/weights.js";
import type { GlobalAdapterConfig } from "./config.js";

/** ldm FeedForward with GEGLU and its own output width: keys net.0.proj, net.2. */
class GluFeedForward extends Module {
  readonly net: readonly [GEGLU, Linear];
  constructor(w: WeightScope, dim: number, dimOut: number, inner: number) {
    super(w);
    this.net = [
      new GEGLU(w.at("net").at(0), { dimIn: dim, dimOut: inner }),
      new Linear(w.at("net").at(2), { inFeatures: inner, outFeatures: dimOut }),
    ];
  }
  forward(x: Value): Value {
    return this.scoped(() => this.net[1].forward(this.net[0].forward(x)));
  }
}

export class GlobalAdapter extends Module {
  readonly norm1: LayerNorm;
  readonly ff1: GluFeedForward;
  readonly norm2: LayerNorm;
  readonly ff2: GluFeedForward;
  /** Tokens appended to the text context (channel_mult[-1]). */
  readonly numTokens: number;

  constructor(
    /** The scope at `global_adapter`. */
    w: WeightScope,
    readonly config: GlobalAdapterConfig,
  ) {
    super(w);
    const d = config.in_dim;
    const [m1 = 2, m2 = 4] = config.channel_mult;
    const out1 = d * m1;
    const out2 = d * m2;
    this.numTokens = m2;
    this.norm1 = new LayerNorm(w.at("norm1"), { normalizedShape: d });
    this.ff1 = new GluFeedForward(w.at("ff1"), d, out1, d * m1 * 2);
    this.norm2 = new LayerNorm(w.at("norm2"), { normalizedShape: out1 });
    this.ff2 = new GluFeedForward(w.at("ff2"), out1, out2, out1 * Math.floor((m2 * 2) / m1));
  }

  /** [B, in_dim] -> [B, K, in_dim] (unscaled: the caller multiplies by global_strength). */
  forward(embedding: Value): Value {
    return this.scoped(() => {
      const x = this.ff2.forward(this.norm2.forward(this.ff1.forward(this.norm1.forward(embedding))));
      return op.Reshape(this.graph, x, [-1, this.numTokens, this.config.in_dim]);
    });
  }
}
