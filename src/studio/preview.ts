/**
 * Control-map previews of one frame of a clip, as the engine makes them: the source frame at the
 * chosen size (src/engine/source.ts: ffmpeg decode, OpenCV colours, area resize), its Canny edges
 * (src/control/canny.ts), the Farneback flow to it from the previous frame, colour-coded like
 * `steadyframe controls` (src/cli/commands/flow-color.ts), the forward-backward consistency mask
 * (occlusions in black), and, with a depth model, its depth map (normalised over the frame).
 *
 * The last opened clip stays open, so stepping through frames decodes forward only; requests are
 * served one at a time.
 */
import sharp from "sharp";
import { InvalidArgumentError } from "../errors.js";
import type { Image } from "../image.js";
import { cannySync } from "../control/canny.js";
import { DepthEstimator, normalizeDepthMaps } from "../control/depth.js";
import { toGraySync } from "../control/gray.js";
import { loadCv } from "../control/opencv.js";
import { SourceVideo } from "../engine/source.js";
import { flowMagnitudes, flowToColor } from "../cli/commands/flow-color.js";
import type { PreviewMap, PreviewRequest, PreviewResponse } from "./api.js";

export async function pngDataUrl(img: Image): Promise<string> {
  const raw = sharp(img.data, { raw: { width: img.width, height: img.height, channels: img.channels } });
  const png = await (img.channels === 1 ? raw.toColourspace("b-w") : raw).png().toBuffer();
  return `data:image/png;base64,${png.toString("base64")}`;
}

function fraction(img: Image, pred: (v: number) => boolean): number {
  let n = 0;
  for (const v of img.data) if (pred(v)) n++;
  return n / img.data.length;
}

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;

export class Previewer {
  private open: { key: string; source: SourceVideo } | undefined;
  private depth: Promise<DepthEstimator> | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly depthModel: string | undefined) {}

  /** The maps of `request.frame` of the clip at `clipPath` (a resolved path). */
  preview(clipPath: string, request: PreviewRequest, signal?: AbortSignal): Promise<PreviewResponse> {
    const run = this.queue.then(() => this.make(clipPath, request, signal));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async source(
    path: string,
    width: number,
    height: number,
    signal?: AbortSignal,
  ): Promise<SourceVideo> {
    const key = `${path}|${width}x${height}`;
    if (this.open?.key === key) return this.open.source;
    await this.open?.source.close();
    this.open = undefined;
    const source = await SourceVideo.open(path, { width, height, ...(signal ? { signal } : {}) });
    this.open = { key, source };
    return source;
  }

  private async make(clipPath: string, r: PreviewRequest, signal?: AbortSignal): Promise<PreviewResponse> {
    const source = await this.source(clipPath, r.width, r.height, signal);
    if (!Number.isInteger(r.frame) || r.frame < 0 || r.frame >= source.frames)
      throw new InvalidArgumentError("frame", `a frame index from 0 to ${source.frames - 1}`, r.frame);
    const cv = await loadCv();
    const frame = await source.frame(r.frame);
    const edges = cannySync(cv, toGraySync(cv, frame), r.canny);
    const maps: PreviewMap[] = [
      {
        name: "source",
        label: "Source frame",
        params: `frame ${r.frame} of ${source.frames}, ${r.width}x${r.height} (area resize)`,
        png: await pngDataUrl(frame),
      },
      {
        name: "canny",
        label: "Canny edges",
        params: `thresholds ${r.canny.threshold1}, ${r.canny.threshold2}; ${pct(fraction(edges, (v) => v !== 0))} edge pixels`,
        png: await pngDataUrl(edges),
      },
    ];
    if (source.frames >= 2) {
      // Frame 0 has no predecessor: it shows the flow to frame 1 instead.
      const pair = r.frame === 0 ? 1 : r.frame;
      const flow = await source.flow(pair);
      const { mean, max } = flowMagnitudes(flow.forward);
      maps.push(
        {
          name: "flow",
          label: "Optical flow",
          params: `Farneback, frame ${pair - 1} → ${pair}; hue = direction, brightness = magnitude (full at ${r.flowScale} px); mean ${mean.toFixed(2)} px, max ${max.toFixed(2)} px`,
          png: await pngDataUrl(flowToColor(flow.forward, r.flowScale)),
        },
        {
          name: "occlusion",
          label: "Occlusion mask",
          params: `forward-backward check on frame ${pair}; white = consistent (${pct(fraction(flow.consistent, (v) => v !== 0))}), black = occluded`,
          png: await pngDataUrl(flow.consistent),
        },
      );
    }
    if (this.depthModel !== undefined) {
      this.depth ??= DepthEstimator.create(this.depthModel);
      const estimator = await this.depth;
      const [depth] = normalizeDepthMaps([await estimator.estimate(frame)], "frame");
      if (depth)
        maps.push({
          name: "depth",
          label: "Depth",
          params: `${this.depthModel.split("/").pop() ?? "depth model"}, normalised over the frame (bright = near)`,
          png: await pngDataUrl(depth),
        });
    }
    return { clip: "", frame: r.frame, frames: source.frames, width: r.width, height: r.height, maps };
  }

  async close(): Promise<void> {
    await this.queue;
    await this.open?.source.close();
    this.open = undefined;
    const depth = await this.depth?.catch(() => undefined);
    await depth?.release();
  }
}
