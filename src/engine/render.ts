/**
 * `renderVideo(settings)`: a whole render as the `video` command runs it — check everything that can
 * be checked before a model loads (sizes, strategy combinations, the output path, an unfinished render
 * to resume), open the source video, load the pipeline with the attention method's cross-frame
 * setting, generate every frame into the work folder (./work-folder.ts), then publish the output: a
 * PNG folder with `run.json` and `metrics.json`, or a video file with `<name>.run.json` and
 * `<name>.metrics.json` beside it. Nothing is published unless every frame is there.
 *
 * With `settings.motion` the frames come from a whole-video pipeline instead (AnimateDiff motion
 * modules or Text2Video-Zero: ./motion-render.ts); the publish step (./render-common.ts) is shared.
 */
import { resolve } from "node:path";
import { UnsupportedError, throwIfAborted } from "../errors.js";
import type { Image } from "../image.js";
import { readImageFile } from "../control/png.js";
import { identityLock } from "./methods/identity-lock.js";
import { renderTunedVideo, type TunedSettings } from "./tuned-render.js";
import {
  type UniRenderSetting,
  checkUniRender,
  loadUniRenderPipeline,
  uniAnnotators,
  uniFingerprint,
  uniReferences,
} from "./uni-render.js";
import type { VideoComponents } from "../pipeline/types.js";
import type { ExecutionProvider } from "../runtime/session.js";
import type { LoraSetting } from "../weights/lora/index.js";
import type { EmbeddingSetting } from "../weights/embeddings/index.js";
import { StableDiffusionPipeline } from "../pipeline/stable-diffusion.js";
import type { LongTaskOptions } from "../progress.js";
import type { CrossFrameSetting } from "../models/unet/build.js";
import { generateVideo, planRender, type GenerateVideoOptions } from "./generate-video.js";
import type { RenderInfo, VideoMethod } from "./method.js";
import { renderMotionVideo, type MotionSettings } from "./motion-render.js";
import type { PromptSchedule } from "./prompt-schedule.js";
import {
  addOnIdentities,
  annotatorsFor,
  defaultSize,
  identity,
  inspectRender,
  isFolderOutput,
  packageVersion,
  publishRender,
} from "./render-common.js";
import { SourceVideo } from "./source.js";
import { strategyMethods, strategyName, type Strategy } from "./strategies.js";
import { WorkFolder } from "./work-folder.js";

export { defaultSize };
export type { MotionSettings };

export type ControlKind = "canny" | "depth" | "softedge";

export interface ControlNetSetting {
  /** A ControlNet folder or original single file. */
  readonly path: string;
  /** Which map of each frame it reads. */
  readonly control: ControlKind;
  readonly scale?: number;
  readonly guidanceStart?: number;
  readonly guidanceEnd?: number;
}

/** An IP-Adapter and what it is conditioned on. */
export interface IpAdapterRenderSetting {
  /** The adapter file (ip-adapter_sd15.safetensors, ip-adapter-plus_sd15.safetensors, .bin). */
  readonly file: string;
  /** (optional) the CLIP image encoder folder; default image_encoder/ beside the file. */
  readonly imageEncoder?: string;
  /** A reference image file, or "first-output": frame 0's own output (identity lock). */
  readonly image: string;
  /** (optional, default 1) the ip scale. */
  readonly scale?: number;
}

export interface T2IAdapterSetting {
  readonly path: string;
  readonly control: ControlKind;
  readonly scale?: number;
}

