/**
 * Content from `content-flow` — the founding study's strategy 4: no structure control is required;
 * the previous *generated* frame, warped by the source's optical flow (Farneback, frame i-1 -> i), is
 * the content of the next frame. Until Uni-ControlNet's global content adapter exists, the content
 * enters as an img2img start at `strength` (the `start` hook); the adapter will consume the same
 * warped frame through its own hook, leaving this method unchanged. Frame 0 starts from noise.
 */
import { InvalidArgumentError } from "../../errors.js";
import { loadCv } from "../../control/opencv.js";
import { warpImageSync } from "../../control/warp.js";
import { imageToTensor } from "../../pipeline/images.js";
import { checkStrength } from "../../pipeline/img2img.js";
import type { VideoMethod } from "../method.js";

export function contentFlow(strength = 0.6): VideoMethod {
  checkStrength(strength, "--strength");
  return {
    id: "controls:content-flow",
    role: "controls",
    sequential: true,
    settings: { strength },
    check(_info, ctx) {
      if (!ctx.hasSource)
        throw new InvalidArgumentError(
          "--controls-from content-flow",
          "a source video (the flow comes from it)",
          "none",
        );
      if (ctx.controlNets > 0)
        throw new InvalidArgumentError(
          "--controls-from content-flow",
          "no --controlnet (content replaces the control maps)",
          ctx.controlNets,
          {
            hint: "drop --controlnet, or use --controls-from source with --fusion flow for structure plus flow",
          },
        );
      if (ctx.methods.some((m) => m.anchors))
        throw new InvalidArgumentError(
          "--attention",
          "per-frame with content-flow",
          ctx.methods.find((m) => m.anchors)?.id,
          {
            hint: "content-flow starts each frame part-way from the previous output, so it cannot share self-attention with frames that start from noise",
          },
        );
    },
    controlImages: () => Promise.resolve([]),
    async start(ctx) {
      if (ctx.index === 0 || !ctx.source) return undefined;
      const si = ctx.sourceIndex ?? ctx.index;
      const previous = await ctx.output(ctx.index - 1);
      const pair = await ctx.source.flow(si);
      const warped = warpImageSync(await loadCv(), previous, pair.backward, {
        interpolation: "linear",
        borderMode: "replicate",
      });
      return { image: imageToTensor(warped, "0,1"), strength };
    },
  };
}
