import { describe, expect, it } from "vitest";
import { runGraph } from "../../test/helpers/run-graph.js";
import { backward } from "../graph/autodiff/index.js";
import { GraphBuilder } from "../graph/builder.js";
import * as op from "../graph/ops/index.js";
import { tensor } from "../tensor.js";
import {
  type GridSpec,
  gridAtlasNets,
  gridEncoding,
  initialParameters,
  modelParameterShapes,
} from "./networks.js";

const SIDES = [3, 5];
const GRID: GridSpec = { resolutions: SIDES, features: 2, scale: 10 };

/** Deterministic values in [-1, 1). */
function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 4294967296) * 2 - 1;
  });
}

/** Bilinear interpolation of each level's table at x, written out directly (the definition). */
function reference(x: Float32Array, tables: readonly Float32Array[], grid: GridSpec): number[] {
  const out: number[] = [];
  const k = x.length / 2;
  for (let i = 0; i < k; i++)
    SIDES.forEach((r, l) => {
      const t = tables[l] as Float32Array;
      const px = Math.min(Math.max(((x[2 * i] ?? 0) + 1) * 0.5 * (r - 1), 0), r - 1 - 1e-3);
      const py = Math.min(Math.max(((x[2 * i + 1] ?? 0) + 1) * 0.5 * (r - 1), 0), r - 1 - 1e-3);
      const [cx, cy] = [Math.floor(px), Math.floor(py)];
      const [fx, fy] = [px - cx, py - cy];
      for (let f = 0; f < grid.features; f++) {
        const v = (yy: number, xx: number): number => t[((cy + yy) * r + cx + xx) * grid.features + f] ?? NaN;
        const value =
          (1 - fx) * (1 - fy) * v(0, 0) +
          fx * (1 - fy) * v(0, 1) +
          (1 - fx) * fy * v(1, 0) +
          fx * fy * v(1, 1);
        out.push(value * grid.scale);
      }
    });
  return out;
}

function build(k: number): GraphBuilder {
  const g = new GraphBuilder({ name: "grid_test" });
  const x = g.input("x", "float32", [k, 2]);
  const params = new Map(
    SIDES.map((r, l) => [`atlas.grid.${l}`, g.input(`atlas.grid.${l}`, "float32", [r * r, 2])]),
  );
  const y = gridEncoding(g, x, GRID, "atlas", params);
  const w = g.input("w", "float32", [k, GRID.resolutions.length * GRID.features]);
  const loss = op.ReduceSum(g, op.Mul(g, y, w), [0, 1], { keepdims: false });
  g.output(y, "y");
  g.output(loss, "loss");
  const wrt = [x, ...params.values()];
  const { grads } = backward(g, [{ value: y, grad: w }], wrt);
  grads.forEach((gr, i) => g.output(gr, `grad${i}`));
  return g;
}

describe("grid encoding of the fast atlas", () => {
  it("interpolates each level's table bilinearly, and its gradients match finite differences", async () => {
    const k = 7;
    // corners and edges of [-1, 1]² included (the clamp), the rest inside
    const x = values(2 * k, 3);
    x.set([-1, -1, 1, 1, 1, -1], 0);
    const tables = SIDES.map((r, l) => values(r * r * 2, 10 + l));
    const w = values(k * 4, 99);
    const feeds = (xs: Float32Array, ts: readonly Float32Array[]) => ({
      x: tensor("float32", [k, 2], xs),
      w: tensor("float32", [k, 4], w),
      ...Object.fromEntries(
        SIDES.map((r, l) => [`atlas.grid.${l}`, tensor("float32", [r * r, 2], ts[l] as Float32Array)]),
      ),
    });
    const g = build(k);
    const out = await runGraph(g, feeds(x, tables));
    const y = Array.from(out.y?.data as Float32Array);
    const expected = reference(x, tables, GRID);
    expect(y.length).toBe(expected.length);
    for (let i = 0; i < y.length; i++) expect(y[i]).toBeCloseTo(expected[i] ?? NaN, 4);

    // gradients: central differences of loss = sum(y * w) in float64 through the reference
    const lossOf = (xs: Float32Array, ts: readonly Float32Array[]): number =>
      reference(xs, ts, GRID).reduce((a, v, i) => a + v * (w[i] ?? 0), 0);
    const eps = 1e-3;
    const gx = out.grad0?.data as Float32Array;
    // interior points only: at the clamped corners the derivative along the clamped axis is 0
    for (let i = 6; i < 2 * k; i++) {
      const plus = Float32Array.from(x);
      const minus = Float32Array.from(x);
      plus[i] = (plus[i] ?? 0) + eps;
      minus[i] = (minus[i] ?? 0) - eps;
      const fd = (lossOf(plus, tables) - lossOf(minus, tables)) / (2 * eps);
      expect(Math.abs((gx[i] ?? NaN) - fd)).toBeLessThan(2e-2 * Math.max(1, Math.abs(fd)));
    }
    GRID.resolutions.forEach((_, l) => {
      const gt = out[`grad${l + 1}`]?.data as Float32Array;
      const t = tables[l] as Float32Array;
      let touched = 0;
      for (let j = 0; j < t.length; j++) {
        const shifted = tables.map((tt, ll) => (ll === l ? Float32Array.from(tt) : tt));
        (shifted[l] as Float32Array)[j] = (t[j] ?? 0) + 1; // the loss is linear in the tables
        const fd = lossOf(x, shifted) - lossOf(x, tables);
        expect(gt[j]).toBeCloseTo(fd, 3);
        if (fd !== 0) touched++;
      }
      expect(touched).toBeGreaterThan(0);
    });
  });

  it("the fast atlas nets declare the tables and initialise them small", () => {
    const nets = gridAtlasNets(8, { grid: GRID });
    const shapes = new Map(modelParameterShapes(nets));
    expect(shapes.get("atlas.grid.0")).toEqual([9, 2]);
    expect(shapes.get("atlas.grid.1")).toEqual([25, 2]);
    expect(shapes.get("atlas.hidden.0.weight")).toEqual([64, 4]);
    expect(shapes.get("mapping2.hidden.0.weight")).toEqual([8, 3]);
    let next = 0;
    const params = initialParameters(nets, (n) => Float32Array.from({ length: n }, () => (next += 0.37) % 1));
    const table = params.get("atlas.grid.1")?.data as Float32Array;
    expect(table.length).toBe(50);
    expect(Math.max(...table.map(Math.abs))).toBeLessThanOrEqual(1e-4 / GRID.scale);
    expect(Math.max(...table.map(Math.abs))).toBeGreaterThan(0);
    expect(() => gridAtlasNets(8, { grid: { ...GRID, resolutions: [1] } })).toThrow(/grid resolutions/);
    expect(() => gridAtlasNets(8, { grid: { ...GRID, features: 0 } })).toThrow(/grid features/);
  });
});
