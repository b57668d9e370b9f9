/**
 * Colour pictures of optical flow for previews: hue = direction (0 deg = right, red; counter-clockwise
 * in image coordinates with y down), full saturation, brightness = magnitude / `scale` (clipped).
 */
import type { Image } from "../../image.js";
import type { FlowField } from "../../control/flow.js";

function hsvToRgb(h: number, s: number, v: number): [number, number, number] {
  const c = v * s;
  const hp = (((h % 360) + 360) % 360) / 60;
  const x = c * (1 - Math.abs((hp % 2) - 1));
  const [r, g, b] =
    hp < 1
      ? [c, x, 0]
      : hp < 2
        ? [x, c, 0]
        : hp < 3
          ? [0, c, x]
          : hp < 4
            ? [0, x, c]
            : hp < 5
              ? [x, 0, c]
              : [c, 0, x];
  const m = v - c;
  return [Math.round((r + m) * 255), Math.round((g + m) * 255), Math.round((b + m) * 255)];
}

/** RGB picture of a flow field; `scale` is the magnitude (px) shown at full brightness. */
export function flowToColor(flow: FlowField, scale: number): Image {
  const n = flow.width * flow.height;
  const data = new Uint8Array(n * 3);
  for (let p = 0; p < n; p++) {
    const dx = flow.data[2 * p] ?? 0;
    const dy = flow.data[2 * p + 1] ?? 0;
    const angle = (Math.atan2(-dy, dx) * 180) / Math.PI;
    const [r, g, b] = hsvToRgb(angle, 1, Math.min(1, Math.hypot(dx, dy) / scale));
    data[3 * p] = r;
    data[3 * p + 1] = g;
    data[3 * p + 2] = b;
  }
  return { width: flow.width, height: flow.height, channels: 3, data };
}

/** Mean and largest flow magnitude in pixels. */
export function flowMagnitudes(flow: FlowField): { mean: number; max: number } {
  const n = flow.width * flow.height;
  let sum = 0;
  let max = 0;
  for (let p = 0; p < n; p++) {
    const m = Math.hypot(flow.data[2 * p] ?? 0, flow.data[2 * p + 1] ?? 0);
    sum += m;
    if (m > max) max = m;
  }
  return { mean: n === 0 ? 0 : sum / n, max };
}
