/**
 * Controls from `previous-output` — the founding study's strategy 2 ("true generation"): frame 0's
 * control maps come from the source frame 0 (or a given image); every later frame's maps are computed
 * from the previously *generated* frame. Sequential by nature; errors accumulate (methods.md pitfall
 * 5), which is what the study measured.
 */
import { InvalidArgumentError } from "../../errors.js";
import type { Image } from "../../image.js";
import type { VideoMethod } from "../method.js";
import type { Annotator } from "./annotator.js";

export function previousOutputControls(annotators: readonly Annotator[], firstImage?: Image): VideoMethod {
  return {
    id: "controls:previous-output",
    role: "controls",
    sequential: true,
    settings: {
      annotators: annotators.map((a) => ({ kind: a.kind, ...a.settings })),
      firstImage: firstImage !== undefined,
    },
    check(_info, ctx) {
      if (ctx.controlNets === 0)
        throw new InvalidArgumentError(
          "--controls-from previous-output",
          "at least one --controlnet",
          "none",
          {
            hint: "the maps of the previous output need a ControlNet to act on",
          },
        );
      if (!ctx.hasSource && firstImage === undefined)
        throw new InvalidArgumentError(
          "--controls-from previous-output",
          "a source video or --first-control-image for frame 0",
          "neither",
        );
      if (annotators.length !== ctx.controlNets)
        throw new InvalidArgumentError(
          "--control",
          `${ctx.controlNets} (one per --controlnet)`,
          annotators.length,
        );
      if (ctx.methods.some((m) => m.firstBatch))
        throw new InvalidArgumentError(
          "--controls-from previous-output",
          "frames generated in order (not with --attention keyframes)",
          "keyframes",
        );
    },
    async controlImages(ctx) {
      const from =
        ctx.index === 0 ? (firstImage ?? (await ctx.source?.frame(0))) : await ctx.output(ctx.index - 1);
      if (!from) return undefined;
      return Promise.all(annotators.map((a) => a.annotate(from)));
    },
  };
}
