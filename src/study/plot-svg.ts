/**
 * The study's plot as hand-written SVG (no plotting dependency): one panel per per-frame metric
 * (flicker |ΔL̄| and warp error), stacked, each with axes, tick labels, one `<polyline>` per strategy
 * and a dashed one for the input video's own curve, and one legend under the panels. Axis ticks use
 * the usual 1-2-5 steps. Points that are not finite (frame 0 of a pair metric, a pair where no pixel
 * passes the consistency test) are left out of their polyline.
 */
import { InvalidArgumentError } from "../errors.js";

/** One curve: `values[t]` is the value at source frame t (null where there is none). */
export interface PlotSeries {
  readonly name: string;
  readonly values: readonly (number | null)[];
}

export interface PlotPanel {
  readonly title: string;
  readonly yLabel: string;
  readonly series: readonly PlotSeries[];
  /** (optional) the input video's own curve, drawn dashed in gray and named in the legend. */
  readonly reference?: PlotSeries;
}

/** Distinct line colours (Tableau 10), reused in order when there are more strategies. */
export const PLOT_COLORS: readonly string[] = [
  "#4e79a7",
  "#f28e2b",
  "#e15759",
  "#76b7b2",
  "#59a14f",
  "#edc948",
  "#b07aa1",
  "#ff9da7",
  "#9c755f",
  "#bab0ac",
];
const REFERENCE_COLOR = "#555555";

const WIDTH = 760;
const PANEL_HEIGHT = 250;
const MARGIN = { left: 70, right: 20, top: 30, bottom: 44 } as const;
const LEGEND_ROW = 20;
const LEGEND_ITEM = 180;

/** Escapes text for SVG element content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) =>
    c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : c === '"' ? "&quot;" : "&apos;",
  );
}

/** Ticks 0, step, 2·step, ... covering [0, max] with a 1-2-5 step, about `count` of them. */
export function niceTicks(max: number, count = 5): number[] {
  if (!Number.isFinite(max) || max <= 0) return [0, 1];
  const raw = max / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5, 10].find((m) => m * magnitude >= raw) ?? 10) * magnitude;
  const ticks: number[] = [];
  const n = Math.ceil(max / step - 1e-9);
  for (let i = 0; i <= n; i++) ticks.push(Number((i * step).toPrecision(12)));
  return ticks;
}

function tickLabel(value: number, step: number): string {
  if (value === 0) return "0";
  if (step < 1e-3 || value >= 1e5) return value.toExponential(Math.max(0, -Math.floor(Math.log10(step)) - 1));
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return value.toFixed(decimals);
}

function fmt(x: number): string {
  return Number(x.toFixed(2)).toString();
}

