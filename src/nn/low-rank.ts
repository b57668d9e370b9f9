/**
 * Low-rank branches beside a layer's weight, for LoRAs applied *unfused* with a live scale: the layer
 * computes y = W x + b + Σ_i s_i · (alpha_i / rank_i) · up_i(down_i(x)), where s_i is a graph input
 * (`lora_scale_<file>`, float32 [1]) the runner feeds on every call. The weights stay the base model's,
 * so one compiled model serves every scale (the fused fast path bakes the scale into W instead:
 * src/weights/lora/store.ts). The maths is diffusers 0.26.3's unfused LoRA layers
 * (`LoRACompatibleLinear` / `LoRACompatibleConv` with `lora_layer`): for a Linear, up(down(x)) with
 * down [r, in], up [out, r]; for a conv ("LoCon"), down is a conv with the layer's kernel, stride,
 * padding and dilation ([r, in, kh, kw]) and up a 1x1 conv ([out, r, 1, 1]).
 *
 * A module asks `GraphBuildOptions.lowRank` for its branches by its own path; the factors are bound as
 * parameters `<module>.<branch.name>.down` / `.up` of the module's scope (the LoRA store puts them there).
 */
import type { GraphBuilder, Value } from "../graph/builder.js";
import * as op from "../graph/ops/index.js";
import { tensor } from "../tensor.js";
import type { WeightScope } from "./weights.js";

/** One LoRA on one layer. */
export interface LowRankBranch {
  /** Parameter-name prefix in the layer's scope: `<name>.down`, `<name>.up`. */
  readonly name: string;
  readonly rank: number;
  /** alpha / rank (1 without alpha); the live scale multiplies it. */
  readonly multiplier: number;
  /** The graph input holding this branch's live scale (one per LoRA file). */
  readonly scaleInput: string;
}

/** The branches of every layer of a model (GraphBuildOptions.lowRank). */
export interface LowRankBranches {
  /** The branches of the layer at `path` (`down_blocks.0.attentions.0...to_q`); none: []. */
  forModule(path: string): readonly LowRankBranch[];
  /** The current value of a live scale input (read on every run). */
  scaleOf(input: string): number;
}

/** The live graph input `name` (float32 [1]), fed with `branches.scaleOf(name)` on every run. */
function scaleInput(g: GraphBuilder, name: string, branches: LowRankBranches): Value {
  return g.liveInput(name, "float32", [1], () =>
    tensor("float32", [1], new Float32Array([branches.scaleOf(name)])),
  );
}

/** s · multiplier as a [1] value of `like`'s dtype (s the live scale input, always float32). */
function branchScale(g: GraphBuilder, branch: BoundBranch, like: Value): Value {
  const input = scaleInput(g, branch.branch.scaleInput, branch.from);
  const s = op.Mul(g, input, g.scalar(branch.branch.multiplier, "float32"));
  return like.dtype === "float32" ? s : op.Cast(g, s, like.dtype);
}

/** A branch with its bound factors and the branch set its scale comes from. */
interface BoundBranch {
  readonly branch: LowRankBranch;
  readonly from: LowRankBranches;
  readonly down: Value;
  readonly up: Value;
}

/** Bound factors of a Linear's branches: down^T [in, r], up^T [r, out]. */
export type LinearBranch = BoundBranch;

/** Binds the factors of the Linear at `w` (in -> out); [] without branches. */
export function linearBranches(w: WeightScope, inFeatures: number, outFeatures: number): LinearBranch[] {
  const from = w.options.lowRank;
  if (from === undefined) return [];
  return from.forModule(w.path).map((branch) => ({
    branch,
    from,
    down: w.param(`${branch.name}.down`, [branch.rank, inFeatures], { transpose: true, allowReshape: true }),
    up: w.param(`${branch.name}.up`, [outFeatures, branch.rank], { transpose: true, allowReshape: true }),
  }));
}

/** y + Σ s·m·(x down^T) up^T. */
export function addLinearBranches(
  g: GraphBuilder,
  x: Value,
  y: Value,
  branches: readonly LinearBranch[],
): Value {
  let out = y;
  for (const b of branches) {
    const delta = op.MatMul(g, op.MatMul(g, x, b.down), b.up);
    out = op.Add(g, out, op.Mul(g, delta, branchScale(g, b, delta)));
  }
  return out;
}

/** Bound factors of a conv's branches: down [r, in, kh, kw], up [out, r, 1, 1]. */
export type ConvBranch = BoundBranch;

/** Binds the factors of the conv at `w`; [] without branches. */
export function convBranches(
  w: WeightScope,
  inChannels: number,
  outChannels: number,
  kernel: readonly [number, number],
): ConvBranch[] {
  const from = w.options.lowRank;
  if (from === undefined) return [];
  return from.forModule(w.path).map((branch) => ({
    branch,
    from,
    down: w.param(`${branch.name}.down`, [branch.rank, inChannels, kernel[0], kernel[1]], {
      allowReshape: true,
    }),
    up: w.param(`${branch.name}.up`, [outChannels, branch.rank, 1, 1], { allowReshape: true }),
  }));
}

/** Conv attributes the down conv shares with its layer. */
export interface ConvGeometry {
  readonly strides: readonly number[];
  readonly pads: readonly number[];
  readonly dilations?: readonly number[];
}

/** y + Σ s·m·up(down(x)), the down conv with the layer's geometry. */
export function addConvBranches(
  g: GraphBuilder,
  x: Value,
  y: Value,
  branches: readonly ConvBranch[],
  geometry: ConvGeometry,
): Value {
  let out = y;
  for (const b of branches) {
    const down = op.Conv(g, x, b.down, null, {
      strides: [...geometry.strides],
      pads: [...geometry.pads],
      ...(geometry.dilations ? { dilations: [...geometry.dilations] } : {}),
    });
    const delta = op.Conv(g, down, b.up, null, {});
    out = op.Add(g, out, op.Mul(g, delta, branchScale(g, b, delta)));
  }
  return out;
}
