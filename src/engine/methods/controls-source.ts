/**
 * Controls from `source` — the founding study's strategy 1: each frame's control maps are computed
 * from the matching source frame (one annotator per ControlNet).
 */
import { InvalidArgumentError } from "../../errors.js";
import type { VideoMethod } from "../method.js";
import type { Annotator } from "./annotator.js";

export function sourceControls(annotators: readonly Annotator[]): VideoMethod {
  return {
    id: "controls:source",
    role: "controls",
    settings: { annotators: annotators.map((a) => ({ kind: a.kind, ...a.settings })) },
    check(_info, ctx) {
      if (!ctx.hasSource)
        throw new InvalidArgumentError("--controls-from source", "a source video", "none", {
          hint: "give the source video as the first argument, or drop --controlnet for text-only generation",
        });
      if (annotators.length !== ctx.controlNets)
        throw new InvalidArgumentError(
          "--control",
          `${ctx.controlNets} (one per --controlnet)`,
          annotators.length,
        );
    },
    async controlImages(ctx) {
      const si = ctx.sourceIndex ?? ctx.index;
      if (!ctx.source) return undefined;
      const frame = await ctx.source.frame(si);
      return Promise.all(annotators.map((a) => a.annotate(frame)));
    },
  };
}
