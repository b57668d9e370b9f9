/**
 * Mapping pre-training of Neural Layered Atlases (ykasten/layered-neural-atlases
 * unwrap_utils.pre_train_mapping): before the main loop each mapping net is fitted to
 * uv ≈ uv_mapping_scale·(x, y), loss = mean ||scale·xy − M(x, y, t_f)||₂ (not squared) over random
 * integer pixels, one Adam step per frame per iteration, with its own Adam(lr 1e-4). A net with
 * per-frame affine maps is fitted to scale·(mapped x, y) instead, its maps fixed (their gradient is 0).
 */
import type { GraphBuilder, Value } from "../graph/builder.js";
import * as op from "../graph/ops/index.js";
import { gradients } from "../graph/autodiff/index.js";
import { tensor, type HostTensor } from "../tensor.js";
import { type ImlpSpec, frameTransform, imlp, parameterShapes, stopGradient } from "./networks.js";

/** Graph: inputs `xyt` [S, 3] + the net's parameters; outputs `loss` and `grad.<param>`. */
export function buildPretrainGraph(
  g: GraphBuilder,
  spec: ImlpSpec,
  prefix: string,
  samples: number,
  uvMappingScale: number,
): string[] {
  const shapes = parameterShapes(prefix, spec);
  const params = new Map<string, Value>(shapes.map(([n, s]) => [n, g.input(n, "float32", s)]));
  const xyt = g.input("xyt", "float32", [samples, 3]);
  // per-frame affine maps (not in the release) stay as they start: the net learns uv ≈ scale·(the
  // frame's canonical x, y), the coordinates the maps give
  const table = spec.frameAffine ? params.get(`${prefix}.frames`) : undefined;
  const fixed = new Map(params);
  if (table) fixed.set(`${prefix}.frames`, stopGradient(g, table));
  const uv = imlp(g, spec, prefix, fixed, xyt).output;
  const canonical =
    spec.frameAffine === undefined ? xyt : frameTransform(g, xyt, spec.frameAffine, prefix, fixed);
  const xy = op.Slice(g, canonical, { starts: [0], ends: [2], axes: [1] });
  const d = op.Sub(g, op.Mul(g, xy, uvMappingScale), uv);
  const loss = op.ReduceMean(g, op.Sqrt(g, op.ReduceSum(g, op.Mul(g, d, d), [1], { keepdims: false })), [0], {
    keepdims: false,
  });
  const names = shapes.map(([n]) => n);
  const { grads } = gradients(
    g,
    loss,
    names.map((n) => params.get(n) as Value),
  );
  g.output(loss, "loss");
  grads.forEach((gr, i) => g.output(gr, `grad.${names[i] ?? i}`));
  return names;
}

/** The xyt feed of one pre-training step: rows `rows` [S], columns `cols` [S], frame f of N. */
export function pretrainXyt(
  rows: ArrayLike<number>,
  cols: ArrayLike<number>,
  frame: number,
  frames: number,
  largerDim: number,
): HostTensor<"float32"> {
  const s = rows.length;
  const half = Math.fround(largerDim / 2);
  // (f / (N / 2.0) - 1) is a Python float there, multiplied into a float32 ones vector
  const t = Math.fround(frame / (frames / 2) - 1);
  const out = new Float32Array(s * 3);
  for (let i = 0; i < s; i++) {
    out[3 * i] = Math.fround(Math.fround((cols[i] ?? 0) / half) - 1);
    out[3 * i + 1] = Math.fround(Math.fround((rows[i] ?? 0) / half) - 1);
    out[3 * i + 2] = t;
  }
  return tensor("float32", [s, 3], out);
}
