/**
 * metrics.json of one render: the study's per-frame measures (src/study/measure.ts) of the finished
 * frames against the source — warp error on the source's flow and consistency mask, flicker (mean
 * luminance change), edge F1 of the output's Canny edges against the source's — or, without a source,
 * the flicker alone. Frames are read one at a time.
 */
import { join } from "node:path";
import type { RenderInfo } from "../../engine/method.js";
import { SourceVideo } from "../../engine/source.js";
import { loadCv } from "../../control/opencv.js";
import { readImageFile } from "../../control/png.js";
import { meanLuminance } from "../../metrics/flicker.js";
import { ClipMeter, sourceInstant, type SourceInstant } from "../../study/measure.js";

const frameFile = (dir: string, i: number): string => join(dir, `frame_${String(i).padStart(6, "0")}.png`);

export async function renderMetrics(
  framesDir: string,
  info: RenderInfo,
  settings: { readonly source?: string; readonly canny?: { threshold1: number; threshold2: number } },
): Promise<unknown> {
  if (settings.source === undefined) {
    const luminance: number[] = [];
    for (let i = 0; i < info.frames; i++)
      luminance.push(meanLuminance(await readImageFile(frameFile(framesDir, i))));
    const flicker = luminance.slice(1).map((l, i) => Math.abs(l - (luminance[i] ?? l)));
    return {
      frames: info.frames,
      source: null,
      flickerIndex: flicker.length > 0 ? flicker.reduce((a, b) => a + b, 0) / flicker.length : null,
      perFrame: { luminance, flicker },
    };
  }
  const cv = await loadCv();
  const source = await SourceVideo.open(settings.source, { width: info.width, height: info.height });
  const measure = {
    canny: settings.canny ?? { threshold1: 100, threshold2: 200 },
    distance: "l1" as const,
    depth: undefined,
  };
  const meter = new ClipMeter(measure);
  // Output frame i shows source frame i * step (step > 1 when frames were interpolated in between).
  const step =
    info.frames > source.frames ? Math.round((info.frames - 1) / Math.max(1, source.frames - 1)) : 1;
  let previous: SourceInstant | undefined;
  try {
    for (let s = 0; s < source.frames && s * step < info.frames; s++) {
      previous = await sourceInstant(cv, s, await source.frame(s), previous, measure);
      await meter.add(cv, await readImageFile(frameFile(framesDir, s * step)), previous);
    }
  } finally {
    await source.close();
  }
  return {
    frames: info.frames,
    source: settings.source,
    measuredEvery: step,
    definitions: {
      warpError:
        "mean |warp(output_t, flow(source_{t-1} -> source_t)) - output_{t-1}| / 255 over consistent pixels (L1, squared forward-backward test); lower is better",
      flickerIndex: "mean |L_t - L_{t-1}| of the mean BT.601 luma in [0, 1]; lower is better",
      edgeF1: "F1 of Canny(output_t) against Canny(source_t); higher is better",
    },
    ...meter.summary(),
    perFrame: meter.series,
  };
}