function panelSvg(panel: PlotPanel, top: number, colors: readonly string[]): string[] {
  const all = [...panel.series, ...(panel.reference ? [panel.reference] : [])];
  let xMax = 1;
  let yMax = 0;
  for (const s of all) {
    xMax = Math.max(xMax, s.values.length - 1);
    for (const v of s.values) if (v !== null && Number.isFinite(v)) yMax = Math.max(yMax, v);
  }
  const xTicks = niceTicks(xMax, Math.min(10, xMax));
  const yTicks = niceTicks(yMax);
  const xEnd = xTicks[xTicks.length - 1] ?? 1;
  const yEnd = yTicks[yTicks.length - 1] ?? 1;
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = PANEL_HEIGHT - MARGIN.top - MARGIN.bottom;
  const x0 = MARGIN.left;
  const y0 = top + MARGIN.top + plotH;
  const px = (x: number): number => x0 + (x / xEnd) * plotW;
  const py = (y: number): number => y0 - (y / yEnd) * plotH;
  const out: string[] = [`<g class="panel" data-title="${escapeXml(panel.title)}">`];
  out.push(
    `<text x="${x0}" y="${top + 18}" font-size="14" font-weight="bold">${escapeXml(panel.title)}</text>`,
  );
  const yStep = (yTicks[1] ?? 1) - (yTicks[0] ?? 0);
  for (const t of yTicks) {
    const y = fmt(py(t));
    out.push(`<line x1="${x0}" y1="${y}" x2="${x0 + plotW}" y2="${y}" stroke="#e4e4e4"/>`);
    out.push(
      `<text x="${x0 - 6}" y="${y}" font-size="11" text-anchor="end" dy="4">${tickLabel(t, yStep)}</text>`,
    );
  }
  for (const t of xTicks) {
    const x = fmt(px(t));
    out.push(`<line x1="${x}" y1="${y0}" x2="${x}" y2="${y0 + 5}" stroke="#000"/>`);
    out.push(`<text x="${x}" y="${y0 + 18}" font-size="11" text-anchor="middle">${t}</text>`);
  }
  out.push(`<line x1="${x0}" y1="${y0}" x2="${x0 + plotW}" y2="${y0}" stroke="#000"/>`);
  out.push(`<line x1="${x0}" y1="${y0}" x2="${x0}" y2="${top + MARGIN.top}" stroke="#000"/>`);
  out.push(
    `<text x="${x0 + plotW / 2}" y="${y0 + 36}" font-size="12" text-anchor="middle">source frame</text>`,
  );
  const yMid = fmt(top + MARGIN.top + plotH / 2);
  out.push(
    `<text x="16" y="${yMid}" font-size="12" text-anchor="middle" transform="rotate(-90 16 ${yMid})">${escapeXml(panel.yLabel)}</text>`,
  );
  const line = (s: PlotSeries, attrs: string): string => {
    const points = s.values
      .map((v, t) => (v !== null && Number.isFinite(v) ? `${fmt(px(t))},${fmt(py(v))}` : ""))
      .filter((p) => p !== "")
      .join(" ");
    return `<polyline ${attrs} data-name="${escapeXml(s.name)}" fill="none" stroke-width="1.5" points="${points}"/>`;
  };
  if (panel.reference)
    out.push(line(panel.reference, `class="reference" stroke="${REFERENCE_COLOR}" stroke-dasharray="5 3"`));
  panel.series.forEach((s, i) => out.push(line(s, `class="series" stroke="${colors[i % colors.length]}"`)));
  out.push("</g>");
  return out;
}

/**
 * An SVG document with the panels stacked and a legend (the strategies in order, then the
 * reference when any panel has one). Every panel must list the same strategies in the same order:
 * a strategy has one colour throughout.
 */
export function plotSvg(panels: readonly PlotPanel[], title: string): string {
  if (panels.length === 0) throw new InvalidArgumentError("panels", "at least one panel", 0);
  const names = panels[0]?.series.map((s) => s.name) ?? [];
  for (const [i, p] of panels.entries()) {
    const these = p.series.map((s) => s.name);
    if (these.join("\u0000") !== names.join("\u0000")) {
      throw new InvalidArgumentError(`panels[${i}].series`, `the strategies ${names.join(", ")}`, these);
    }
  }
  const reference = panels.find((p) => p.reference)?.reference;
  const legend = [
    ...names.map((n, i) => ({
      name: n,
      color: PLOT_COLORS[i % PLOT_COLORS.length] ?? "#000",
      dashed: false,
    })),
  ];
  if (reference) legend.push({ name: reference.name, color: REFERENCE_COLOR, dashed: true });
  const perRow = Math.max(1, Math.floor((WIDTH - MARGIN.left) / LEGEND_ITEM));
  const legendTop = 30 + panels.length * PANEL_HEIGHT;
  const height = legendTop + Math.ceil(legend.length / perRow) * LEGEND_ROW + 10;
  const out: string[] = [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="DejaVu Sans, Arial, sans-serif">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${WIDTH / 2}" y="20" font-size="15" text-anchor="middle">${escapeXml(title)}</text>`,
  ];
  panels.forEach((p, i) => out.push(...panelSvg(p, 30 + i * PANEL_HEIGHT, PLOT_COLORS)));
  out.push(`<g class="legend">`);
  legend.forEach((item, i) => {
    const x = MARGIN.left + (i % perRow) * LEGEND_ITEM;
    const y = legendTop + Math.floor(i / perRow) * LEGEND_ROW + 10;
    const dash = item.dashed ? ` stroke-dasharray="5 3"` : "";
    out.push(
      `<line x1="${x}" y1="${y}" x2="${x + 24}" y2="${y}" stroke="${item.color}" stroke-width="2"${dash}/>`,
    );
    out.push(`<text x="${x + 30}" y="${y + 4}" font-size="12">${escapeXml(item.name)}</text>`);
  });
  out.push("</g>", "</svg>", "");
  return out.join("\n");
}
