/**
 * The loss curve of a training run as a small standalone SVG: the loss of every step (thin) and its
 * moving average (thick), step on x, loss on a linear y axis from 0, with tick labels.
 */

function escapeXml(s: string): string {
  return s.replace(/[<>&"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" })[c] ?? c);
}

function niceStep(range: number, ticks: number): number {
  const raw = range / Math.max(1, ticks);
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? raw;
}

/** Trailing moving average over `window` steps. */
export function movingAverage(values: readonly number[], window: number): number[] {
  let sum = 0;
  return values.map((v, i) => {
    sum += v;
    if (i >= window) sum -= values[i - window] ?? 0;
    return sum / Math.min(i + 1, window);
  });
}

/** The SVG text of a loss curve (`losses[i]` is the loss of step i + 1). */
export function lossCurveSvg(losses: readonly number[], title = "training loss"): string {
  const [W, H, left, right, top, bottom] = [640, 360, 60, 20, 30, 40];
  const pw = W - left - right;
  const ph = H - top - bottom;
  const n = losses.length;
  const max = Math.max(1e-12, ...losses.filter(Number.isFinite));
  const yStep = niceStep(max, 5);
  const yMax = Math.ceil(max / yStep) * yStep;
  const x = (i: number): number => left + (n <= 1 ? 0 : (pw * i) / (n - 1));
  const y = (v: number): number => top + ph - (ph * Math.min(v, yMax)) / yMax;
  const path = (vs: readonly number[]): string =>
    vs.map((v, i) => `${i === 0 ? "M" : "L"}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join("");
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="13">${escapeXml(title)}</text>`,
  ];
  for (let v = 0; v <= yMax + yStep / 2; v += yStep) {
    parts.push(
      `<line x1="${left}" x2="${W - right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#ddd"/>`,
      `<text x="${left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${Number(v.toPrecision(4))}</text>`,
    );
  }
  const xStep = niceStep(Math.max(1, n), 6);
  for (let s = 0; s <= n; s += xStep) {
    const px = x(Math.max(0, s - 1));
    parts.push(
      `<text x="${px.toFixed(1)}" y="${H - bottom + 16}" text-anchor="middle">${s === 0 ? 1 : s}</text>`,
    );
  }
  parts.push(
    `<text x="${left + pw / 2}" y="${H - 6}" text-anchor="middle">step</text>`,
    `<line x1="${left}" x2="${left}" y1="${top}" y2="${top + ph}" stroke="#333"/>`,
    `<line x1="${left}" x2="${W - right}" y1="${top + ph}" y2="${top + ph}" stroke="#333"/>`,
  );
  if (n > 0) {
    parts.push(
      `<path d="${path(losses)}" fill="none" stroke="#9bb7e0" stroke-width="1"/>`,
      `<path d="${path(movingAverage(losses, Math.max(1, Math.round(n / 20))))}" fill="none" stroke="#1f4e9c" stroke-width="2"/>`,
    );
  }
  parts.push("</svg>", "");
  return parts.join("\n");
}
