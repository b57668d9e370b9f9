/**
 * Frame layout helpers of the inflated UNet. Every 2D op runs on [B*F, ...] (row = b*F + f, as
 * einops `b c f h w -> (b f) c h w`); these move between that layout, the video layout
 * [B, C, F, H, W] and the temporal token layout [(B*D), F, C]. F is fixed when the graph is built.
 */
import type { GraphBuilder, Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import type { Dim } from "../../graph/shape.js";
import { concatShape } from "../motion/shape-parts.js";

/** Reshape to a target assembled from constant and runtime parts, with the result shape given. */
export function reshapeParts(
  g: GraphBuilder,
  x: Value,
  parts: readonly (readonly number[] | Value)[],
  shape: readonly Dim[],
): Value {
  return g.node1("Reshape", [x, concatShape(g, parts)], {}, { dtype: x.dtype, shape: [...shape] });
}

const div = (d: Dim | undefined, n: number): Dim => (typeof d === "number" ? d / n : null);
const mul = (d: Dim | undefined, n: number): Dim => (typeof d === "number" ? d * n : null);

/** [B*F, C, ...spatial] -> [B, C, F, ...spatial]. */
export function toVideo(g: GraphBuilder, x: Value, frames: number): Value {
  const [bf, ...rest] = x.shape;
  const split = reshapeParts(
    g,
    x,
    [[-1, frames], op.Shape(g, x, { start: 1 })],
    [div(bf, frames), frames, ...rest],
  );
  return op.Transpose(g, split, [0, 2, 1, ...rest.slice(1).map((_, i) => i + 3)]);
}

/** [B, C, F, ...spatial] -> [B*F, C, ...spatial]. */
export function fromVideo(g: GraphBuilder, x: Value): Value {
  const [b, c, f, ...spatial] = x.shape;
  const perm = [0, 2, 1, ...spatial.map((_, i) => i + 3)];
  const t = op.Transpose(g, x, perm); // [B, F, C, ...]
  const frames = typeof f === "number" ? f : null;
  return reshapeParts(
    g,
    t,
    [[-1], op.Shape(g, x, { start: 1, end: 2 }), op.Shape(g, x, { start: 3 })],
    [frames === null ? null : mul(b, frames), c ?? null, ...spatial],
  );
}

/** Tokens [B*F, D, C] -> temporal sequences [B*D, F, C]. */
export function toTemporal(g: GraphBuilder, x: Value, frames: number): Value {
  const [bf, d, c] = x.shape;
  const b = div(bf, frames);
  const split = reshapeParts(
    g,
    x,
    [[-1, frames], op.Shape(g, x, { start: 1 })],
    [b, frames, d ?? null, c ?? null],
  );
  const t = op.Transpose(g, split, [0, 2, 1, 3]); // [B, D, F, C]
  const bd = typeof b === "number" && typeof d === "number" ? b * d : null;
  return reshapeParts(g, t, [[-1, frames], op.Shape(g, x, { start: 2 })], [bd, frames, c ?? null]);
}

/** Temporal sequences [B*D, F, C] -> tokens [B*F, D, C], `like` being the tokens' original value. */
export function fromTemporal(g: GraphBuilder, x: Value, like: Value, frames: number): Value {
  const [bf, d, c] = like.shape;
  const split = reshapeParts(
    g,
    x,
    [[-1], op.Shape(g, like, { start: 1, end: 2 }), [frames], op.Shape(g, like, { start: 2 })],
    [div(bf, frames), d ?? null, frames, c ?? null],
  ); // [B, D, F, C]
  const t = op.Transpose(g, split, [0, 2, 1, 3]); // [B, F, D, C]
  return reshapeParts(g, t, [[-1], op.Shape(g, like, { start: 1 })], [bf ?? null, d ?? null, c ?? null]);
}
