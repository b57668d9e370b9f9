/**
 * Starting values of the per-frame affine maps (`--frame-affine`, see `FrameAffineSpec`): the
 * camera's path for the background mapping, the object's box for the foreground one, so that the
 * pre-trained mappings already send a scene point to about the same atlas point in every frame.
 *
 * - Background (mapping2): frame f's shift D_f is the sum of the median forward flows of the frames
 *   before it, over background pixels (mask below 128; every pixel without masks). Canonical
 *   coordinates are (x − D_f − c)/k with c, k centring and shrinking the union of all frames' views
 *   into [−1, 1]² (k ≥ 1).
 * - Foreground (mapping1, only with masks): the mask's centroid c_f and size s_f (√area); canonical
 *   coordinates (x − c_f)·s/s_f with s the largest size, so the object keeps one place and scale in
 *   the atlas while it moves and grows. Frames with an empty mask take the nearest frame's values.
 *
 * Coordinates are the fit's normalised ones (pixel / (larger side / 2) − 1).
 */
import type { FlowField } from "../control/flow.js";
import type { FrameAffineSpec } from "./networks.js";

/** One frame's map (x, y) → a·(x, y) + (tx, ty). */
export interface FrameMap {
  readonly a: number;
  readonly tx: number;
  readonly ty: number;
}

export interface FrameAffineInput {
  readonly width: number;
  readonly height: number;
  readonly count: number;
  /** [N, H, W] uint8 (white = foreground). */
  readonly masks?: Uint8Array;
  readonly flowFw: readonly FlowField[];
}

/** Table values [N, 6] of `<net>.frames` for `maps` under `spec`'s scales. */
function tableOf(maps: readonly FrameMap[], spec: FrameAffineSpec): Float32Array {
  const out = new Float32Array(maps.length * 6);
  maps.forEach((m, f) => {
    const diag = (m.a - 1) / spec.linearScale;
    out.set([diag, 0, m.tx / spec.scale, 0, diag, m.ty / spec.scale], f * 6);
  });
  return out;
}

function median(values: number[]): number {
  if (values.length === 0) return 0;
  values.sort((a, b) => a - b);
  const mid = values.length >> 1;
  return values.length % 2 === 1 ? (values[mid] ?? 0) : ((values[mid - 1] ?? 0) + (values[mid] ?? 0)) / 2;
}

/** The background's maps: the camera path from the median background flow. */
export function backgroundMaps(input: FrameAffineInput): FrameMap[] {
  const { width: w, height: h, count: n, masks } = input;
  const half = Math.max(w, h) / 2;
  const shifts: [number, number][] = [[0, 0]];
  for (let f = 0; f + 1 < n; f++) {
    const flow = input.flowFw[f]?.data ?? new Float32Array(0);
    const dx: number[] = [];
    const dy: number[] = [];
    for (let p = 0; p < w * h; p++) {
      if (masks && (masks[f * w * h + p] ?? 0) >= 128) continue;
      dx.push(flow[2 * p] ?? 0);
      dy.push(flow[2 * p + 1] ?? 0);
    }
    const [sx, sy] = shifts[f] ?? [0, 0];
    shifts.push([sx + median(dx) / half, sy + median(dy) / half]);
  }
  // the frame's view [x0, x1] × [y0, y1] moved by −D_f; their union centred and fitted into [−1, 1]²
  const [x1, y1] = [w / half - 1, h / half - 1];
  const lo = [Infinity, Infinity];
  const hi = [-Infinity, -Infinity];
  for (const [sx, sy] of shifts) {
    lo[0] = Math.min(lo[0] ?? 0, -1 - sx);
    hi[0] = Math.max(hi[0] ?? 0, x1 - sx);
    lo[1] = Math.min(lo[1] ?? 0, -1 - sy);
    hi[1] = Math.max(hi[1] ?? 0, y1 - sy);
  }
  const c = [((lo[0] ?? 0) + (hi[0] ?? 0)) / 2, ((lo[1] ?? 0) + (hi[1] ?? 0)) / 2];
  const k = Math.max(1, ((hi[0] ?? 0) - (lo[0] ?? 0)) / 2, ((hi[1] ?? 0) - (lo[1] ?? 0)) / 2);
  return shifts.map(([sx, sy]) => ({ a: 1 / k, tx: (-sx - (c[0] ?? 0)) / k, ty: (-sy - (c[1] ?? 0)) / k }));
}

/** The foreground's maps from the masks' centroids and sizes (identity without masks). */
export function foregroundMaps(input: FrameAffineInput): FrameMap[] {
  const { width: w, height: h, count: n, masks } = input;
  if (!masks) return Array.from({ length: n }, () => ({ a: 1, tx: 0, ty: 0 }));
  const half = Math.max(w, h) / 2;
  const stats = Array.from({ length: n }, (_, f) => {
    let [count, sx, sy] = [0, 0, 0];
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        if ((masks[f * w * h + y * w + x] ?? 0) >= 128) {
          count++;
          sx += x;
          sy += y;
        }
    return count === 0
      ? undefined
      : { cx: sx / count / half - 1, cy: sy / count / half - 1, size: Math.sqrt(count) };
  });
  if (stats.every((s) => s === undefined)) return Array.from({ length: n }, () => ({ a: 1, tx: 0, ty: 0 }));
  const filled = stats.map((s, f) => {
    if (s) return s;
    for (let d = 1; ; d++) {
      const near = stats[f - d] ?? stats[f + d];
      if (near) return near;
    }
  });
  const largest = Math.max(...filled.map((s) => s.size));
  return filled.map((s) => {
    const a = largest / s.size;
    return { a, tx: -s.cx * a, ty: -s.cy * a };
  });
}

/**
 * The `mapping1.frames` and `mapping2.frames` tables to start from, and the background's scale 1/k
 * (the factor its canonical coordinates were shrunk by).
 */
export function initialFrameTables(
  input: FrameAffineInput,
  spec: FrameAffineSpec,
): { readonly mapping1: Float32Array; readonly mapping2: Float32Array; readonly backgroundScale: number } {
  const background = backgroundMaps(input);
  return {
    mapping1: tableOf(foregroundMaps(input), spec),
    mapping2: tableOf(background, spec),
    backgroundScale: background[0]?.a ?? 1,
  };
}