export interface VideoRenderSettings {
  /** Source video (file or PNG folder); optional for text-only generation. */
  readonly source?: string;
  /** Diffusers folder or single-file checkpoint. */
  readonly model: string;
  /** Config folder for a single-file checkpoint. */
  readonly config?: string;
  readonly controlnets?: readonly ControlNetSetting[];
  /**
   * (optional) a T2I-Adapter (diffusers T2IAdapter folder), a cheaper control than a ControlNet: it
   * reads the map `control` names, after the ControlNets' maps; `scale` is adapter_conditioning_scale.
   */
  readonly t2iAdapter?: T2IAdapterSetting;
  /** (optional) an IP-Adapter with a reference image or frame 0's output (identity lock). */
  readonly ipAdapter?: IpAdapterRenderSetting;
  /**
   * (optional) a Uni-ControlNet (uni.ckpt) with its local conditions and content image, on the SD-1.5
   * folder `model` (its text encoder, VAE, tokenizer and scheduler); see ./uni-render.ts.
   */
  readonly uni?: UniRenderSetting;
  /**
   * (optional) a Tune-A-Video render: the tuned folder's inflated UNet generates the whole clip from
   * the inverted source (`strategy` is then not used); see ./tuned-render.ts.
   */
  readonly tuned?: TunedSettings;
  /** (optional) LoRA files fused into the UNet and text encoder at load, each with its scale. */
  readonly loras?: readonly LoraSetting[];
  /** (optional, default false) keep the LoRAs unfused, their scales live model inputs. */
  readonly liveLoras?: boolean;
  /** (optional) textual-inversion embeddings (their words usable in the prompts). */
  readonly embeddings?: readonly EmbeddingSetting[];
  /** (optional) a Tiny AutoEncoder (TAESD) that decodes instead of the model's VAE. */
  readonly tinyVae?: string;
  /** ONNX depth model (for --control depth) and soft-edge model (for --control softedge). */
  readonly depthModel?: string;
  readonly softEdgeModel?: string;
  readonly canny?: { readonly threshold1: number; readonly threshold2: number };
  readonly prompt: PromptSchedule;
  readonly negativePrompt?: string;
  /** (optional, default "plain") "a1111": A1111 prompt weights, BREAK and 75-token chunks. */
  readonly promptSyntax?: "plain" | "a1111";
  /** Output size; default: the source's aspect with the short side 512 (512x512 without a source). */
  readonly width?: number;
  readonly height?: number;
  readonly frames?: number;
  readonly steps?: number;
  readonly scheduler?: string;
  readonly guidanceScale?: number;
  readonly seed?: bigint;
  readonly eta?: number;
  readonly clipSkip?: number;
  readonly strategy: Strategy;
  /** Image for frame 0's control maps with controls-from previous-output and no source. */
  readonly firstControlImage?: string;
  /** New frames per batch. */
  readonly batch?: number;
  /** (optional) anchor cache budget in MiB (GenerateVideoOptions.anchorCacheMiB; not part of the run's fingerprint). */
  readonly anchorCacheMiB?: number | undefined;
  /** A folder (PNG sequence) or a .mp4/.webm/.gif/.mkv/.mov file. */
  readonly out: string;
  readonly resume?: boolean;
  /** Frame rate of a video output (default: the source's, else 8). */
  readonly fps?: number;
  readonly device?: readonly ExecutionProvider[];
  readonly cacheDir?: string;
  /**
   * (optional) generate the whole video with a motion pipeline instead of the per-frame engine
   * (`strategy` is then not used): AnimateDiff motion modules (`adapter`: a MotionAdapter folder or an
   * original motion-module file) with context windows, or Text2Video-Zero's motion field (`t2vZero`).
   * See ./motion-render.ts.
   */
  readonly motion?: MotionSettings;
}

export interface RenderedVideo {
  readonly out: string;
  readonly isFolder: boolean;
  readonly frames: number;
  readonly generated: number;
  readonly width: number;
  readonly height: number;
  readonly runJson: string;
  readonly secondsPerFrame: readonly number[];
  readonly strategy: string;
}

export interface RenderOptions extends LongTaskOptions {
  /** Called after each finished frame. */
  readonly onFrame?: (index: number, image: Image) => void;
  /** Computes metrics.json for the finished frames (the study module's); none when absent. */
  readonly metrics?: (framesDir: string, info: RenderInfo) => Promise<unknown>;
}

