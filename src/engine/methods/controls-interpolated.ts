/**
 * Controls `interpolated` — the founding study's strategy 3: control maps between consecutive source
 * frames, also to raise the frame rate. With `inBetween` = n, each source pair gets n extra output
 * frames; output frame i = k * (n + 1) + j shows source frame k when j = 0, else a map at
 * t = j / (n + 1) between the maps of frames k and k + 1:
 * - "blend": the study's `cv2.addWeighted(prev, 1 - t, curr, t, 0)` (double edges where things move);
 * - "flow": both maps moved along the optical flow before blending (control/flow-warp-edges.ts).
 * Output frames: (sourceFrames - 1) * (n + 1) + 1.
 */
import { InvalidArgumentError } from "../../errors.js";
import { flowWarpEdgeMaps } from "../../control/flow-warp-edges.js";
import { blendEdgeMaps } from "../../control/interpolate.js";
import type { VideoMethod } from "../method.js";
import type { Annotator } from "./annotator.js";

export function interpolatedControls(
  annotators: readonly Annotator[],
  inBetween: number,
  mode: "blend" | "flow" = "blend",
): VideoMethod {
  if (!Number.isInteger(inBetween) || inBetween < 0)
    throw new InvalidArgumentError(
      "--interpolate",
      "an integer >= 0 (frames between two source frames)",
      inBetween,
    );
  const step = inBetween + 1;
  return {
    id: "controls:interpolated",
    role: "controls",
    settings: { inBetween, mode, annotators: annotators.map((a) => ({ kind: a.kind, ...a.settings })) },
    check(_info, ctx) {
      if (!ctx.hasSource)
        throw new InvalidArgumentError("--controls-from interpolated", "a source video", "none");
      if (ctx.sourceFrames < 2)
        throw new InvalidArgumentError(
          "source video",
          "at least 2 frames to interpolate between",
          ctx.sourceFrames,
        );
      if (annotators.length !== ctx.controlNets)
        throw new InvalidArgumentError(
          "--control",
          `${ctx.controlNets} (one per --controlnet)`,
          annotators.length,
        );
    },
    outputFrames: (sourceFrames) => (sourceFrames - 1) * step + 1,
    sourceIndex: (i) => (i % step === 0 ? i / step : undefined),
    async controlImages(ctx) {
      const source = ctx.source;
      if (!source) return undefined;
      const k = Math.floor(ctx.index / step);
      const j = ctx.index % step;
      const a = await source.frame(k);
      const mapsA = await Promise.all(annotators.map((x) => x.annotate(a)));
      if (j === 0) return mapsA;
      const b = await source.frame(k + 1);
      const mapsB = await Promise.all(annotators.map((x) => x.annotate(b)));
      const t = j / step;
      if (mode === "blend") return mapsA.map((m, n) => blendEdgeMaps(m, mapsB[n]!, t));
      const pair = await source.flow(k + 1);
      return Promise.all(
        mapsA.map(
          async (m, n) => (await flowWarpEdgeMaps(m, mapsB[n]!, pair.forward, pair.backward, [t]))[0]!,
        ),
      );
    },
  };
}
