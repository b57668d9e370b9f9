/**
 * Conformance kind `opencv`: classic control maps on real video frames against cv2 4.6 references.
 * Each stage is run on the fixture's own inputs (so one stage's error does not leak into the
 * next): frames -> gray; gray -> every Canny set; gray -> Farneback (forward and backward);
 * reference flows -> remap warps, consistency masks and warp errors; Canny edges -> addWeighted
 * interpolations. One end-to-end row recomputes the warp errors from our own flows. uint8 outputs
 * must match exactly; tolerances are in `OPENCV_TOLERANCES` (case.json states none).
 */
import { join } from "node:path";
import { cannySync } from "../../control/canny.js";
import { farnebackFlowSync, type FlowField } from "../../control/flow.js";
import { toGraySync } from "../../control/gray.js";
import { blendEdgeMaps } from "../../control/interpolate.js";
import { loadCv, type Cv } from "../../control/opencv.js";
import { throwIfAborted } from "../../errors.js";
import type { Image } from "../../image.js";
import { failedRow } from "../compare.js";
import type { ConformanceRow, FixtureContext, FixtureKind } from "../types.js";
import { formatPattern, parseOpencvCase, type OpencvCase } from "./opencv-case.js";
import { imageRow, numbersRow, PixelCheck, readFlows, readPngDir, readPngs } from "./opencv-io.js";
import { warpRows } from "./opencv-warp.js";

function cannyRows(
  cv: Cv,
  c: OpencvCase,
  gray: readonly Image[],
  edges: ReadonlyMap<string, Image[]>,
): ConformanceRow[] {
  const rows: ConformanceRow[] = [];
  for (const spec of c.canny) {
    const actual = gray.map((g) =>
      cannySync(cv, g, {
        threshold1: spec.threshold1,
        threshold2: spec.threshold2,
        apertureSize: spec.apertureSize,
        l2Gradient: spec.l2Gradient,
      }),
    );
    rows.push(
      imageRow(
        c.label,
        spec.dir,
        actual,
        edges.get(spec.dir) ?? [],
        c.tolerances.exact,
        ` (Canny ${spec.threshold1}/${spec.threshold2} of ${c.grayDir})`,
      ),
    );
    if (spec.edgePixelFraction !== undefined) {
      const fractions = actual.map((e) => e.data.reduce((n, v) => n + (v !== 0 ? 1 : 0), 0) / e.data.length);
      rows.push(
        numbersRow(
          c.label,
          `${spec.dir}.edge_pixel_fraction`,
          fractions,
          spec.edgePixelFraction,
          c.tolerances.fraction,
        ),
      );
    }
  }
  return rows;
}

function maxAbs(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return NaN;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] ?? 0) - (b[i] ?? 0)));
  return m;
}

function flowRow(
  label: string,
  name: string,
  actual: readonly FlowField[],
  expected: readonly FlowField[],
  tolerance: number,
): ConformanceRow {
  let err = actual.length === expected.length ? 0 : NaN;
  for (const [i, f] of actual.entries())
    err = Math.max(err, maxAbs(f.data, expected[i]?.data ?? new Float32Array(0)));
  return {
    fixture: label,
    tensor: name,
    maxAbsError: err,
    tolerance,
    pass: err <= tolerance,
    note: `${actual.length} flows, px`,
  };
}

function flowStatsRow(c: OpencvCase, flows: readonly FlowField[]): ConformanceRow | undefined {
  const actual: number[] = [];
  const expected: number[] = [];
  for (const [i, pair] of c.pairs.entries()) {
    const s = pair.flowStats;
    const f = flows[i];
    if (s === undefined || f === undefined) continue;
    let dx = 0;
    let dy = 0;
    let m = 0;
    for (let k = 0; k < f.data.length; k += 2) {
      const u = f.data[k] ?? 0;
      const v = f.data[k + 1] ?? 0;
      dx += u;
      dy += v;
      m = Math.max(m, Math.abs(u), Math.abs(v));
    }
    const n = f.data.length / 2;
    for (const [key, value] of [
      ["mean_dx", dx / n],
      ["mean_dy", dy / n],
      ["max_abs", m],
    ] as const) {
      if (typeof s[key] === "number") {
        actual.push(value);
        expected.push(s[key]);
      }
    }
  }
  if (actual.length === 0) return undefined;
  return numbersRow(
    c.label,
    "flow_fw_stats",
    actual,
    expected,
    c.tolerances.flow,
    "mean_dx, mean_dy, max_abs of our flow_fw per pair",
  );
}

