/**
 * `renderVideo(settings)`: a whole render as the `video` command runs it — check everything that can
 * be checked before a model loads (sizes, strategy combinations, the output path, an unfinished render
 * to resume), open the source video, load the pipeline with the attention method's cross-frame
 * setting, generate every frame into the work folder (./work-folder.ts), then publish the output: a
 * PNG folder with `run.json` and `metrics.json`, or a video file with `<name>.run.json` and
 * `<name>.metrics.json` beside it. Nothing is published unless every frame is there.
 */
import { readdir, rename, stat } from "node:fs/promises";
import { extname, join, resolve } from "node:path";
import { InvalidArgumentError, throwIfAborted } from "../errors.js";
import type { Image } from "../image.js";
import { DepthEstimator } from "../control/depth.js";
import { readImageFile } from "../control/png.js";
import { SoftEdgeDetector } from "../control/soft-edge.js";
import type { ExecutionProvider } from "../runtime/session.js";
import { StableDiffusionPipeline } from "../pipeline/stable-diffusion.js";
import type { LongTaskOptions } from "../progress.js";
import { withAtomicDir, writeFileAtomic } from "../util/atomic-write.js";
import { probeVideo } from "../video/probe.js";
import { writeVideo } from "../video/write.js";
import { generateVideo, planRender } from "./generate-video.js";
import type { RenderInfo } from "./method.js";
import { cannyAnnotator, depthAnnotator, softEdgeAnnotator, type Annotator } from "./methods/annotator.js";
import type { PromptSchedule } from "./prompt-schedule.js";
import { SourceVideo } from "./source.js";
import { strategyMethods, strategyName, type Strategy } from "./strategies.js";
import { sidecarPath, WorkFolder } from "./work-folder.js";

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

