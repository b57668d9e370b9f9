/**
 * `steadyframe video --tuned DIR`: a Tune-A-Video render. The tuned inflated UNet
 * (src/models/unet3d, made by `steadyframe tune`, or the release's saved layout) generates the whole
 * clip at once from the DDIM inversion of the source clip (or seeded noise with `invert: false`) with
 * the edited prompt (src/pipeline/tune-a-video.ts generateTuneAVideo, the release's
 * `TuneAVideoPipeline` with `latents=ddim_inv_latent`). The per-frame strategies do not apply (the
 * temporal layers and sparse-causal attention are the consistency method); the frames are written to
 * the work folder and published like any render (PNG folder + run.json, or a video file).
 */
import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import { writePngFile } from "../control/png.js";
import { FileNotFoundError, InvalidArgumentError, throwIfAborted } from "../errors.js";
import { generateTuneAVideo } from "../pipeline/tune-a-video.js";
import type { RenderInfo } from "./method.js";
import type { RenderedVideo, RenderOptions, VideoRenderSettings } from "./render.js";
import { identity, isFolderOutput, packageVersion, publishWholeVideo } from "./render-common.js";
import { WorkFolder } from "./work-folder.js";

/** The Tune-A-Video part of a render's settings. */
export interface TunedSettings {
  /** The tuned folder (`steadyframe tune --out`). */
  readonly dir: string;
  /** (optional, default true) start from the DDIM inversion of the source clip (the release's default). */
  readonly invert?: boolean;
}

export async function renderTunedVideo(
  settings: VideoRenderSettings & { readonly tuned: TunedSettings },
  options: RenderOptions = {},
): Promise<RenderedVideo> {
  // 1. Checks that need no model
  const tuned = settings.tuned;
  if ((await stat(tuned.dir).catch(() => undefined))?.isDirectory() !== true)
    throw new FileNotFoundError(tuned.dir, "--tuned folder (the output of steadyframe tune)");
  if (typeof settings.prompt !== "string")
    throw new InvalidArgumentError("--prompt-schedule", "a single --prompt with --tuned", "a schedule", {
      hint: "Tune-A-Video conditions every frame on one (edited) prompt",
    });
  for (const [flag, given] of [
    ["--controlnet", (settings.controlnets ?? []).length > 0],
    ["--t2i-adapter", settings.t2iAdapter !== undefined],
    ["--ip-adapter", settings.ipAdapter !== undefined],
    ["--uni", settings.uni !== undefined],
    ["--lora", (settings.loras ?? []).length > 0],
    ["--motion-adapter/--motion-field", settings.motion !== undefined],
  ] as const) {
    if (given)
      throw new InvalidArgumentError(flag, "nothing of the kind with --tuned", "given", {
        hint: "a Tune-A-Video render takes the tuned model, the clip and the edited prompt only",
      });
  }
  const isFolder = isFolderOutput(settings.out);
  const steps = settings.steps ?? 50;
  const guidanceScale = settings.guidanceScale ?? 12.5;
  const seed = Number(settings.seed ?? 0n);
  if (!Number.isSafeInteger(seed) || seed < 0)
    throw new InvalidArgumentError(
      "--seed",
      "a non-negative safe integer with --tuned",
      String(settings.seed),
    );
  const fingerprint = {
    tuned: resolve(tuned.dir),
    tunedUNet: await identity(resolve(tuned.dir, "unet")),
    model: resolve(settings.model),
    source: settings.source ? await identity(settings.source) : null,
    prompt: settings.prompt,
    negativePrompt: settings.negativePrompt ?? "",
    width: settings.width ?? null,
    height: settings.height ?? null,
    frames: settings.frames ?? null,
    steps,
    guidanceScale,
    seed: String(seed),
    eta: settings.eta ?? 0,
    invert: tuned.invert !== false,
  };
  const work = await WorkFolder.open(settings.out, fingerprint, settings.resume === true);
  const started = Date.now();
  let generated = 0;
  let size = { width: settings.width ?? 0, height: settings.height ?? 0 };
  let frames = (await work.finishedFrames()).length;

  // 2. The whole clip at once (nothing to resume inside: a partial run starts the sampling over)
  if (frames === 0 || (settings.frames !== undefined && frames < settings.frames)) {
    const result = await generateTuneAVideo({
      tuned: tuned.dir,
      ...(resolve(settings.model) === resolve(tuned.dir) ? {} : { model: settings.model }),
      prompt: settings.prompt,
      ...(settings.negativePrompt === undefined ? {} : { negativePrompt: settings.negativePrompt }),
      ...(settings.source ? { video: settings.source } : {}),
      ...(settings.frames === undefined ? {} : { frames: settings.frames }),
      ...(settings.width === undefined ? {} : { width: settings.width }),
      ...(settings.height === undefined ? {} : { height: settings.height }),
      numInferenceSteps: steps,
      guidanceScale,
      useInvLatent: tuned.invert !== false,
      seed,
      ...(settings.eta === undefined ? {} : { eta: settings.eta }),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    throwIfAborted(options.signal, "video");
    for (const [i, img] of result.frames.entries()) {
      await writePngFile(work.framePath(i), img);
      options.onFrame?.(i, img);
    }
    frames = result.frames.length;
    generated = frames;
  }
  const first = await work.image(0);
  size = { width: first.width, height: first.height };
  const info: RenderInfo = {
    frames,
    width: size.width,
    height: size.height,
    latentShape: [4, size.height / 8, size.width / 8],
    seed: BigInt(seed),
    numInferenceSteps: steps,
  };
  const fps = settings.fps ?? 8;
  const wall = (Date.now() - started) / 1000;
  const seconds = Array<number>(frames).fill(wall / Math.max(1, frames));
  const run = {
    steadyframe: await packageVersion(),
    node: process.version,
    created: new Date().toISOString(),
    settings: fingerprint,
    strategy: "tune-a-video",
    pipeline: "TuneAVideoPipeline",
    fps,
    frames,
    generatedThisRun: generated,
    wallSecondsThisRun: wall,
    secondsPerFrame: seconds,
  };
  return publishWholeVideo(
    { out: settings.out, isFolder, work, info, fps, run, generated, seconds, strategy: "tune-a-video" },
    options,
  );
}