function interpRows(
  c: OpencvCase,
  edges: ReadonlyMap<string, Image[]>,
  expected: ReadonlyMap<string, Image[]>,
): ConformanceRow[] {
  return c.interp.map((spec) => {
    const source = c.canny.find(
      (k) => k.threshold1 === spec.thresholds[0] && k.threshold2 === spec.thresholds[1],
    );
    const maps = source === undefined ? undefined : edges.get(source.dir);
    if (maps === undefined)
      return failedRow(c.label, spec.dir, `no canny set with thresholds ${spec.thresholds.join("/")}`);
    const actual: Image[] = [];
    for (let i = 0; i + 1 < maps.length; i++) {
      const a = maps[i];
      const b = maps[i + 1];
      if (a !== undefined && b !== undefined)
        for (const t of spec.times) actual.push(blendEdgeMaps(a, b, t, spec.gamma));
    }
    return imageRow(
      c.label,
      spec.dir,
      actual,
      expected.get(spec.dir) ?? [],
      c.tolerances.exact,
      ` (addWeighted, gamma ${spec.gamma})`,
    );
  });
}

async function runOpencv(ctx: FixtureContext): Promise<readonly ConformanceRow[]> {
  const c = parseOpencvCase(ctx.caseJson, join(ctx.dir, "case.json"));
  const n = c.frameCount;
  const pixels = new PixelCheck(c.pixelHashes);
  const frames = await readPngDir(ctx.dir, c.framesDir, n, pixels);
  const gray = await readPngDir(ctx.dir, c.grayDir, n, pixels);
  const edges = new Map<string, Image[]>();
  for (const spec of c.canny) edges.set(spec.dir, await readPngDir(ctx.dir, spec.dir, n, pixels));
  const interps = new Map<string, Image[]>();
  for (const spec of c.interp) {
    const names: string[] = [];
    for (let i = 0; i + 1 < n; i++)
      for (let k = 0; k < spec.times.length; k++) names.push(formatPattern(spec.filePattern, { i, k }));
    interps.set(spec.dir, await readPngs(ctx.dir, names, pixels));
  }
  const flowPath = join(ctx.dir, c.flowFile);
  const goldenFw = await readFlows(flowPath, "flow_fw");
  const goldenBw = await readFlows(flowPath, "flow_bw");
  throwIfAborted(ctx.signal, "opencv fixture");

  const cv = await loadCv();
  const rows: ConformanceRow[] = [];
  rows.push(
    imageRow(
      c.label,
      c.grayDir,
      frames.map((f) => toGraySync(cv, f)),
      gray,
      c.tolerances.exact,
      " (RGB2GRAY)",
    ),
  );
  rows.push(...cannyRows(cv, c, gray, edges));

  const fw: FlowField[] = [];
  const bw: FlowField[] = [];
  for (let i = 0; i + 1 < n; i++) {
    throwIfAborted(ctx.signal, "opencv fixture");
    const a = gray[i];
    const b = gray[i + 1];
    if (a === undefined || b === undefined) continue;
    fw.push(farnebackFlowSync(cv, a, b, c.farneback));
    bw.push(farnebackFlowSync(cv, b, a, c.farneback));
  }
  rows.push(flowRow(c.label, "flow_fw", fw, goldenFw, c.tolerances.flow));
  rows.push(flowRow(c.label, "flow_bw", bw, goldenBw, c.tolerances.flow));
  const stats = flowStatsRow(c, fw);
  if (stats !== undefined) rows.push(stats);

  rows.push(...(await warpRows(ctx.dir, cv, c, frames, { fw: goldenFw, bw: goldenBw }, { fw, bw }, pixels)));
  rows.push(...interpRows(c, edges, interps));
  const hashNote = `${pixels.verified} reference PNGs decoded to their pixels_sha256`;
  rows.unshift({
    fixture: c.label,
    tensor: "png_pixels",
    maxAbsError: pixels.mismatched.length === 0 ? 0 : NaN,
    tolerance: 0,
    pass: pixels.mismatched.length === 0,
    note:
      pixels.mismatched.length === 0
        ? hashNote
        : `pixels_sha256 mismatch: ${pixels.mismatched.slice(0, 5).join(", ")}`,
  });
  return rows;
}

export const opencvKind: FixtureKind = {
  kind: "opencv",
  description:
    "OpenCV control maps: gray, Canny, Farneback flow, remap warps, consistency masks, edge interpolation, warp error",
  run: runOpencv,
};
