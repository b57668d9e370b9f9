/**
 * The study's text outputs built from a {@link StudyReport}: the markdown table with its legend
 * (table.md), one CSV row per strategy (metrics.csv), one CSV row per strategy and source frame
 * (metrics-per-frame.csv) and the JSON of everything (metrics.json). Pure functions: report in, text
 * out. The CSVs follow RFC 4180 (comma, CRLF-free "\n" rows, fields quoted when they hold a comma,
 * quote or line break); empty fields are values that do not exist; numbers are written in full.
 * CLIP-F / CLIP-T columns appear only when the report has them (`definitions.clip`).
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

/** Which optional CLIP columns the table has: none, CLIP-F, or CLIP-F and CLIP-T. */
interface ClipColumns {
  readonly f: boolean;
  readonly t: boolean;
}

function clipColumns(report: StudyReport): ClipColumns {
  const clip = report.definitions.clip;
  return { f: clip !== undefined, t: clip !== undefined && clip.prompt !== null };
}

function row(
  name: string,
  frames: string,
  c: ClipReport,
  hasDepth: boolean,
  spf: string,
  clip: ClipColumns,
): string {
  const depth = hasDepth ? formatNumber(c.depthPearson) : "–";
  const scores = `${clip.f ? ` ${formatNumber(c.clipF)} |` : ""}${clip.t ? ` ${formatNumber(c.clipT)} |` : ""}`;
  return `| ${cell(name)} | ${frames} | ${formatNumber(c.warpError)} | ${formatNumber(c.flickerIndex)} | ${formatNumber(c.edgeF1)} | ${depth} |${scores} ${spf} |`;
}

/** table.md: the table (the input video first, as the reference), a legend and the notes. */
export function markdownTable(report: StudyReport): string {
  const d = report.definitions;
  const hasDepth = d.depth !== null;
  const clip = clipColumns(report);
  const clipHeader = `${clip.f ? " CLIP-F ↑ |" : ""}${clip.t ? " CLIP-T ↑ |" : ""}`;
  const clipRule = `${clip.f ? "---:|" : ""}${clip.t ? "---:|" : ""}`;
  const lines = [
    `# Study of ${cell(report.source)}`,
    "",
    `${report.sourceFrames} source frames at ${report.width}x${report.height}, ${formatNumber(report.fps)} fps.`,
    "",
    `| strategy | frames | warp error ↓ | flicker index ↓ | edge F1 ↑ | depth agreement ↑ |${clipHeader} s/frame ↓ |`,
    `|---|---:|---:|---:|---:|---:|${clipRule}---:|`,
    row("input video (reference)", String(report.input.measuredFrames), report.input, hasDepth, "–", clip),
    ...report.entries.map((e) =>
      row(e.name, framesCell(e), e, hasDepth, formatNumber(e.secondsPerFrame), clip),
    ),
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
    ...(d.clip === undefined ? [] : [`- **CLIP-F, CLIP-T** (higher is better): ${d.clip.text}`]),
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

/** The columns a CLIP model adds: before seconds_per_frame in metrics.csv, last in metrics-per-frame.csv. */
export const CLIP_CSV_COLUMNS = ["clip_f", "clip_t"] as const;

/**
 * metrics.csv: a header and one row per strategy (the input video's numbers are in metrics.json);
 * with a CLIP model, clip_f and clip_t come before seconds_per_frame (clip_t empty without a prompt).
 */
export function summaryCsv(report: StudyReport): string {
  const clip = report.definitions.clip !== undefined;
  const header = clip
    ? [...CSV_HEADER.slice(0, -1), ...CLIP_CSV_COLUMNS, ...CSV_HEADER.slice(-1)]
    : CSV_HEADER;
  return csv([
    header,
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
      ...(clip ? [e.clipF, e.clipT] : []),
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
 * t · framesPerSourceFrame); flicker, warp error and CLIP-F belong to the pair (t-1, t). With a CLIP
 * model, clip_f and clip_t are the last columns.
 */
export function perFrameCsv(report: StudyReport): string {
  const clip = report.definitions.clip !== undefined;
  const rows: (string | number | null | undefined)[][] = [
    [...PER_FRAME_CSV_HEADER, ...(clip ? CLIP_CSV_COLUMNS : [])],
  ];
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
        ...(clip ? [s.clipF?.[t], s.clipT?.[t]] : []),
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
