/**
 * The names the CLI and the library use for the consistency methods, and the one place that turns
 * them into method objects (each method lives in its own file under ./methods/).
 */
import { InvalidArgumentError } from "../errors.js";
import type { Image } from "../image.js";
import type { SourceAccess, VideoMethod } from "./method.js";
import type { Annotator } from "./methods/annotator.js";
import { atlasGuided } from "./methods/atlas-guided.js";
import { firstFrameAttention } from "./methods/attention-first.js";
import { keyframeAttention } from "./methods/attention-keyframes.js";
import { sparseCausalAttention } from "./methods/attention-sparse-causal.js";
import { contentFlow } from "./methods/content-flow.js";
import { interpolatedControls } from "./methods/controls-interpolated.js";
import { previousOutputControls } from "./methods/controls-previous-output.js";
import { sourceControls } from "./methods/controls-source.js";
import { flowFusion } from "./methods/fusion-flow.js";
import { fixedNoise } from "./methods/noise-fixed.js";
import { flowWarpedNoise } from "./methods/noise-flow-warped.js";
import { mixedNoise } from "./methods/noise-mixed.js";
import { perFrameNoise } from "./methods/noise-per-frame.js";
import { sharedNoise } from "./methods/noise-shared.js";

export const CONTROLS_FROM = ["source", "previous-output", "interpolated", "content-flow"] as const;
export const NOISE = ["per-frame", "fixed", "shared", "mixed", "flow-warped"] as const;
export const ATTENTION = ["per-frame", "first", "first+previous", "keyframes"] as const;
export const FUSION = ["none", "flow", "atlas"] as const;

export type ControlsFrom = (typeof CONTROLS_FROM)[number];
export type NoiseMode = (typeof NOISE)[number];
export type AttentionMode = (typeof ATTENTION)[number];
export type FusionMode = (typeof FUSION)[number];

/** One render's choice of methods and their knobs. */
export interface Strategy {
  readonly controlsFrom: ControlsFrom;
  readonly noise: NoiseMode;
  readonly attention: AttentionMode;
  readonly fusion: FusionMode;
  /** --interpolate: in-between frames per source pair (controls-from interpolated). */
  readonly interpolate?: number;
  /** --interpolate-mode: blend (the study's addWeighted) or flow-warped maps. */
  readonly interpolateMode?: "blend" | "flow";
  /** --strength: img2img strength of content-flow and of atlas fusion's starts. */
  readonly strength?: number;
  /** --noise-ratio: residual share of mixed noise. */
  readonly noiseRatio?: number;
  /** --keyframes: key frame count of keyframes attention. */
  readonly keyframes?: number;
  /** --fusion-strength and --fusion-end of flow fusion. */
  readonly fusionStrength?: number;
  readonly fusionEnd?: number;
}

export function checkChoice<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value))
    throw new InvalidArgumentError(flag, `one of ${allowed.join(", ")}`, value);
  return value as T;
}

/** The methods of a strategy. `videos` = 2 with classifier-free guidance, else 1. */
export function strategyMethods(
  s: Strategy,
  context: {
    readonly annotators: readonly Annotator[];
    readonly videos: number;
    readonly source?: SourceAccess;
    readonly firstControlImage?: Image;
  },
): VideoMethod[] {
  const methods: VideoMethod[] = [];
  const { annotators } = context;
  switch (s.controlsFrom) {
    case "source":
      if (annotators.length > 0) methods.push(sourceControls(annotators));
      break;
    case "previous-output":
      methods.push(previousOutputControls(annotators, context.firstControlImage));
      break;
    case "interpolated":
      methods.push(interpolatedControls(annotators, s.interpolate ?? 1, s.interpolateMode ?? "blend"));
      break;
    case "content-flow":
      methods.push(contentFlow(s.strength ?? 0.6));
      break;
  }
  switch (s.noise) {
    case "per-frame":
      methods.push(perFrameNoise());
      break;
    case "fixed":
      methods.push(fixedNoise());
      break;
    case "shared":
      methods.push(sharedNoise());
      break;
    case "mixed":
      methods.push(mixedNoise(s.noiseRatio ?? 0.2));
      break;
    case "flow-warped":
      methods.push(flowWarpedNoise());
      break;
  }
  switch (s.attention) {
    case "per-frame":
      break;
    case "first":
      methods.push(firstFrameAttention(context.videos));
      break;
    case "first+previous":
      methods.push(sparseCausalAttention(context.videos));
      break;
    case "keyframes":
      methods.push(keyframeAttention(context.videos, s.keyframes ?? 4));
      break;
  }
  if (s.fusion === "flow") {
    methods.push(
      flowFusion(context.source, {
        ...(s.fusionStrength === undefined ? {} : { strength: s.fusionStrength }),
        ...(s.fusionEnd === undefined ? {} : { end: s.fusionEnd }),
      }),
    );
  }
  if (s.fusion === "atlas") {
    methods.push(atlasGuided(context.source, s.strength === undefined ? {} : { strength: s.strength }));
  }
  return methods;
}

/** A short label: "source/shared/first/none". */
export function strategyName(s: Strategy): string {
  return `${s.controlsFrom}/${s.noise}/${s.attention}/${s.fusion}`;
}

/** Parses "controls/noise/attention/fusion" (trailing parts default to the given strategy's). */
export function parseStrategy(text: string, defaults: Strategy): Strategy {
  const [c, n, a, f, ...rest] = text.split("/");
  if (rest.length > 0)
    throw new InvalidArgumentError("--strategies", "entries like source/shared/first/none", text);
  return {
    ...defaults,
    controlsFrom: c ? checkChoice("--strategies (controls)", c, CONTROLS_FROM) : defaults.controlsFrom,
    noise: n ? checkChoice("--strategies (noise)", n, NOISE) : defaults.noise,
    attention: a ? checkChoice("--strategies (attention)", a, ATTENTION) : defaults.attention,
    fusion: f ? checkChoice("--strategies (fusion)", f, FUSION) : defaults.fusion,
  };
}
