/**
 * The study's text outputs built from a {@link StudyReport}: the markdown table with its legend
 * (table.md), one CSV row per strategy (metrics.csv), one CSV row per strategy and source frame
 * (metrics-per-frame.csv) and the JSON of everything (metrics.json). Pure functions: report in, text
 * out. The CSVs follow RFC 4180 (comma, CRLF-free "\n" rows, fields quoted when they hold a comma,
 * quote or line break); empty fields are values that do not exist; numbers are written in full.
 */
import type { ClipReport, EntryReport, StudyReport } from "./types.js";

/** Four significant digits for the table; "–" for a missing value. */
export function formatNumber(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return "–";
  if (x === 0) return "0";
  const a = Math.abs(x);
  if (a < 1e-3 || a >= 1e5) return x.toExponential(2);
  return String(Number(x.toPrecision(4)));
}

function cell(text: string): string {
  return text
    .replace(/\\/g, "\\\\")
    .replace(/\|/g, "\\|")
    .replace(/[\r\n]+/g, " ");
}

function framesCell(e: EntryReport): string {
  return e.measuredFrames === e.frames ? String(e.frames) : `${e.frames} (${e.measuredFrames} measured)`;
}

function row(name: string, frames: string, c: ClipReport, hasDepth: boolean, spf: string): string {
  const depth = hasDepth ? formatNumber(c.depthPearson) : "–";
  return `| ${cell(name)} | ${frames} | ${formatNumber(c.warpError)} | ${formatNumber(c.flickerIndex)} | ${formatNumber(c.edgeF1)} | ${depth} | ${spf} |`;
}

/** table.md: the table (the input video first, as the reference), a legend and the notes. */
export function markdownTable(report: StudyReport): string {
  const d = report.definitions;
  const hasDepth = d.depth !== null;
  const lines = [
    `# Study of ${cell(report.source)}`,
    "",
    `${report.sourceFrames} source frames at ${report.width}x${report.height}, ${formatNumber(report.fps)} fps.`,
    "",
    "| strategy | frames | warp error ↓ | flicker index ↓ | edge F1 ↑ | depth agreement ↑ | s/frame ↓ |",
    "|---|---:|---:|---:|---:|---:|---:|",
    row("input video (reference)", String(report.input.measuredFrames), report.input, hasDepth, "–"),
    ...report.entries.map((e) => row(e.name, framesCell(e), e, hasDepth, formatNumber(e.secondsPerFrame))),
    "",
    "↓ lower is better, ↑ higher is better. The first row is the input video measured against itself:",
    "the warp error and flicker a perfectly consistent render would have (its edge F1 and depth are 1).",
    "",
    `- **warp error** (lower is better): ${d.warpError.text}`,
    `- **flicker index** (lower is better): ${d.flicker}`,
    `- **edge F1** (higher is better): ${d.edgeF1.text}`,
    hasDepth
      ? `- **depth agreement** (higher is better): ${d.depth ?? ""}`
      : "- **depth agreement**: – (no depth model was given).",
    "- **s/frame** (lower is better): generation seconds per output frame, as measured by the renderer.",
    `- **frames**: frames in the render. ${d.sampling}`,
    "",
    `Files: \`grid.mp4\` (${report.grid.tiles.length} tiles: ${report.grid.tiles.map(cell).join(", ")}; ` +
      `${report.grid.frames} frames at ${formatNumber(report.grid.fps)} fps), \`metrics.csv\`, ` +
      "`metrics-per-frame.csv`, `metrics.json` (all per-frame series), `plot.svg` (per-frame flicker and warp error).",
  ];
  if (report.grid.labelNote !== null) lines.push("", `Note: ${report.grid.labelNote}`);
  lines.push("");
  return lines.join("\n");
}

/** One CSV field: numbers in full, null/NaN empty, text quoted when needed. */
export function csvField(value: string | number | null | undefined): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return Number.isFinite(value) ? String(value) : "";
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

function csv(rows: readonly (readonly (string | number | null | undefined)[])[]): string {
  return rows.map((r) => r.map(csvField).join(",")).join("\n") + "\n";
}

export const CSV_HEADER = [
  "strategy",
  "frames",
  "measured_frames",
  "frames_per_source_frame",
  "warp_error",
  "flicker_index",
  "edge_f1",
  "depth_pearson",
  "depth_aligned_mse",
  "seconds_per_frame",
] as const;

/** metrics.csv: a header and one row per strategy (the input video's numbers are in metrics.json). */
export function summaryCsv(report: StudyReport): string {
  return csv([
    CSV_HEADER,
    ...report.entries.map((e) => [
      e.name,
      e.frames,
      e.measuredFrames,
      e.framesPerSourceFrame,
      e.warpError,
      e.flickerIndex,
      e.edgeF1,
      e.depthPearson,
      e.depthAlignedMse,
      e.secondsPerFrame,
    ]),
  ]);
}

export const PER_FRAME_CSV_HEADER = [
  "strategy",
  "source_frame",
  "render_frame",
  "luminance",
  "flicker",
  "warp_error",
  "warp_pixels",
  "edge_f1",
  "depth_pearson",
  "depth_aligned_mse",
] as const;

/**
 * metrics-per-frame.csv: one row per strategy and measured source frame t (render frame
 * t · framesPerSourceFrame); flicker and warp error belong to the pair (t-1, t).
 */
export function perFrameCsv(report: StudyReport): string {
  const rows: (string | number | null | undefined)[][] = [[...PER_FRAME_CSV_HEADER]];
  for (const e of report.entries) {
    const s = e.perFrame;
    for (let t = 0; t < e.measuredFrames; t++) {
      rows.push([
        e.name,
        t,
        t * e.framesPerSourceFrame,
        s.luminance[t],
        s.flicker[t],
        s.warpError[t],
        s.warpPixels[t],
        s.edgeF1[t],
        s.depthPearson?.[t],
        s.depthAlignedMse?.[t],
      ]);
    }
  }
  return csv(rows);
}

/** metrics.json: the whole report; NaN and infinities become null (JSON has none). */
export function reportJson(report: StudyReport): string {
  const body = {
    schema: "steadyframe-study/1",
    ...report,
  };
  return `${JSON.stringify(body, (_key, value: unknown) => (typeof value === "number" && !Number.isFinite(value) ? null : value), 2)}\n`;
}
