/**
 * Nearest-neighbour upsampling of the spatial dims (torch `F.interpolate(x, scale_factor=s,
 * mode="nearest")`): ONNX Resize with asymmetric coordinates and floor rounding, which picks source
 * index floor(i / s) exactly as PyTorch does.
 */
import type { GraphBuilder, Value } from "../graph/builder.js";
import * as op from "../graph/ops/index.js";

export function upsampleNearest(g: GraphBuilder, x: Value, scaleFactor = 2): Value {
  const scales = x.shape.map((_, i) => (i < 2 ? 1 : scaleFactor));
  return op.Resize(g, x, scales, {
    mode: "nearest",
    coordinateTransformationMode: "asymmetric",
    nearestMode: "floor",
  });
}
