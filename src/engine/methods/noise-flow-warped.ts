/**
 * Noise `flow-warped` — noise that moves with the source: frame 0 takes its own draw; frame i takes
 * frame i-1's noise warped along the source's optical flow onto frame i (nearest sampling on the
 * latent grid, so the values stay standard normal), and its own fresh draw where the flow is
 * inconsistent (occlusions, disocclusions). The optical-flow noise of Control-A-Video's paper.
 */
import { InvalidArgumentError } from "../../errors.js";
import { tensor, type HostTensor } from "../../tensor.js";
import { blendLatents, latentFlow, latentMask, warpLatents } from "../latent-warp.js";
import type { VideoMethod } from "../method.js";

export function flowWarpedNoise(): VideoMethod {
  let previous: { index: number; noise: HostTensor<"float32"> } | undefined;
  return {
    id: "noise:flow-warped",
    role: "noise",
    check(_info, ctx) {
      if (ctx.methods.some((m) => m.firstBatch))
        throw new InvalidArgumentError(
          "--noise flow-warped",
          "frames generated in order (not with --attention keyframes)",
          "keyframes",
        );
      if (!ctx.hasSource)
        throw new InvalidArgumentError(
          "--noise flow-warped",
          "a source video (the flow comes from it)",
          "none",
        );
    },
    frameSeed: (i, info) => info.seed + BigInt(i),
    async initialNoise(ctx, own) {
      const [, h, w] = ctx.info.latentShape;
      let noise = own;
      const si = ctx.sourceIndex;
      if (ctx.index > 0 && previous?.index === ctx.index - 1 && ctx.source && si !== undefined && si > 0) {
        const pair = await ctx.source.flow(si);
        const warped = warpLatents(previous.noise, latentFlow(pair.backward, h, w), "nearest");
        noise = blendLatents(warped, own, latentMask(pair.consistent, h, w));
      } else if (ctx.index > 0 && previous?.index !== ctx.index - 1) {
        throw new InvalidArgumentError("--noise flow-warped", "frames generated in order", ctx.index, {
          hint: "flow-warped noise chains each frame to the previous one",
        });
      }
      previous = { index: ctx.index, noise };
      return noise;
    },
    saveState: () =>
      previous
        ? { noise: previous.noise, index: tensor("float32", [1], Float32Array.of(previous.index)) }
        : {},
    loadState(state) {
      const noise = state["noise"];
      const index = state["index"]?.data[0];
      if (noise && index !== undefined) previous = { index, noise };
    },
  };
}
