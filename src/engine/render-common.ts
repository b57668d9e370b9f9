/**
 * What both kinds of render share (./render.ts, the per-frame engine, and ./motion-render.ts, the
 * whole-video AnimateDiff / Text2Video-Zero pipelines): the output kind of `--out`, the default size,
 * file identities for the resume fingerprint, the annotators of the ControlNets, and the publish step
 * (run.json, metrics.json, and a PNG folder or a video file made from the work folder's frames).
 */
import { readdir, readFile, rename, stat } from "node:fs/promises";
import { extname, join, resolve } from "node:path";
import { InvalidArgumentError } from "../errors.js";
import type { Image } from "../image.js";
import { DepthEstimator } from "../control/depth.js";
import { SoftEdgeDetector } from "../control/soft-edge.js";
import { StableDiffusionPipeline, type PipelineSummary } from "../pipeline/stable-diffusion.js";
import { withAtomicDir, writeFileAtomic } from "../util/atomic-write.js";
import { probeVideo, type VideoInfo } from "../video/probe.js";
import { writeVideo } from "../video/write.js";
import type { RenderInfo } from "./method.js";
import { cannyAnnotator, depthAnnotator, softEdgeAnnotator, type Annotator } from "./methods/annotator.js";
import type { RenderedVideo, RenderOptions, VideoRenderSettings } from "./render.js";
import { sidecarPath, type WorkFolder } from "./work-folder.js";

const VIDEO_EXTENSIONS = [".mp4", ".m4v", ".mov", ".mkv", ".webm", ".gif"];

/** True when `out` names a folder (PNG sequence), false for a video file; refuses "x.mp4/". */
export function isFolderOutput(out: string): boolean {
  const isFolder = !VIDEO_EXTENSIONS.includes(extname(out).toLowerCase());
  if (!isFolder && out.endsWith("/"))
    throw new InvalidArgumentError("--out", "a folder or a video file", out);
  return isFolder;
}

