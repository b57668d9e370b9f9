/**
 * Formats conformance results as a fixed-width table and a summary line.
 */
import type { FixtureResult } from "./run.js";

function formatNumber(x: number): string {
  if (Number.isNaN(x)) return "-";
  if (x === 0) return "0";
  return x.toExponential(2);
}

export function formatTable(results: readonly FixtureResult[]): string {
  const header = ["fixture", "tensor", "max abs error", "tolerance", "result"];
  const rows = results.flatMap((r) =>
    r.rows.map((row) => [
      row.fixture,
      row.tensor,
      formatNumber(row.maxAbsError),
      formatNumber(row.tolerance),
      (row.pass ? "pass" : "FAIL") + (row.note ? `  ${row.note}` : ""),
    ]),
  );
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => (i < 4 ? (r[i] ?? "").length : 0))),
  );
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i < 4 ? c.padEnd(widths[i] ?? 0) : c))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

export function summarize(results: readonly FixtureResult[]): {
  passed: number;
  failed: number;
  fixtures: number;
} {
  let passed = 0;
  let failed = 0;
  for (const r of results) {
    for (const row of r.rows) {
      if (row.pass) passed++;
      else failed++;
    }
  }
  return { passed, failed, fixtures: results.length };
}
