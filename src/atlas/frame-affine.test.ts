import { describe, expect, it } from "vitest";
import { runGraph } from "../../test/helpers/run-graph.js";
import { backward } from "../graph/autodiff/index.js";
import { GraphBuilder } from "../graph/builder.js";
import * as op from "../graph/ops/index.js";
import { tensor } from "../tensor.js";
import {
  type FrameAffineSpec,
  frameTransform,
  gridAtlasNets,
  initialParameters,
  modelParameterShapes,
  withFrameAffine,
} from "./networks.js";
import { backgroundMaps, foregroundMaps, initialFrameTables } from "./frame-init.js";
import type { FlowField } from "../control/flow.js";

const SPEC: FrameAffineSpec = { frames: 4, scale: 3, linearScale: 0.5 };

/** Deterministic values in [-1, 1). */
function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 4294967296) * 2 - 1;
  });
}

/** The definition: (x, y) → (I + l·P_f)(x, y) + s·t_f for f = the frame of t = f/(N/2) − 1. */
function reference(x: Float32Array, table: Float32Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < x.length / 3; i++) {
    const [px, py, t] = [x[3 * i] ?? NaN, x[3 * i + 1] ?? NaN, x[3 * i + 2] ?? NaN];
    const f = Math.round((t + 1) * (SPEC.frames / 2));
    const r = (j: number): number =>
      (table[6 * f + j] ?? NaN) * (j === 2 || j === 5 ? SPEC.scale : SPEC.linearScale);
    out.push(px + r(0) * px + r(1) * py + r(2), py + r(3) * px + r(4) * py + r(5), t);
  }
  return out;
}

describe("per-frame affine pre-transform of the mapping nets", () => {
  it("moves (x, y) by its frame's row, and its gradients match finite differences", async () => {
    const k = 6;
    const x = values(3 * k, 5);
    // t of frames 0, 1, 2, 3, 3, 1 (t = f/2 − 1, as the data's normalisation gives it)
    [0, 1, 2, 3, 3, 1].forEach((f, i) => (x[3 * i + 2] = Math.fround(f / 2 - 1)));
    const table = values(SPEC.frames * 6, 17).map((v) => v * 0.1);
    const w = values(3 * k, 23);
    const g = new GraphBuilder({ name: "frame_affine_test" });
    const xIn = g.input("x", "float32", [k, 3]);
    const tIn = g.input("m.frames", "float32", [SPEC.frames, 6]);
    const y = frameTransform(g, xIn, SPEC, "m", new Map([["m.frames", tIn]]));
    const wIn = g.input("w", "float32", [k, 3]);
    g.output(y, "y");
    g.output(op.ReduceSum(g, op.Mul(g, y, wIn), [0, 1], { keepdims: false }), "loss");
    const { grads } = backward(g, [{ value: y, grad: wIn }], [xIn, tIn]);
    grads.forEach((gr, i) => g.output(gr, `grad${i}`));
    const out = await runGraph(g, {
      x: tensor("float32", [k, 3], x),
      "m.frames": tensor("float32", [SPEC.frames, 6], table),
      w: tensor("float32", [k, 3], w),
    });
    const expected = reference(x, table);
    const yv = out.y?.data as Float32Array;
    expected.forEach((e, i) => expect(yv[i]).toBeCloseTo(e, 5));

    const lossOf = (xs: Float32Array, ts: Float32Array): number =>
      reference(xs, ts).reduce((a, v, i) => a + v * (w[i] ?? 0), 0);
    const eps = 1e-3;
    const gx = out.grad0?.data as Float32Array;
    for (let i = 0; i < 3 * k; i++) {
      if (i % 3 === 2) continue; // t picks the row: no gradient through the index
      const [plus, minus] = [Float32Array.from(x), Float32Array.from(x)];
      plus[i] = (plus[i] ?? 0) + eps;
      minus[i] = (minus[i] ?? 0) - eps;
      expect(gx[i]).toBeCloseTo((lossOf(plus, table) - lossOf(minus, table)) / (2 * eps), 3);
    }
    const gt = out.grad1?.data as Float32Array;
    let touched = 0;
    for (let j = 0; j < table.length; j++) {
      const shifted = Float32Array.from(table);
      shifted[j] = (shifted[j] ?? 0) + 1; // linear in the table
      const fd = lossOf(x, shifted) - lossOf(x, table);
      expect(gt[j]).toBeCloseTo(fd, 3);
      if (fd !== 0) touched++;
    }
    expect(touched).toBe(SPEC.frames * 6); // every frame has a point
  });

  it("declares one table per mapping net, initialised to the identity", () => {
    const nets = withFrameAffine(gridAtlasNets(8), 5);
    const shapes = new Map(modelParameterShapes(nets));
    expect(shapes.get("mapping1.frames")).toEqual([5, 6]);
    expect(shapes.get("mapping2.frames")).toEqual([5, 6]);
    expect(shapes.has("alpha.frames")).toBe(false);
    expect(shapes.has("atlas.frames")).toBe(false);
    const params = initialParameters(nets, (n) => new Float32Array(n).fill(0.5));
    expect(Array.from(params.get("mapping2.frames")?.data ?? [1])).toEqual(new Array(30).fill(0));
    // the weights after it are drawn as without it (the table takes no random numbers)
    const plain = initialParameters(gridAtlasNets(8), (n) => new Float32Array(n).fill(0.5));
    expect(params.get("mapping1.hidden.0.weight")?.data).toEqual(plain.get("mapping1.hidden.0.weight")?.data);
    expect(() => withFrameAffine(gridAtlasNets(8), 0)).toThrow(/frames/);
  });
});

