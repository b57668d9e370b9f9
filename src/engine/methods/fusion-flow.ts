/**
 * Fusion `flow` — flow-guided latent fusion (Rerender-A-Video's shape-aware fusion, applied to the
 * latents): during the steps in [start, end) (fractions of the run), after each scheduler step the
 * fresh frame's latents are blended with the previous frame's latents *at the same step*, warped
 * along the source's optical flow onto this frame: z <- m * warp(z_prev) + (1 - m) * z, with
 * m = strength where the flow is consistent (the forward-backward check pooled to the latent grid)
 * and 0 in occlusions. Sequential: it needs the previous frame's per-step latents, which it keeps
 * (and stores with each frame, for resume).
 */
import { InvalidArgumentError } from "../../errors.js";
import { chunkBatch, concatBatch } from "../../pipeline/guidance.js";
import type { HostTensor } from "../../tensor.js";
import { blendLatents, latentFlow, latentMask, warpLatents } from "../latent-warp.js";
import type { SourceAccess, VideoMethod } from "../method.js";

export interface FlowFusionOptions {
  /** (optional, default 0) first step fraction fused. */
  readonly start?: number;
  /** (optional, default 0.5) fusion stops at this fraction of the steps. */
  readonly end?: number;
  /** (optional, default 0.8) blend weight of the warped previous latents in consistent cells. */
  readonly strength?: number;
}

export function flowFusion(source: SourceAccess | undefined, options: FlowFusionOptions = {}): VideoMethod {
  const start = options.start ?? 0;
  const end = options.end ?? 0.5;
  const strength = options.strength ?? 0.8;
  if (!(start >= 0 && start < end && end <= 1))
    throw new InvalidArgumentError("--fusion-steps", "0 <= start < end <= 1", [start, end]);
  if (!(strength >= 0 && strength <= 1))
    throw new InvalidArgumentError("--fusion-strength", "a number in [0, 1]", strength);
  let previous: { index: number; steps: readonly HostTensor<"float32">[] } | undefined;
  let sourceIndex: (i: number) => number | undefined = (i) => i;
  return {
    id: "fusion:flow",
    role: "fusion",
    sequential: true,
    keepStepLatents: true,
    settings: { start, end, strength },
    check(_info, ctx) {
      if (!ctx.hasSource || !source)
        throw new InvalidArgumentError("--fusion flow", "a source video (the flow comes from it)", "none");
      if (ctx.methods.some((m) => m.firstBatch))
        throw new InvalidArgumentError(
          "--fusion flow",
          "frames generated in order (not with --attention keyframes)",
          "keyframes",
        );
      const mapper = ctx.methods.find((m) => m.sourceIndex);
      if (mapper?.sourceIndex) sourceIndex = (i) => mapper.sourceIndex?.(i);
    },
    async afterStep(ctx) {
      const frac = ctx.stepIndex / ctx.numSteps;
      const k = ctx.fresh.indexOf(true);
      const index = ctx.slots[k];
      if (frac < start || frac >= end || index === undefined || index === 0 || !source) return undefined;
      if (previous?.index !== index - 1) return undefined;
      const prevLatents = previous.steps[ctx.stepIndex];
      const si = sourceIndex(index);
      if (!prevLatents || si === undefined || si < 1) return undefined;
      const [, , h = 0, w = 0] = ctx.latents.shape;
      const pair = await source.flow(si);
      const parts = chunkBatch(ctx.latents, ctx.slots.length);
      const warped = warpLatents(prevLatents, latentFlow(pair.backward, h, w), "bilinear");
      parts[k] = blendLatents(warped, parts[k]!, latentMask(pair.consistent, h, w), strength);
      return concatBatch(parts);
    },
    frameDone(frame) {
      previous = { index: frame.index, steps: frame.stepLatents ?? [] };
    },
    saveState: () => {
      if (!previous) return {};
      const out: Record<string, HostTensor<"float32">> = {};
      previous.steps.forEach((s, i) => (out[`step${i}`] = s));
      out["index"] = { dtype: "float32", shape: [1], data: Float32Array.of(previous.index) };
      return out;
    },
    loadState(state) {
      const index = state["index"]?.data[0];
      if (index === undefined) return;
      const steps: HostTensor<"float32">[] = [];
      for (let i = 0; state[`step${i}`]; i++) steps.push(state[`step${i}`]!);
      previous = { index, steps };
    },
  };
}