export async function renderVideo(
  settings: VideoRenderSettings,
  options: RenderOptions = {},
): Promise<RenderedVideo> {
  if (settings.motion && settings.promptSyntax === "a1111") {
    throw new UnsupportedError(
      "--prompt-syntax a1111 with the motion pipelines (--motion-adapter, --motion-field)",
      {
        hint: "use --prompt-syntax plain, or a per-frame strategy",
      },
    );
  }
  if (settings.tuned) return renderTunedVideo({ ...settings, tuned: settings.tuned }, options);
  if (settings.motion) return renderMotionVideo({ ...settings, motion: settings.motion }, options);
  const prepared = await prepareRender(settings, options);
  let pipeline: RenderPipeline | undefined;
  try {
    // 4. Models, built with the attention method's cross-frame setting
    pipeline = await loadRenderPipeline(settings, prepared, options);
    const components = pipeline.videoComponents(settings.scheduler);

    // 5. Frames
    const started = Date.now();
    const result = await generateVideo(components, {
      ...prepared.generateOptions,
      store: prepared.work,
      ...(options.onFrame ? { onFrame: options.onFrame } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    throwIfAborted(options.signal, "video");
    return await publishPreparedRender(settings, prepared, { generated: result.generated, started }, options);
  } finally {
    await pipeline?.release();
    await prepared.close();
  }
}

/**
 * What a render has checked and opened before any model loads (steps 1-3 of renderVideo): the
 * methods, the engine options, the plan, the resume fingerprint and the open work folder. The render
 * farm (src/farm/) prepares the same way on the coordinator and on every worker. `close()` releases
 * the annotators and the source.
 */
export interface PreparedRender {
  readonly isFolder: boolean;
  readonly methods: readonly VideoMethod[];
  readonly generateOptions: Omit<GenerateVideoOptions, "store">;
  readonly info: RenderInfo;
  /** Frame rate of a video output (x (N+1) for interpolated controls without --fps). */
  readonly fps: number;
  /** What the frames depend on: the work folder's settings.json, run.json's settings. */
  readonly fingerprint: Readonly<Record<string, unknown>>;
  readonly work: WorkFolder;
  readonly crossFrame: CrossFrameSetting | undefined;
  close(): Promise<void>;
}

/** Steps 1-3 of renderVideo (per-frame engine only): every check, the source, the work folder. */
export async function prepareRender(
  settings: VideoRenderSettings,
  options: RenderOptions = {},
): Promise<PreparedRender> {
  const isFolder = isFolderOutput(settings.out);
  // 1. Source and size
  const { probed, size, summary } = await inspectRender(settings);
  // An LCM-distilled UNet (time_cond_proj_dim) gets the guidance as an embedding: no CFG batch.
  const cfg = (settings.guidanceScale ?? 7.5) > 1 && summary.unetConfig.time_cond_proj_dim === null;
  const nets = settings.controlnets ?? [];
  const adapter = settings.t2iAdapter;
  const source = settings.source
    ? await SourceVideo.open(settings.source, {
        ...size,
        ...(settings.frames !== undefined && settings.strategy.controlsFrom !== "interpolated"
          ? { maxFrames: settings.frames }
          : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      })
    : undefined;
  const releases: (() => Promise<void>)[] = [];
  const close = async (): Promise<void> => {
    for (const r of releases) await r();
    await source?.close();
  };
  try {
    // 2. Annotators and methods, checked before any model loads
    const uni = settings.uni;
    if (uni) await checkUniRender(settings, uni);
    const annotators = uni
      ? uniAnnotators(settings, uni, releases)
      : await annotatorsFor({ ...settings, controlnets: [...nets, ...(adapter ? [adapter] : [])] }, releases);
    const uniRefs = uni ? await uniReferences(uni) : { methods: [] };
    const firstControlImage = settings.firstControlImage
      ? await readImageFile(settings.firstControlImage)
      : undefined;
    const ip = settings.ipAdapter;
    const ipReference =
      ip === undefined || ip.image === "first-output" ? undefined : [await readImageFile(ip.image)];
    const methods = [
      ...strategyMethods(settings.strategy, {
        annotators,
        videos: cfg ? 2 : 1,
        ...(source ? { source } : {}),
        ...(firstControlImage ? { firstControlImage } : {}),
      }),
      ...(ip?.image === "first-output" ? [identityLock()] : []),
      ...uniRefs.methods,
    ];
    const generateOptions = {
      prompt: settings.prompt,
      ...(settings.negativePrompt === undefined ? {} : { negativePrompt: settings.negativePrompt }),
      ...size,
      ...(settings.frames === undefined ? {} : { frames: settings.frames }),
      numInferenceSteps: settings.steps ?? 20,
      guidanceScale: settings.guidanceScale ?? 7.5,
      seed: settings.seed ?? 0n,
      ...(settings.eta === undefined ? {} : { eta: settings.eta }),
      ...(settings.clipSkip === undefined ? {} : { clipSkip: settings.clipSkip }),
      ...(settings.promptSyntax === "a1111" ? { promptSyntax: "a1111" as const } : {}),
      methods,
      batch: settings.batch ?? 1,
      ...(settings.anchorCacheMiB === undefined ? {} : { anchorCacheMiB: settings.anchorCacheMiB }),
      ...(source ? { source } : {}),
      controls: [
        ...(uni ? [{ scale: uni.localStrength ?? 1 }] : []),
        ...nets.map((n) => ({
          ...(n.scale === undefined ? {} : { scale: n.scale }),
          ...(n.guidanceStart === undefined ? {} : { guidanceStart: n.guidanceStart }),
          ...(n.guidanceEnd === undefined ? {} : { guidanceEnd: n.guidanceEnd }),
        })),
        ...(adapter ? [adapter.scale === undefined ? {} : { scale: adapter.scale }] : []),
      ],
      ...(ip
        ? { ipAdapter: { ...(ipReference ? { reference: ipReference } : {}), scale: ip.scale ?? 1 } }
        : {}),
      ...(uniRefs.globalReference ? { globalReference: uniRefs.globalReference } : {}),
    };
    const info = planRender(generateOptions, {
      vaeScaleFactor: summary.vaeScaleFactor,
      latentChannels: summary.unetConfig.in_channels,
      controlNets: uni ? uni.local.length : nets.length + (adapter ? 1 : 0),
      controlUnits: (uni ? 1 : 0) + nets.length + (adapter ? 1 : 0),
      ipAdapter: ip !== undefined,
      globalAdapter: uni !== undefined,
    });
    const fps = settings.fps ?? (probed ? probed.fps.num / probed.fps.den : 8);
    const interpolatedFps =
      settings.strategy.controlsFrom === "interpolated" && settings.fps === undefined
        ? fps * ((settings.strategy.interpolate ?? 1) + 1)
        : fps;

    // 3. What the frames depend on (compared on --resume), and the work folder
    const fingerprint = {
      model: await identity(settings.model),
      config: settings.config ? resolve(settings.config) : null,
      controlnets: await Promise.all(nets.map(async (n) => ({ ...n, path: await identity(n.path) }))),
      ...(adapter ? { t2iAdapter: { ...adapter, path: await identity(adapter.path) } } : {}),
      ...(uni ? { uni: await uniFingerprint(uni) } : {}),
      ...(ip
        ? {
            ipAdapter: {
              file: await identity(ip.file),
              imageEncoder: ip.imageEncoder ? resolve(ip.imageEncoder) : null,
              image: ip.image === "first-output" ? ip.image : await identity(ip.image),
              scale: ip.scale ?? 1,
            },
          }
        : {}),
      ...(await addOnIdentities(settings)),
      ...(settings.tinyVae ? { tinyVae: await identity(settings.tinyVae) } : {}),
      depthModel: settings.depthModel ? await identity(settings.depthModel) : null,
      softEdgeModel: settings.softEdgeModel ? await identity(settings.softEdgeModel) : null,
      canny: settings.canny ?? null,
      source: settings.source ? await identity(settings.source) : null,
      prompt: settings.prompt,
      negativePrompt: settings.negativePrompt ?? "",
      ...(settings.promptSyntax === "a1111" ? { promptSyntax: "a1111" } : {}),
      width: info.width,
      height: info.height,
      frames: info.frames,
      steps: info.numInferenceSteps,
      scheduler: settings.scheduler ?? null,
      guidanceScale: generateOptions.guidanceScale,
      seed: String(info.seed),
      eta: settings.eta ?? 0,
      clipSkip: settings.clipSkip ?? null,
      strategy: settings.strategy,
      methods: methods.map((m) => ({ id: m.id, ...(m.settings ?? {}) })),
      batch: settings.batch ?? 1,
      firstControlImage: settings.firstControlImage ? await identity(settings.firstControlImage) : null,
    };
    const work = await WorkFolder.open(settings.out, fingerprint, settings.resume === true);
    const crossFrame = methods.find((m) => m.crossFrame)?.crossFrame?.();
    return {
      isFolder,
      methods,
      generateOptions,
      info,
      fps: interpolatedFps,
      fingerprint,
      work,
      crossFrame,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** What a render runs on: the engine's components (scheduler by name) and a release. */
export interface RenderPipeline {
  videoComponents(scheduler?: string): VideoComponents;
  release(): Promise<void>;
}

/** Step 4 of renderVideo: the pipeline, built with the attention method's cross-frame setting. */
export async function loadRenderPipeline(
  settings: VideoRenderSettings,
  prepared: Pick<PreparedRender, "crossFrame">,
  options: LongTaskOptions = {},
): Promise<RenderPipeline> {
  const { crossFrame } = prepared;
  const nets = settings.controlnets ?? [];
  if (settings.uni) return loadUniRenderPipeline(settings, settings.uni, crossFrame, options);
  return StableDiffusionPipeline.load(settings.model, {
    ...(settings.config ? { configDir: settings.config } : {}),
    controlnets: nets.map((n) => n.path),
    ...(settings.t2iAdapter ? { t2iAdapter: settings.t2iAdapter.path } : {}),
    ...(settings.ipAdapter
      ? {
          ipAdapter: {
            file: settings.ipAdapter.file,
            ...(settings.ipAdapter.imageEncoder ? { imageEncoder: settings.ipAdapter.imageEncoder } : {}),
          },
        }
      : {}),
    ...(settings.loras && settings.loras.length > 0 ? { loras: settings.loras } : {}),
    ...(settings.liveLoras === true ? { liveLoras: true } : {}),
    ...(settings.embeddings && settings.embeddings.length > 0 ? { embeddings: settings.embeddings } : {}),
    ...(settings.tinyVae ? { tinyVae: settings.tinyVae } : {}),
    ...(crossFrame ? { crossFrame } : {}),
    ...(settings.device ? { executionProviders: settings.device } : {}),
    ...(settings.cacheDir ? { cacheDir: settings.cacheDir } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
}

/**
 * Step 6 of renderVideo, once every frame is in the work folder: run.json, metrics.json, and the
 * output. `generated` is the frames made by this run, `started` when it began generating (Date.now()).
 */
export async function publishPreparedRender(
  settings: VideoRenderSettings,
  prepared: PreparedRender,
  result: { readonly generated: number; readonly started: number },
  options: RenderOptions = {},
): Promise<RenderedVideo> {
  const { isFolder, methods, info, fps: interpolatedFps, fingerprint, work, crossFrame } = prepared;
  const started = result.started;
  // 6. run.json, metrics.json, and the output
  const seconds = await work.recordedSeconds(info.frames);
  const run = {
    steadyframe: await packageVersion(),
    node: process.version,
    created: new Date().toISOString(),
    settings: { ...fingerprint, seed: String(info.seed) },
    strategy: strategyName(settings.strategy),
    methods: methods.map((m) => ({ id: m.id, ...(m.settings ?? {}) })),
    crossFrame: crossFrame ?? null,
    frameSeeds: Array.from({ length: info.frames }, (_, i) =>
      String(methods.find((m) => m.frameSeed)?.frameSeed?.(i, info) ?? info.seed + BigInt(i)),
    ),
    fps: interpolatedFps,
    frames: info.frames,
    generatedThisRun: result.generated,
    wallSecondsThisRun: (Date.now() - started) / 1000,
    secondsPerFrame: seconds,
  };
  const runJson = await publishRender(
    { out: settings.out, isFolder, work, info, fps: interpolatedFps, run },
    options,
  );
  return {
    out: settings.out,
    isFolder,
    frames: info.frames,
    generated: result.generated,
    width: info.width,
    height: info.height,
    runJson,
    secondsPerFrame: seconds,
    strategy: strategyName(settings.strategy),
  };
}