describe("starting values of the per-frame maps", () => {
  // 3 frames of 8×4 (larger side 8: half 4); the camera moves 2 px right per frame (the scene's
  // flow is 2 px), and a 2×2 → 4×4 foreground box
  const [w, h, n] = [8, 4, 3];
  const flow = (dx: number): FlowField => ({
    width: w,
    height: h,
    data: Float32Array.from({ length: w * h * 2 }, (_, i) => (i % 2 === 0 ? dx : 0)),
  });
  const masks = new Uint8Array(n * w * h);
  const box = (f: number, x0: number, y0: number, size: number): void => {
    for (let y = y0; y < y0 + size; y++)
      for (let x = x0; x < x0 + size; x++) masks[f * w * h + y * w + x] = 255;
  };
  box(0, 0, 0, 2);
  box(2, 4, 0, 4);
  const input = { width: w, height: h, count: n, masks, flowFw: [flow(2), flow(2)] };

  it("follows the camera with the median background flow and fits every view into [-1, 1]", () => {
    const maps = backgroundMaps(input);
    // the scene moves +0.5 (normalised) per frame; views x ∈ [-1, 1] - D_f, y ∈ [-1, 0]
    // union x ∈ [-2, 1], y ∈ [-1, 0]: centre (-0.5, -0.5), half-extent 1.5 → k = 1.5
    maps.forEach((m, f) => {
      expect(m.a).toBeCloseTo(1 / 1.5, 6);
      expect(m.tx).toBeCloseTo((-0.5 * f + 0.5) / 1.5, 6);
      expect(m.ty).toBeCloseTo(0.5 / 1.5, 6);
    });
    // a scene point keeps its canonical place: x in frame 0, x + 0.5·f in frame f
    const canonical = (f: number, x: number): number => (maps[f]?.a ?? NaN) * x + (maps[f]?.tx ?? NaN);
    expect(canonical(2, -0.25 + 1)).toBeCloseTo(canonical(0, -0.25), 6);
    // every frame's view lands inside [-1, 1]
    maps.forEach((_, f) => {
      expect(canonical(f, -1)).toBeGreaterThanOrEqual(-1 - 1e-6);
      expect(canonical(f, 1)).toBeLessThanOrEqual(1 + 1e-6);
    });
  });

  it("keeps the foreground's box at one place and scale; an empty mask takes its neighbour's", () => {
    const maps = foregroundMaps(input);
    // frame 0: centroid px (0.5, 0.5) → (-0.875, -0.875), size 2; frame 2: (5.5, 1.5) → (0.375, -0.625), size 4
    expect(maps[0]?.a).toBeCloseTo(2, 6);
    expect(maps[0]?.tx).toBeCloseTo(0.875 * 2, 6);
    expect(maps[2]?.a).toBeCloseTo(1, 6);
    expect(maps[2]?.tx).toBeCloseTo(-0.375, 6);
    expect(maps[2]?.ty).toBeCloseTo(0.625, 6);
    expect(maps[1]).toEqual(maps[0]); // frame 1's mask is empty: the nearest earlier frame's
    expect(foregroundMaps({ width: w, height: h, count: n, flowFw: input.flowFw })).toEqual(
      new Array(n).fill({ a: 1, tx: 0, ty: 0 }),
    );
  });

  it("writes the maps as table rows under the spec's scales", () => {
    const spec: FrameAffineSpec = { frames: n, scale: 4, linearScale: 0.5 };
    const tables = initialFrameTables(input, spec);
    const bg = backgroundMaps(input)[1];
    expect(Array.from(tables.mapping2.subarray(6, 12))).toEqual(
      [
        ((bg?.a ?? NaN) - 1) / 0.5,
        0,
        (bg?.tx ?? NaN) / 4,
        0,
        ((bg?.a ?? NaN) - 1) / 0.5,
        (bg?.ty ?? NaN) / 4,
      ].map(Math.fround),
    );
    expect(tables.mapping1.length).toBe(n * 6);
    expect(tables.backgroundScale).toBeCloseTo(1 / 1.5, 6);
  });
});