/** The version in package.json, for run.json. */
export async function packageVersion(): Promise<string> {
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

/** A file's identity for the resume fingerprint: absolute path, size and modification time. */
/**
 * What every render path reads before anything loads: the source's probe, the output size (given, or
 * the source's aspect with the short side 512) and the model's configs (no weights).
 */
export async function inspectRender(settings: VideoRenderSettings): Promise<{
  readonly probed: VideoInfo | undefined;
  readonly size: { readonly width: number; readonly height: number };
  readonly summary: PipelineSummary;
}> {
  const probed = settings.source ? await probeVideo(settings.source) : undefined;
  const size =
    settings.width !== undefined && settings.height !== undefined
      ? { width: settings.width, height: settings.height }
      : defaultSize(probed);
  const summary = await StableDiffusionPipeline.inspect(
    settings.model,
    settings.config ? { configDir: settings.config } : {},
  );
  return { probed, size, summary };
}

export async function identity(path: string): Promise<string> {
  const s = await stat(path).catch(() => null);
  return s ? `${resolve(path)}:${s.size}:${Math.round(s.mtimeMs)}` : resolve(path);
}

/** The LoRAs and embeddings of a render as its fingerprint records them (absent when there are none). */
export async function addOnIdentities(
  settings: Pick<VideoRenderSettings, "loras" | "embeddings" | "liveLoras">,
): Promise<{
  loras?: { path: string; scale: number }[];
  liveLoras?: true;
  embeddings?: { path: string; token: string | null }[];
}> {
  const loras = settings.loras ?? [];
  const embeddings = settings.embeddings ?? [];
  return {
    // unfused and fused LoRAs differ by float rounding: a resume must not mix them
    ...(settings.liveLoras === true && loras.length > 0 ? { liveLoras: true as const } : {}),
    ...(loras.length === 0
      ? {}
      : {
          loras: await Promise.all(
            loras.map(async (l) => ({ path: await identity(l.path), scale: l.scale })),
          ),
        }),
    ...(embeddings.length === 0
      ? {}
      : {
          embeddings: await Promise.all(
            embeddings.map(async (e) => ({ path: await identity(e.path), token: e.token ?? null })),
          ),
        }),
  };
}

/**
 * One annotator per control (ControlNets, then the T2I-Adapter: the map its `control` names); depth
 * and soft-edge models are opened here and their release pushed onto `releases`.
 */
export async function annotatorsFor(
  settings: Pick<VideoRenderSettings, "controlnets" | "canny" | "depthModel" | "softEdgeModel">,
  releases: (() => Promise<void>)[],
): Promise<Annotator[]> {
  const annotators: Annotator[] = [];
  for (const [k, net] of (settings.controlnets ?? []).entries()) {
    if (net.control === "canny")
      annotators.push(cannyAnnotator(settings.canny?.threshold1 ?? 100, settings.canny?.threshold2 ?? 200));
    else if (net.control === "depth") {
      if (!settings.depthModel)
        throw new InvalidArgumentError("--depth", "an ONNX depth model for --control depth", undefined, {
          hint: `control ${k + 1} (${net.path}) reads depth maps; pass --depth model.onnx (see docs/models.md)`,
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
            hint: `control ${k + 1} (${net.path}) reads soft edges; pass --softedge hed.onnx (see docs/models.md)`,
          },
        );
      const detector = await SoftEdgeDetector.create(settings.softEdgeModel);
      releases.push(() => detector.release());
      annotators.push(softEdgeAnnotator(detector, settings.softEdgeModel));
    }
  }
  return annotators;
}

export interface PublishInput {
  readonly out: string;
  readonly isFolder: boolean;
  /** The work folder holding every frame (frames/frame_NNNNNN.png, and controls/ if any). */
  readonly work: WorkFolder;
  readonly info: RenderInfo;
  /** Frame rate of a video output. */
  readonly fps: number;
  /** The run.json object. */
  readonly run: Readonly<Record<string, unknown>>;
}

/**
 * Writes run.json and metrics.json (when `options.metrics` is given) and publishes the frames: a PNG
 * folder (frames, controls/, run.json, metrics.json, renamed into place as one folder) or a video
 * file with `<name>.run.json` and `<name>.metrics.json` beside it; then removes the work folder.
 * Returns the path of run.json.
 */
export async function publishRender(p: PublishInput, options: RenderOptions): Promise<string> {
  const { work, info, out, isFolder, run } = p;
  const metrics = options.metrics ? await options.metrics(join(work.dir, "frames"), info) : undefined;
  const runJson = sidecarPath(out, isFolder, "run.json");
  if (isFolder) {
    await withAtomicDir(
      out,
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
    await writeVideo(out, framesOf(work, info.frames), {
      fps: p.fps,
      totalFrames: info.frames,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    await writeFileAtomic(runJson, `${JSON.stringify(run, null, 2)}\n`);
    if (metrics !== undefined)
      await writeFileAtomic(sidecarPath(out, false, "metrics.json"), `${JSON.stringify(metrics, null, 2)}\n`);
  }
  await work.remove();
  return runJson;
}

/** An existing output folder is replaced only when it holds an earlier render (its run.json). */
async function replaceableRender(dir: string): Promise<void> {
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

/**
 * The last step of a whole-video render (motion pipelines, Tune-A-Video): publish the work folder's
 * frames with run.json (publishRender) and describe the result.
 */
export async function publishWholeVideo(
  p: PublishInput & {
    readonly generated: number;
    readonly seconds: readonly number[];
    readonly strategy: string;
  },
  options: RenderOptions,
): Promise<RenderedVideo> {
  const runJson = await publishRender(p, options);
  return {
    out: p.out,
    isFolder: p.isFolder,
    frames: p.info.frames,
    generated: p.generated,
    width: p.info.width,
    height: p.info.height,
    runJson,
    secondsPerFrame: p.seconds,
    strategy: p.strategy,
  };
}
