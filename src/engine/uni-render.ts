/**
 * `steadyframe video --uni uni.ckpt`: the per-frame engine over a Uni-ControlNet (the founding study's
 * model). Its local adapter is the render's one control (reading the `--local` conditions of each frame,
 * computed by src/control/annotators from the source or the previous output, as the controls method
 * says); its global adapter takes a content image: a fixed `--global IMG`, or `previous` (each frame
 * the previous frame's output: reference method ./methods/global-previous.ts). The four study
 * strategies run unchanged on top (local only, global only, both; `content-flow` with `--global
 * previous` is strategy 4 with the global adapter). Loading goes through src/pipeline/uni-controlnet-load.ts
 * (the SD-1.5 parts through the existing loaders); the components through src/pipeline/uni-video.ts.
 */
import { stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { readJsonFile } from "../config/parse.js";
import {
  AnnotatorSet,
  type ConditionName,
  type ConditionWeights,
  checkConditionName,
} from "../control/annotators/index.js";
import { readImageFile } from "../control/png.js";
import { FileNotFoundError, InvalidArgumentError } from "../errors.js";
import type { Image } from "../image.js";
import type { CrossFrameSetting } from "../models/unet/build.js";
import { readPipelineFolder } from "../pipeline/components.js";
import type { VideoComponents } from "../pipeline/types.js";
import { loadUniPipeline } from "../pipeline/uni-controlnet-load.js";
import { uniVideoComponents } from "../pipeline/uni-video.js";
import type { LongTaskOptions } from "../progress.js";
import type { Annotator } from "./methods/annotator.js";
import { globalFromPrevious } from "./methods/global-previous.js";
import type { VideoMethod } from "./method.js";
import { identity } from "./render-common.js";
import type { VideoRenderSettings } from "./render.js";

/** A Uni-ControlNet render's model settings. */
export interface UniRenderSetting {
  /** The original uni.ckpt (or a safetensors copy). */
  readonly checkpoint: string;
  /** Local conditions each frame supplies (canny, mlsd, hed, sketch, openpose, depth, seg); may be empty. */
  readonly local: readonly ConditionName[];
  /** (optional) the content image: a file, or "previous" (the previous frame's output). */
  readonly global?: string;
  /** (optional, default 1) local_strength. */
  readonly localStrength?: number;
  /** (optional, default 1) global_strength. */
  readonly globalStrength?: number;
  /** (optional) the CLIP ViT-L/14 image encoder folder (needed with `global`). */
  readonly imageEncoder?: string;
  /** (optional) annotator weight files for the local conditions that need a network. */
  readonly annotators?: Omit<ConditionWeights, "depth">;
}

/** The flag that passes each annotator weight file (for messages). */
const WEIGHT_FLAGS = {
  hed: "--hed",
  mlsd: "--mlsd",
  sketch: "--sketch",
  openpose: "--openpose",
  depth: "--depth",
  seg: "--seg",
} as const;
const NEEDS: Readonly<Record<ConditionName, readonly (keyof typeof WEIGHT_FLAGS)[]>> = {
  canny: [],
  mlsd: ["mlsd"],
  hed: ["hed"],
  sketch: ["hed", "sketch"],
  openpose: ["openpose"],
  depth: ["depth"],
  seg: ["seg"],
};

/** Every check of the Uni settings that needs no model (names, files, combinations). */
export async function checkUniRender(settings: VideoRenderSettings, uni: UniRenderSetting): Promise<void> {
  for (const [flag, given] of [
    ["--controlnet", (settings.controlnets ?? []).length > 0],
    ["--t2i-adapter", settings.t2iAdapter !== undefined],
    ["--ip-adapter", settings.ipAdapter !== undefined],
    ["--lora", (settings.loras ?? []).length > 0],
    ["--motion-adapter/--motion-field", settings.motion !== undefined],
  ] as const) {
    if (given)
      throw new InvalidArgumentError(flag, `nothing of the kind with --uni`, "given", {
        hint: "Uni-ControlNet brings its own controls (--local, --global); drop the flag or --uni",
      });
  }
  const seen = new Set<string>();
  for (const name of uni.local) {
    checkConditionName(name);
    if (seen.has(name))
      throw new InvalidArgumentError("--local", "distinct condition names", uni.local.join(","));
    seen.add(name);
    for (const need of NEEDS[name]) {
      const path = need === "depth" ? settings.depthModel : uni.annotators?.[need];
      if (path === undefined)
        throw new InvalidArgumentError(
          WEIGHT_FLAGS[need],
          `the annotator weights for --local ${name}`,
          undefined,
          {
            hint: `pass ${WEIGHT_FLAGS[need]} FILE (see docs/uni-controlnet.md)`,
          },
        );
      if ((await stat(path).catch(() => undefined))?.isFile() !== true)
        throw new FileNotFoundError(path, `${WEIGHT_FLAGS[need]} annotator weights`);
    }
  }
  if (uni.global !== undefined && uni.imageEncoder === undefined)
    throw new InvalidArgumentError("--image-encoder", "a CLIP image encoder folder for --global", undefined, {
      hint: "pass --image-encoder DIR (openai/clip-vit-large-patch14 as CLIPVisionModelWithProjection)",
    });
  if (uni.local.length === 0 && uni.global === undefined)
    throw new InvalidArgumentError("--local / --global", "at least one Uni-ControlNet condition", "none");
  if (settings.strategy.controlsFrom === "content-flow" && uni.local.length > 0)
    throw new InvalidArgumentError(
      "--local",
      "no local conditions with --controls-from content-flow",
      uni.local.join(","),
      {
        hint: "strategy 4 takes the content of the previous frame (--global previous) instead of control maps",
      },
    );
}

/** One annotator per local condition (their networks loaded once, released with the render). */
export function uniAnnotators(
  settings: VideoRenderSettings,
  uni: UniRenderSetting,
  releases: (() => Promise<void>)[],
): Annotator[] {
  if (uni.local.length === 0) return [];
  const set = new AnnotatorSet({
    weights: { ...(uni.annotators ?? {}), ...(settings.depthModel ? { depth: settings.depthModel } : {}) },
    optionNames: WEIGHT_FLAGS,
    ...(settings.canny
      ? { canny: { threshold1: settings.canny.threshold1, threshold2: settings.canny.threshold2 } }
      : {}),
  });
  releases.push(() => set.release());
  return uni.local.map((name) => ({ kind: name, annotate: (frame) => set.compute(name, frame) }));
}

/** The reference method and the fixed content image of the render. */
export async function uniReferences(
  uni: UniRenderSetting,
): Promise<{ methods: VideoMethod[]; globalReference?: readonly Image[] }> {
  if (uni.global === undefined) return { methods: [] };
  if (uni.global === "previous") return { methods: [globalFromPrevious()] };
  return { methods: [], globalReference: [await readImageFile(uni.global)] };
}

/** What the frames depend on (the render's fingerprint). */
export async function uniFingerprint(uni: UniRenderSetting): Promise<Record<string, unknown>> {
  const annotators: Record<string, string> = {};
  for (const [k, v] of Object.entries(uni.annotators ?? {})) if (v) annotators[k] = await identity(v);
  return {
    checkpoint: await identity(uni.checkpoint),
    local: uni.local,
    global:
      uni.global === undefined || uni.global === "previous"
        ? (uni.global ?? null)
        : await identity(uni.global),
    localStrength: uni.localStrength ?? 1,
    globalStrength: uni.globalStrength ?? 1,
    imageEncoder: uni.imageEncoder ? resolve(uni.imageEncoder) : null,
    annotators,
  };
}

/** A loaded Uni-ControlNet pipeline as the render's pipeline (videoComponents + release). */
export async function loadUniRenderPipeline(
  settings: VideoRenderSettings,
  uni: UniRenderSetting,
  crossFrame: CrossFrameSetting | undefined,
  options: LongTaskOptions = {},
): Promise<{ videoComponents(scheduler?: string): VideoComponents; release(): Promise<void> }> {
  const folder = await readPipelineFolder(settings.config ?? settings.model, { requireWeights: false });
  const schedulerDir = folder.components.get("scheduler")?.dir;
  const schedulerConfig = (
    schedulerDir === undefined ? {} : await readJsonFile(join(schedulerDir, "scheduler_config.json"))
  ) as Record<string, unknown>;
  const className =
    typeof schedulerConfig["_class_name"] === "string" ? schedulerConfig["_class_name"] : "DDIMScheduler";
  const p = await loadUniPipeline(uni.checkpoint, {
    ...(settings.config ? { configDir: settings.config } : { model: settings.model }),
    ...(uni.imageEncoder ? { imageEncoder: uni.imageEncoder } : {}),
    ...(crossFrame ? { crossFrame } : {}),
    ...(settings.device ? { executionProviders: settings.device } : {}),
    ...(settings.cacheDir ? { cacheDir: settings.cacheDir } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  return {
    videoComponents: (scheduler) =>
      uniVideoComponents(p, {
        local: uni.local,
        ...(uni.globalStrength === undefined ? {} : { globalStrength: uni.globalStrength }),
        guidanceScale: settings.guidanceScale ?? 7.5,
        scheduler: scheduler ?? className,
        schedulerConfig,
      }),
    release: () => p.release(),
  };
}