export interface VideoRenderSettings {
  /** Source video (file or PNG folder); optional for text-only generation. */
  readonly source?: string;
  /** Diffusers folder or single-file checkpoint. */
  readonly model: string;
  /** Config folder for a single-file checkpoint. */
  readonly config?: string;
  readonly controlnets?: readonly ControlNetSetting[];
  /** ONNX depth model (for --control depth) and soft-edge model (for --control softedge). */
  readonly depthModel?: string;
  readonly softEdgeModel?: string;
  readonly canny?: { readonly threshold1: number; readonly threshold2: number };
  readonly prompt: PromptSchedule;
  readonly negativePrompt?: string;
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
  /** A folder (PNG sequence) or a .mp4/.webm/.gif/.mkv/.mov file. */
  readonly out: string;
  readonly resume?: boolean;
  /** Frame rate of a video output (default: the source's, else 8). */
  readonly fps?: number;
  readonly device?: readonly ExecutionProvider[];
  readonly cacheDir?: string;
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

const VIDEO_EXTENSIONS = [".mp4", ".m4v", ".mov", ".mkv", ".webm", ".gif"];

/** The version in package.json, for run.json. */
async function packageVersion(): Promise<string> {
  const { readFile } = await import("node:fs/promises");
  try {
    const pkg = JSON.parse(await readFile(new URL("../../package.json", import.meta.url), "utf8")) as {
      version?: string;
    };
    return pkg.version ?? "unknown";
  } catch {
    return "unknown";
  }
}

/** Short side 512, aspect kept, both multiples of 8. */
export function defaultSize(source: { width: number; height: number } | undefined): {
  width: number;
  height: number;
} {
  if (!source) return { width: 512, height: 512 };
  const scale = 512 / Math.min(source.width, source.height);
  const r8 = (x: number): number => Math.max(8, Math.round((x * scale) / 8) * 8);
  return { width: r8(source.width), height: r8(source.height) };
}

async function identity(path: string): Promise<string> {
  const s = await stat(path).catch(() => null);
  return s ? `${resolve(path)}:${s.size}:${Math.round(s.mtimeMs)}` : resolve(path);
}

export async function renderVideo(
  settings: VideoRenderSettings,
  options: RenderOptions = {},
): Promise<RenderedVideo> {
  const isFolder = !VIDEO_EXTENSIONS.includes(extname(settings.out).toLowerCase());
  if (!isFolder && settings.out.endsWith("/"))
    throw new InvalidArgumentError("--out", "a folder or a video file", settings.out);
  // 1. Source and size
  const probed = settings.source ? await probeVideo(settings.source) : undefined;
  const size =
    settings.width !== undefined && settings.height !== undefined
      ? { width: settings.width, height: settings.height }
      : defaultSize(probed);
  const summary = await StableDiffusionPipeline.inspect(
    settings.model,
    settings.config ? { configDir: settings.config } : {},
  );
  const cfg = (settings.guidanceScale ?? 7.5) > 1;
  const nets = settings.controlnets ?? [];
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
  let pipeline: StableDiffusionPipeline | undefined;
  try {
    // 2. Annotators and methods, checked before any model loads
    const annotators: Annotator[] = [];
    for (const [k, net] of nets.entries()) {
      if (net.control === "canny")
        annotators.push(cannyAnnotator(settings.canny?.threshold1 ?? 100, settings.canny?.threshold2 ?? 200));
      else if (net.control === "depth") {
        if (!settings.depthModel)
          throw new InvalidArgumentError("--depth", "an ONNX depth model for --control depth", undefined, {
            hint: `ControlNet ${k + 1} (${net.path}) reads depth maps; pass --depth model.onnx (see docs/models.md)`,
          });
        const estimator = await DepthEstimator.create(settings.depthModel);
        releases.push(() => estimator.release());
        annotators.push(depthAnnotator(estimator, settings.depthModel));
      } else {
        if (!settings.softEdgeModel)
          throw new InvalidArgumentError(
            "--softedge",
            "an ONNX soft-edge (HED) model for --control softedge",
            undefined,
            {
              hint: `ControlNet ${k + 1} (${net.path}) reads soft edges; pass --softedge hed.onnx (see docs/models.md)`,
            },
          );
        const detector = await SoftEdgeDetector.create(settings.softEdgeModel);
        releases.push(() => detector.release());
        annotators.push(softEdgeAnnotator(detector, settings.softEdgeModel));
      }
    }
    const firstControlImage = settings.firstControlImage
      ? await readImageFile(settings.firstControlImage)
      : undefined;
    const methods = strategyMethods(settings.strategy, {
      annotators,
      videos: cfg ? 2 : 1,
      ...(source ? { source } : {}),
      ...(firstControlImage ? { firstControlImage } : {}),
    });
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
      methods,
      batch: settings.batch ?? 1,
      ...(source ? { source } : {}),
      controls: nets.map((n) => ({
        ...(n.scale === undefined ? {} : { scale: n.scale }),
        ...(n.guidanceStart === undefined ? {} : { guidanceStart: n.guidanceStart }),
        ...(n.guidanceEnd === undefined ? {} : { guidanceEnd: n.guidanceEnd }),
      })),
    };
    const info = planRender(generateOptions, {
      vaeScaleFactor: summary.vaeScaleFactor,
      latentChannels: summary.unetConfig.in_channels,
      controlNets: nets.length,
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
      depthModel: settings.depthModel ? await identity(settings.depthModel) : null,
      softEdgeModel: settings.softEdgeModel ? await identity(settings.softEdgeModel) : null,
      canny: settings.canny ?? null,
      source: settings.source ? await identity(settings.source) : null,
      prompt: settings.prompt,
      negativePrompt: settings.negativePrompt ?? "",
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

    // 4. Models, built with the attention method's cross-frame setting
    const crossFrame = methods.find((m) => m.crossFrame)?.crossFrame?.();
    pipeline = await StableDiffusionPipeline.load(settings.model, {
      ...(settings.config ? { configDir: settings.config } : {}),
      controlnets: nets.map((n) => n.path),
      ...(crossFrame ? { crossFrame } : {}),
      ...(settings.device ? { executionProviders: settings.device } : {}),
      ...(settings.cacheDir ? { cacheDir: settings.cacheDir } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const components = pipeline.videoComponents(settings.scheduler);

    // 5. Frames
    const started = Date.now();
    const result = await generateVideo(components, {
      ...generateOptions,
      store: work,
      ...(options.onFrame ? { onFrame: options.onFrame } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    throwIfAborted(options.signal, "video");

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
    const metrics = options.metrics ? await options.metrics(join(work.dir, "frames"), info) : undefined;
    const runJson = sidecarPath(settings.out, isFolder, "run.json");
    if (isFolder) {
      await withAtomicDir(
        settings.out,
        async (temp) => {
          for (const name of await readdir(join(work.dir, "frames")))
            await rename(join(work.dir, "frames", name), join(temp, name));
          await rename(join(work.dir, "controls"), join(temp, "controls")).catch(() => undefined);
          await writeFileAtomic(join(temp, "run.json"), `${JSON.stringify(run, null, 2)}\n`);
          if (metrics !== undefined)
            await writeFileAtomic(join(temp, "metrics.json"), `${JSON.stringify(metrics, null, 2)}\n`);
        },
        { canReplace: replaceableRender },
      );
    } else {
      await writeVideo(settings.out, framesOf(work, info.frames), {
        fps: interpolatedFps,
        totalFrames: info.frames,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      await writeFileAtomic(runJson, `${JSON.stringify(run, null, 2)}\n`);
      if (metrics !== undefined)
        await writeFileAtomic(
          sidecarPath(settings.out, false, "metrics.json"),
          `${JSON.stringify(metrics, null, 2)}\n`,
        );
    }
    await work.remove();
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
  } finally {
    await pipeline?.release();
    for (const r of releases) await r();
    await source?.close();
  }
}

/** An existing output folder is replaced only when it holds an earlier render (its run.json). */
async function replaceableRender(dir: string): Promise<void> {
  const { readFile } = await import("node:fs/promises");
  const run = await readFile(join(dir, "run.json"), "utf8").catch(() => "");
  if (!run.includes('"steadyframe"')) {
    throw new InvalidArgumentError("--out", "a new folder or an earlier render's folder", dir, {
      hint: "the folder exists and holds no run.json of an earlier render; choose another --out or remove it",
    });
  }
}

async function* framesOf(work: WorkFolder, frames: number): AsyncGenerator<Image> {
  for (let i = 0; i < frames; i++) yield await work.image(i);
}
