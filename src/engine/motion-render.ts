/**
 * `renderMotionVideo(settings)`: a render whose frames come from a whole-video pipeline rather than
 * the per-frame engine loop (every frame of a context window goes through the UNet in one call):
 *
 * - AnimateDiff (`motion.adapter`): src/pipeline/animatediff.ts `textToVideo` / `videoToVideo` on a
 *   UNetMotionModel built from the model's UNet and a MotionAdapter (diffusers folder, or an original
 *   motion-module file), context windows (src/pipeline/context-windows.ts) for videos longer than the
 *   window, per-frame ControlNets on maps of the source frames, video-to-video at `strength` < 1, or a
 *   start from the DDIM inversion of the source (src/pipeline/ddim-inversion.ts, `invert`);
 * - Text2Video-Zero (`motion.t2vZero`): src/pipeline/text2video-zero.ts `textToVideoZero`, text only,
 *   with a global motion field and cross-frame attention to frame 0.
 *
 * As numbered steps: 1. checks that need no model (prompt, size, frames, scheduler, adapter config
 * against the UNet config, context sizes, flag combinations); 2. source frames and control maps;
 * 3. the work folder (./work-folder.ts) with `motion/step_NNNN.safetensors` (each finished step's
 * guided noise prediction) and `motion/latents.safetensors` (the latents after the last finished
 * step); 4. models; 5. denoising — on `--resume` the recorded steps are replayed through the scheduler
 * without UNet calls (same scheduler state, same generator draws) and the run continues after them,
 * bit-identical to an uninterrupted one; 6. frames, then the shared publish step (./render-common.ts).
 *
 * The scheduler is the model folder's (class and scheduler_config.json) unless `settings.scheduler`
 * names another class; AnimateDiff was trained with DDIM on *linear* betas (methods.md C.9), which an
 * SD folder's config (scaled_linear) does not give: use a folder whose scheduler config says so.
 */
import { mkdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { readJsonFile } from "../config/parse.js";
import {
  ConfigError,
  InvalidArgumentError,
  MissingWeightsError,
  SteadyframeError,
  throwIfAborted,
} from "../errors.js";
import type { Image } from "../image.js";
import { writePngFile } from "../control/png.js";
import { CLIPTextModel } from "../models/clip/index.js";
import type { ModelLoadOptions } from "../models/compiled-graph.js";
import {
  MOTION_ADAPTER_DEFAULTS,
  type MotionAdapterConfig,
  parseMotionAdapterConfig,
} from "../models/motion/config.js";
import type { MotionAdapterSource, UNetMotionModelRunner } from "../models/motion/runner.js";
import type { UNetSource } from "../models/unet/runner.js";
import { checkAdapterFitsUNet } from "../models/motion/unet-motion-config.js";
import { UNetMotionModel } from "../models/motion/unet-motion-model.js";
import { AutoencoderKL } from "../models/vae/index.js";
import {
  type AnimateDiffCommonOptions,
  type DenoisingStepRecord,
  type MotionUNet,
  type VideoControlUnit,
  textToVideo,
  videoTensor,
  videoToVideo,
} from "../pipeline/animatediff.js";
import { readPipelineFolder } from "../pipeline/components.js";
import {
  type ContextFuse,
  type ContextSchedule,
  CONTEXT_FUSES,
  CONTEXT_SCHEDULES,
  contextFuse,
  contextWindows,
  isWholeVideo,
  predictInWindows,
} from "../pipeline/context-windows.js";
import { invertLatents } from "../pipeline/ddim-inversion.js";
import { concatBatch } from "../pipeline/guidance.js";
import { imageToTensor, tensorToImages, toRGB } from "../pipeline/images.js";
import { StableDiffusionPipeline, loadControlNet } from "../pipeline/stable-diffusion.js";
import { T2V_ZERO_REFUSED_SCHEDULERS, textToVideoZero } from "../pipeline/text2video-zero.js";
import { withLoras } from "../pipeline/lora.js";
import { withTextualInversions } from "../pipeline/textual-inversion.js";
import type { DenoisingUNet } from "../pipeline/types.js";
import { fromConfig, resolveSchedulerName, withPreset } from "../schedulers/registry.js";
import type { SchedulerClassName } from "../schedulers/scheduler.js";
import { type HostTensor, numel, tensor } from "../tensor.js";
import { CLIPTokenizer } from "../tokenizer/clip-tokenizer.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import { openCheckpointStore } from "../weights/single-file.js";
import { readSafetensors, serializeSafetensors } from "../weights/safetensors.js";
import type { RenderInfo } from "./method.js";
import type { RenderedVideo, RenderOptions, VideoRenderSettings } from "./render.js";
import {
  addOnIdentities,
  annotatorsFor,
  identity,
  inspectRender,
  isFolderOutput,
  packageVersion,
  publishWholeVideo,
} from "./render-common.js";
import { SourceVideo } from "./source.js";
import { WorkFolder } from "./work-folder.js";

/** AnimateDiff motion modules over the model's UNet, with context windows. */
export interface AnimateDiffMotion {
  /** A diffusers MotionAdapter folder, or an original AnimateDiff motion-module file. */
  readonly adapter: string;
  /** (optional, default 16, at most the adapter's motion_max_seq_length) frames per window. */
  readonly context?: number;
  /** (optional, default 4, at most context - 1) frames shared by neighbouring windows. */
  readonly overlap?: number;
  /** (optional, default "uniform") window placement (see src/pipeline/context-windows.ts). */
  readonly schedule?: ContextSchedule;
  /** (optional, default "pyramid") fusion weights of overlapping windows. */
  readonly fuse?: ContextFuse;
  /** (optional, with a source; default 0.6) video-to-video strength; 1 starts from noise. */
  readonly strength?: number;
  /** (optional, with a source) start from the DDIM inversion of the source over the whole schedule. */
  readonly invert?: boolean;
}

/** Text2Video-Zero: text-to-video with a global motion field (pixels per frame on a 512 grid). */
export interface TextToVideoZeroMotion {
  readonly t2vZero: {
    readonly motionX: number;
    readonly motionY: number;
    /** (optional) t0 in steps from the end (default: 44/50 of the steps). */
    readonly t0?: number;
    /** (optional) t1 > t0 in steps from the end (default: 47/50 of the steps, at most steps - 1). */
    readonly t1?: number;
  };
}

export type MotionSettings = AnimateDiffMotion | TextToVideoZeroMotion;

const DEFAULT_V2V_STRENGTH = 0.6;
const stepFile = (i: number): string => `step_${String(i).padStart(4, "0")}.safetensors`;

const f64 = (v: number): HostTensor<"float64"> => tensor("float64", [1], Float64Array.of(v));

/** The resolved AnimateDiff settings, as run.json records them. */
interface AnimateDiffPlan {
  readonly kind: "animatediff";
  readonly adapter: MotionAdapterSource;
  readonly adapterConfig: MotionAdapterConfig;
  readonly context: number;
  readonly overlap: number;
  readonly schedule: ContextSchedule;
  readonly fuse: ContextFuse;
  /** Undefined: text-to-video from noise. */
  readonly strength: number | undefined;
  readonly invert: boolean;
}

interface TextToVideoZeroPlan {
  readonly kind: "t2v-zero";
  readonly motionX: number;
  readonly motionY: number;
  readonly t0: number;
  readonly t1: number;
}

type MotionPlan = AnimateDiffPlan | TextToVideoZeroPlan;

function planName(p: MotionPlan): string {
  if (p.kind === "t2v-zero")
    return `text2video-zero (motion ${p.motionX},${p.motionY}, t0 ${p.t0}, t1 ${p.t1})`;
  const start = p.invert
    ? ", from the DDIM inversion"
    : p.strength === undefined
      ? ""
      : `, v2v ${p.strength}`;
  return `animatediff (context ${p.context}, overlap ${p.overlap}, ${p.schedule}, ${p.fuse}${start})`;
}

function isAnimateDiff(m: MotionSettings): m is AnimateDiffMotion {
  return "adapter" in m;
}

/** The model folder's scheduler config and the class to use (`--scheduler`, else the folder's). */
async function schedulerOf(
  settings: VideoRenderSettings,
  singleFile: boolean,
): Promise<{ className: SchedulerClassName; config: Record<string, unknown> }> {
  const folder = await readPipelineFolder(singleFile ? (settings.config ?? "") : settings.model, {
    requireWeights: !singleFile,
  });
  const dir = folder.components.get("scheduler")?.dir;
  const json = dir ? await readJsonFile(join(dir, "scheduler_config.json")) : {};
  const config = (typeof json === "object" && json !== null ? json : {}) as Record<string, unknown>;
  const name =
    settings.scheduler ??
    (typeof config["_class_name"] === "string" ? config["_class_name"] : "PNDMScheduler");
  let className: SchedulerClassName;
  const configured = withPreset(name, config);
  try {
    className = resolveSchedulerName(name);
    fromConfig(className, configured);
  } catch (error) {
    throw new InvalidArgumentError(
      "--scheduler",
      "a scheduler that fits the model's scheduler config",
      name,
      {
        hint: error instanceof Error ? error.message : String(error),
        cause: error,
      },
    );
  }
  return { className, config: configured };
}

/** Reads the adapter's config (folder) or picks it for an original file, and checks it fits the UNet. */
async function adapterPlan(
  path: string,
  unet: Parameters<typeof checkAdapterFitsUNet>[2],
): Promise<{ source: MotionAdapterSource; config: MotionAdapterConfig }> {
  const info = await stat(path).catch(() => null);
  if (info === null)
    throw new InvalidArgumentError("--motion-adapter", "a MotionAdapter folder or motion-module file", path, {
      hint: "the path does not exist",
    });
  const mismatch = (detail: string, cause?: unknown): InvalidArgumentError =>
    new InvalidArgumentError("--motion-adapter", "a motion adapter that fits the model's UNet", path, {
      hint: detail,
      ...(cause === undefined ? {} : { cause }),
    });
  let source: MotionAdapterSource;
  let config: MotionAdapterConfig;
  if (info.isDirectory()) {
    const file = join(path, "config.json");
    const json = await readJsonFile(file).catch((error: unknown) => {
      throw mismatch(
        `${file} cannot be read: a MotionAdapter folder holds config.json and its weights`,
        error,
      );
    });
    const className =
      typeof json === "object" && json !== null
        ? (json as Record<string, unknown>)["_class_name"]
        : undefined;
    if (className !== undefined && className !== "MotionAdapter")
      throw mismatch(`${file} describes a ${String(className)}, not a MotionAdapter`);
    try {
      config = parseMotionAdapterConfig(file, json).config;
    } catch (error) {
      throw mismatch(error instanceof Error ? error.message : String(error), error);
    }
    source = path;
  } else {
    // An original AnimateDiff file: v2 layout (diffusers' defaults) unless it has no mid-block module (v1).
    const store = await openCheckpointStore(path).catch((error: unknown) => {
      throw mismatch(
        `${error instanceof Error ? error.message : String(error)} (expected an AnimateDiff motion-module file such as mm_sd_v15_v2.ckpt)`,
        error,
      );
    });
    const hasMid = [...store.keys()].some((k) => k.includes("mid_block"));
    config = { ...MOTION_ADAPTER_DEFAULTS, use_motion_mid_block: hasMid };
    source = { checkpoint: path, config };
  }
  try {
    checkAdapterFitsUNet(info.isDirectory() ? join(path, "config.json") : path, config, unet);
  } catch (error) {
    throw mismatch(error instanceof Error ? error.message : String(error), error);
  }
  return { source, config };
}

/** Step 1: everything about the motion settings that can be checked before a model loads. */
async function planMotion(
  settings: VideoRenderSettings & { readonly motion: MotionSettings },
  unetConfig: Parameters<typeof checkAdapterFitsUNet>[2],
  singleFile: boolean,
  schedulerClass: SchedulerClassName,
  steps: number,
): Promise<MotionPlan> {
  const m = settings.motion;
  const nets = settings.controlnets ?? [];
  if (settings.ipAdapter !== undefined)
    throw new InvalidArgumentError(
      "--ip-adapter",
      "the per-frame strategies (not a motion pipeline)",
      settings.ipAdapter.file,
      { hint: "drop --motion-adapter/--motion-field to use the IP-Adapter" },
    );
  if (settings.t2iAdapter !== undefined)
    throw new InvalidArgumentError(
      "--t2i-adapter",
      "the per-frame strategies (not a motion pipeline)",
      settings.t2iAdapter.path,
      { hint: "drop --motion-adapter/--motion-field, or use a --controlnet with the motion pipeline" },
    );
  if (!isAnimateDiff(m)) {
    const z = m.t2vZero;
    if (settings.source !== undefined)
      throw new InvalidArgumentError(
        "--motion-field",
        "text-to-video without a source video",
        settings.source,
        {
          hint: "Text2Video-Zero makes a video from the prompt alone: drop the source, or use --motion-adapter for video-to-video",
        },
      );
    if (nets.length > 0)
      throw new InvalidArgumentError(
        "--motion-field",
        "no --controlnet",
        nets.map((n) => n.path).join(", "),
        {
          hint: "Text2Video-Zero here is text-only; for control maps use --motion-adapter or the per-frame strategies",
        },
      );
    for (const [flag, v] of [
      ["--motion-field (x)", z.motionX],
      ["--motion-field (y)", z.motionY],
    ] as const)
      if (!Number.isFinite(v)) throw new InvalidArgumentError(flag, "a finite number", v);
    if (!((settings.guidanceScale ?? 7.5) > 1))
      throw new InvalidArgumentError(
        "--guidance",
        "a scale > 1 with --motion-field",
        settings.guidanceScale,
        {
          hint: "Text2Video-Zero's cross-frame attention reads the [uncond, cond] guidance batch",
        },
      );
    if (T2V_ZERO_REFUSED_SCHEDULERS.includes(schedulerClass))
      throw new InvalidArgumentError(
        "--scheduler",
        "ddim, ddpm, pndm, dpmpp_2m, dpmpp_2m_karras, unipc or lcm with --motion-field",
        schedulerClass,
        {
          hint: "Text2Video-Zero noises the warped latents between two timestep values, which needs integer timesteps (not euler, euler_ancestral, lms)",
        },
      );
    if (steps < 2) throw new InvalidArgumentError("--steps", "at least 2 with --motion-field", steps);
    const t1 = z.t1 ?? Math.min(steps - 1, Math.floor((steps * 47) / 50));
    const t0 = z.t0 ?? Math.max(0, Math.min(t1 - 1, Math.floor((steps * 44) / 50)));
    if (!Number.isInteger(t0) || t0 < 0 || t0 >= t1)
      throw new InvalidArgumentError("--t0", `an integer in [0, ${t1 - 1}] (below --t1 ${t1})`, t0);
    if (!Number.isInteger(t1) || t1 > steps - 1)
      throw new InvalidArgumentError("--t1", `an integer in [${t0 + 1}, ${steps - 1}] (below --steps)`, t1);
    return { kind: "t2v-zero", motionX: z.motionX, motionY: z.motionY, t0, t1 };
  }
  if (singleFile)
    throw new InvalidArgumentError("--model", "a diffusers folder with --motion-adapter", settings.model, {
      hint: "the motion UNet is built from the folder's unet/ component; convert the single file to a diffusers folder",
    });
  const { source, config } = await adapterPlan(m.adapter, unetConfig);
  const max = config.motion_max_seq_length;
  const context = m.context ?? Math.min(16, max);
  if (!Number.isInteger(context) || context < 1 || context > max)
    throw new InvalidArgumentError(
      "--context",
      `an integer in [1, ${max}] (the adapter's motion_max_seq_length)`,
      context,
    );
  const overlap = m.overlap ?? Math.min(4, context - 1);
  if (!Number.isInteger(overlap) || overlap < 0 || overlap >= context)
    throw new InvalidArgumentError(
      "--overlap",
      `an integer in [0, ${context - 1}] (below --context)`,
      overlap,
    );
  const schedule = m.schedule ?? "uniform";
  if (!CONTEXT_SCHEDULES.includes(schedule))
    throw new InvalidArgumentError("--context-schedule", `one of ${CONTEXT_SCHEDULES.join(", ")}`, schedule);
  const fuse = m.fuse ?? "pyramid";
  if (!CONTEXT_FUSES.includes(fuse))
    throw new InvalidArgumentError("--context-fuse", `one of ${CONTEXT_FUSES.join(", ")}`, fuse);
  const hasSource = settings.source !== undefined;
  if (nets.length > 0 && !hasSource)
    throw new InvalidArgumentError(
      "--controlnet",
      "a source video to take the control maps from",
      undefined,
      {
        hint: "with --motion-adapter the ControlNets read maps of the source frames: give a source video",
      },
    );
  if (m.invert === true) {
    if (!hasSource) throw new InvalidArgumentError("--invert", "a source video to invert", undefined);
    if (m.strength !== undefined)
      throw new InvalidArgumentError("--strength", "no --strength with --invert", m.strength, {
        hint: "--invert starts from the source inverted over the whole schedule; drop --strength",
      });
    if (schedulerClass !== "DDIMScheduler")
      throw new InvalidArgumentError("--scheduler", "ddim with --invert", schedulerClass, {
        hint: "DDIM inversion is undone exactly only by deterministic DDIM",
      });
  }
  if (m.strength !== undefined && !hasSource)
    throw new InvalidArgumentError("--strength", "a source video (video-to-video)", m.strength, {
      hint: "text-to-video starts from noise; drop --strength or give a source",
    });
  const strength = hasSource && m.invert !== true ? (m.strength ?? DEFAULT_V2V_STRENGTH) : undefined;
  if (strength !== undefined && !(strength > 0 && strength <= 1))
    throw new InvalidArgumentError("--strength", "a number in (0, 1]", strength);
  if (strength !== undefined && Math.floor(steps * strength) < 1)
    throw new InvalidArgumentError("--strength", `at least ${1 / steps} (one of --steps ${steps})`, strength);
  return {
    kind: "animatediff",
    adapter: source,
    adapterConfig: config,
    context,
    overlap,
    schedule,
    fuse,
    strength: strength === 1 ? undefined : strength,
    invert: m.invert === true,
  };
}

/** [F, C, h, w] -> [1, C, F, h, w] and back. */
function framesToVideo(t: HostTensor<"float32">): HostTensor<"float32"> {
  const [f = 0, c = 0, ...rest] = t.shape;
  const inner = numel(rest);
  const out = new Float32Array(t.data.length);
  for (let i = 0; i < f; i++)
    for (let k = 0; k < c; k++)
      out.set(t.data.subarray((i * c + k) * inner, (i * c + k + 1) * inner), (k * f + i) * inner);
  return tensor("float32", [1, c, f, ...rest], out);
}

function videoToFrames(t: HostTensor<"float32">): HostTensor<"float32"> {
  const [, c = 0, f = 0, ...rest] = t.shape;
  const inner = numel(rest);
  const out = new Float32Array(t.data.length);
  for (let k = 0; k < c; k++)
    for (let i = 0; i < f; i++)
      out.set(t.data.subarray((k * f + i) * inner, (k * f + i + 1) * inner), (i * c + k) * inner);
  return tensor("float32", [f, c, ...rest], out);
}

/**
 * The motion UNet as a per-frame DenoisingUNet for DDIM inversion (guidance 1: the batch is the video's
 * frames, one prompt): each call runs the frames as one video, in context windows when they are more
 * than one window; calls count as steps for the window offsets.
 */
function inversionUNet(unet: MotionUNet, plan: AnimateDiffPlan): DenoisingUNet {
  let step = 0;
  const options = {
    contextLength: plan.context,
    overlap: plan.overlap,
    schedule: plan.schedule,
    fuse: plan.fuse,
  };
  return {
    forward: async (inputs) => {
      const frames = inputs.sample.shape[0] ?? 0;
      const sample = framesToVideo(inputs.sample);
      const timestep = tensor("float32", [1], inputs.timestep.data.slice(0, 1));
      const [, l = 0, d = 0] = inputs.encoderHiddenStates.shape;
      const ehs = tensor("float32", [1, l, d], inputs.encoderHiddenStates.data.slice(0, l * d));
      const windows = contextWindows(frames, options, step++);
      const noise = isWholeVideo(windows, frames)
        ? await unet.forward({ sample, timestep, encoderHiddenStates: ehs })
        : await predictInWindows(sample, windows, contextFuse(options), (_, x) =>
            unet.forward({ sample: x, timestep, encoderHiddenStates: ehs }),
          );
      return videoToFrames(noise);
    },
  };
}

/** The steps a resumed render replays: every recorded prediction up to the saved latents' step. */
async function recordedSteps(
  dir: string,
): Promise<{ replay: HostTensor<"float32">[]; latents?: HostTensor<"float32">; seconds: number }> {
  const file = join(dir, "latents.safetensors");
  if ((await stat(file).catch(() => null)) === null) return { replay: [], seconds: 0 };
  const saved = await readSafetensors(file);
  const latents = saved.get("latents");
  const step = Number(saved.get("step")?.data[0] ?? -1);
  if (latents?.dtype !== "float32" || !Number.isInteger(step) || step < 0)
    throw new ConfigError(file, "latents", "the latents of the last finished step", undefined, {
      hint: `delete ${dir} to start over`,
    });
  const replay: HostTensor<"float32">[] = [];
  for (let i = 0; i <= step; i++) {
    const t = (await readSafetensors(join(dir, stepFile(i))).catch(() => undefined))?.get("noise_pred");
    if (t?.dtype !== "float32")
      throw new ConfigError(
        join(dir, stepFile(i)),
        "noise_pred",
        "the prediction of a finished step",
        undefined,
        {
          hint: `the work folder is incomplete; delete ${dir} to start over`,
        },
      );
    replay.push(t as HostTensor<"float32">);
  }
  return {
    replay,
    latents: latents as HostTensor<"float32">,
    seconds: Number(saved.get("seconds")?.data[0] ?? 0),
  };
}

function sameBits(a: HostTensor<"float32">, b: HostTensor<"float32">): boolean {
  if (a.shape.join() !== b.shape.join()) return false;
  const x = new Uint32Array(a.data.buffer, a.data.byteOffset, a.data.length);
  const y = new Uint32Array(b.data.buffer, b.data.byteOffset, b.data.length);
  return x.every((v, i) => v === y[i]);
}

/** Loads an original-file adapter's or a folder's MotionAdapter; weight mismatches name --motion-adapter. */
async function loadMotionUNet(
  unetDir: UNetSource,
  plan: AnimateDiffPlan,
  path: string,
  options: ModelLoadOptions & { residuals: boolean },
): Promise<UNetMotionModelRunner> {
  try {
    return await UNetMotionModel.load({ unet: unetDir, motionAdapter: plan.adapter }, options);
  } catch (error) {
    if (
      error instanceof MissingWeightsError ||
      (error instanceof SteadyframeError && error.code === "E_CONFIG")
    )
      throw new InvalidArgumentError(
        "--motion-adapter",
        "a motion adapter whose weights fit the model's UNet",
        path,
        {
          hint: error.message,
          cause: error,
        },
      );
    throw error;
  }
}

export async function renderMotionVideo(
  settings: VideoRenderSettings & { readonly motion: MotionSettings },
  options: RenderOptions = {},
): Promise<RenderedVideo> {
  // 1. Checks that need no model
  const isFolder = isFolderOutput(settings.out);
  if (typeof settings.prompt !== "string")
    throw new InvalidArgumentError(
      "--prompt-schedule",
      "a single --prompt with --motion-adapter or --motion-field",
      "a schedule",
      {
        hint: "the motion pipelines condition every frame on one prompt",
      },
    );
  const prompt = settings.prompt;
  const { probed, size, summary } = await inspectRender(settings);
  const step8 = Math.max(8, summary.vaeScaleFactor);
  for (const [name, v] of [
    ["width", size.width],
    ["height", size.height],
  ] as const)
    if (!Number.isInteger(v) || v <= 0 || v % step8 !== 0)
      throw new InvalidArgumentError(`--size (${name})`, `a positive multiple of ${step8}`, v);
  const steps = settings.steps ?? 20;
  if (!Number.isInteger(steps) || steps < 1)
    throw new InvalidArgumentError("--steps", "an integer >= 1", steps);
  const scheduler = await schedulerOf(settings, summary.singleFile);
  const plan = await planMotion(settings, summary.unetConfig, summary.singleFile, scheduler.className, steps);
  const nets = settings.controlnets ?? [];
  const guidanceScale = settings.guidanceScale ?? 7.5;
  const seed = settings.seed ?? 0n;

  const releases: (() => Promise<void>)[] = [];
  const source = settings.source
    ? await SourceVideo.open(settings.source, {
        ...size,
        ...(settings.frames !== undefined ? { maxFrames: settings.frames } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      })
    : undefined;
  try {
    const frames = settings.frames ?? source?.frames;
    if (frames === undefined)
      throw new InvalidArgumentError(
        "--frames",
        "a frame count (there is no source video to take it from)",
        undefined,
      );
    if (!Number.isInteger(frames) || frames < 1)
      throw new InvalidArgumentError("--frames", "an integer >= 1", frames);
    if (source && frames > source.frames)
      throw new InvalidArgumentError(
        "--frames",
        `at most ${source.frames} (what the source video gives)`,
        frames,
      );
    const annotators = await annotatorsFor(settings, releases);
    const info: RenderInfo = {
      frames,
      ...size,
      latentShape: [
        summary.unetConfig.in_channels,
        size.height / summary.vaeScaleFactor,
        size.width / summary.vaeScaleFactor,
      ],
      seed,
      numInferenceSteps: steps,
    };
    const fps = settings.fps ?? (probed ? probed.fps.num / probed.fps.den : 8);

    // 3. What the frames depend on (compared on --resume), and the work folder
    const motionSetting =
      plan.kind === "t2v-zero"
        ? { kind: plan.kind, motionX: plan.motionX, motionY: plan.motionY, t0: plan.t0, t1: plan.t1 }
        : {
            kind: plan.kind,
            adapter: isAnimateDiff(settings.motion) ? await identity(settings.motion.adapter) : null,
            context: plan.context,
            overlap: plan.overlap,
            schedule: plan.schedule,
            fuse: plan.fuse,
            strength: plan.strength ?? null,
            invert: plan.invert,
          };
    const fingerprint = {
      model: await identity(settings.model),
      config: settings.config ? await identity(settings.config) : null,
      motion: motionSetting,
      controlnets: await Promise.all(nets.map(async (n) => ({ ...n, path: await identity(n.path) }))),
      ...(await addOnIdentities(settings)),
      depthModel: settings.depthModel ? await identity(settings.depthModel) : null,
      softEdgeModel: settings.softEdgeModel ? await identity(settings.softEdgeModel) : null,
      canny: settings.canny ?? null,
      source: settings.source ? await identity(settings.source) : null,
      prompt,
      negativePrompt: settings.negativePrompt ?? "",
      width: size.width,
      height: size.height,
      frames,
      steps,
      scheduler: scheduler.className,
      guidanceScale,
      seed: String(seed),
      eta: settings.eta ?? 0,
      clipSkip: settings.clipSkip ?? null,
    };
    const work = await WorkFolder.open(settings.out, fingerprint, settings.resume === true);
    const motionDir = join(work.dir, "motion");
    await mkdir(motionDir, { recursive: true });
    const recorded = await recordedSteps(motionDir);
    const started = Date.now();
    let unetCalls = 0;
    let generated = 0;

    if ((await work.finishedFrames()).length < frames) {
      // 2. Source frames and control maps (written with the frames: published in controls/)
      const sourceFrames: Image[] = [];
      const controlFrames: HostTensor<"float32">[][] = annotators.map(() => []);
      if (source) {
        for (let i = 0; i < frames; i++) {
          throwIfAborted(options.signal, "source frames");
          const frame = await source.frame(i);
          sourceFrames.push(frame);
          for (const [k, annotator] of annotators.entries()) {
            const map = toRGB(await annotator.annotate(frame));
            await mkdir(join(work.dir, "controls", `c${k}`), { recursive: true });
            await writePngFile(
              join(work.dir, "controls", `c${k}`, `frame_${String(i).padStart(6, "0")}.png`),
              map,
            );
            controlFrames[k]?.push(imageToTensor(map, "0,1"));
          }
        }
      }

      // 5. Denoising: replay the recorded steps, save every new one
      const onStep = async (r: DenoisingStepRecord): Promise<void> => {
        if (r.replayed) {
          if (
            r.step === recorded.replay.length - 1 &&
            recorded.latents &&
            !sameBits(r.latents, recorded.latents)
          )
            throw new ConfigError(
              join(motionDir, "latents.safetensors"),
              "latents",
              "the latents the recorded steps replay to",
              "other values",
              {
                hint: `the model, adapter or ONNX Runtime build changed since the render started; delete ${work.dir} to start over`,
              },
            );
          return;
        }
        await writeFileAtomic(
          join(motionDir, stepFile(r.step)),
          serializeSafetensors({ noise_pred: r.noisePred }),
          {
            durable: false,
          },
        );
        const seconds = recorded.seconds + (Date.now() - started) / 1000;
        await writeFileAtomic(
          join(motionDir, "latents.safetensors"),
          serializeSafetensors({ latents: r.latents, step: f64(r.step), seconds: f64(seconds) }),
          { durable: false },
        );
      };
      const resumable = { onStep, ...(recorded.replay.length > 0 ? { replay: recorded.replay } : {}) };
      const load: ModelLoadOptions = {
        ...(settings.device ? { executionProviders: settings.device } : {}),
        ...(settings.cacheDir ? { cacheDir: settings.cacheDir } : {}),
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      };
      const common = {
        numInferenceSteps: steps,
        guidanceScale,
        seed,
        ...(settings.eta === undefined ? {} : { eta: settings.eta }),
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
        ...resumable,
      };
      let images: Image[];
      if (plan.kind === "t2v-zero") {
        // 4. Models: the UNet with cross-frame attention to frame 0 of each guidance half
        const pipeline = await StableDiffusionPipeline.load(settings.model, {
          ...load,
          ...(settings.config ? { configDir: settings.config } : {}),
          ...((settings.loras ?? []).length > 0 ? { loras: settings.loras } : {}),
          ...(settings.liveLoras === true ? { liveLoras: true } : {}),
          ...((settings.embeddings ?? []).length > 0 ? { embeddings: settings.embeddings } : {}),
          crossFrame: { batchSize: 2, mode: "first" },
        });
        releases.push(() => pipeline.release());
        const c = pipeline.videoComponents(scheduler.className, scheduler.config);
        const counted: DenoisingUNet = {
          forward: (inputs) => {
            unetCalls++;
            return c.unet.forward(inputs);
          },
        };
        const embeds =
          settings.clipSkip === undefined
            ? { prompt, negativePrompt: settings.negativePrompt ?? "" }
            : {
                promptEmbeds: await c.textEncoder.encode(c.tokenizer.tokenize([prompt]), {
                  clipSkip: settings.clipSkip,
                }),
                negativePromptEmbeds: await c.textEncoder.encode(
                  c.tokenizer.tokenize([settings.negativePrompt ?? ""]),
                  {
                    clipSkip: settings.clipSkip,
                  },
                ),
              };
        const result = await textToVideoZero(
          { ...c, unet: counted, scheduler: c.makeScheduler() },
          {
            ...common,
            ...embeds,
            videoLength: frames,
            ...size,
            motionFieldStrengthX: plan.motionX,
            motionFieldStrengthY: plan.motionY,
            t0: plan.t0,
            t1: plan.t1,
          },
        );
        images = tensorToImages(result.frames);
      } else {
        // 4. Models: tokenizer, text encoder, VAE, motion UNet (with residual inputs for ControlNets), nets
        const folder = await readPipelineFolder(settings.model);
        const dirOf = (name: "unet" | "vae" | "text_encoder" | "tokenizer"): string => {
          const dir = folder.components.get(name)?.dir;
          if (dir === undefined)
            throw new InvalidArgumentError("--model", `a pipeline with a ${name} component`, settings.model);
          return dir;
        };
        const adapterPath = isAnimateDiff(settings.motion) ? settings.motion.adapter : "";
        // LoRAs fused into the UNet (under the motion modules) and the text encoder; embeddings added
        // to the tokenizer and the text encoder's table (src/pipeline/lora.ts, textual-inversion.ts).
        const fused =
          (settings.loras ?? []).length === 0
            ? undefined
            : await withLoras(
                settings.loras ?? [],
                {
                  unet: dirOf("unet"),
                  unetConfig: summary.unetConfig,
                  textEncoder: dirOf("text_encoder"),
                },
                settings.liveLoras === true ? { live: true } : {},
              );
        const unet = await loadMotionUNet(fused?.unet ?? dirOf("unet"), plan, adapterPath, {
          ...load,
          residuals: nets.length > 0,
        });
        releases.push(() => unet.release());
        const tokenizer = await CLIPTokenizer.fromPretrained(dirOf("tokenizer"));
        const inverted = await withTextualInversions(
          settings.embeddings ?? [],
          tokenizer,
          fused?.textEncoder ?? dirOf("text_encoder"),
        );
        const text = await CLIPTextModel.load(inverted.textEncoder, load);
        releases.push(() => text.release());
        const vae = await AutoencoderKL.load(dirOf("vae"), load);
        releases.push(() => vae.release());
        const controls: VideoControlUnit[] = [];
        for (const [k, net] of nets.entries()) {
          const controlnet = await loadControlNet(net.path, summary.unetConfig, {
            ...load,
            guessMode: false,
            broadcastPooled: true,
          });
          releases.push(() => controlnet.release());
          controls.push({
            controlnet,
            frames: concatBatch(controlFrames[k] ?? []),
            ...(net.scale === undefined ? {} : { scale: net.scale }),
            ...(net.guidanceStart === undefined ? {} : { guidanceStart: net.guidanceStart }),
            ...(net.guidanceEnd === undefined ? {} : { guidanceEnd: net.guidanceEnd }),
          });
        }
        const counted: MotionUNet = {
          maxFrames: unet.maxFrames,
          forward: (inputs) => {
            unetCalls++;
            return unet.forward(inputs);
          },
        };
        const components = {
          unet: counted,
          vae,
          scheduler: fromConfig(scheduler.className, scheduler.config),
          vaeScaleFactor: vae.downsampleFactor,
          latentChannels: unet.unetConfig.in_channels,
          tokenizer: { tokenize: (prompts: readonly string[]) => tokenizer.encodeBatch(prompts) },
          textEncoder: {
            encode: async (ids: HostTensor<"int64">, o?: { readonly clipSkip?: number }) =>
              (await text.encode(ids, o?.clipSkip === undefined ? {} : { clipSkip: o.clipSkip }))
                .promptEmbeds,
          },
        };
        const animate: AnimateDiffCommonOptions = {
          ...common,
          prompt,
          negativePrompt: settings.negativePrompt ?? "",
          ...(settings.clipSkip === undefined ? {} : { clipSkip: settings.clipSkip }),
          ...(controls.length > 0 ? { controls } : {}),
          context: {
            contextLength: plan.context,
            overlap: plan.overlap,
            schedule: plan.schedule,
            fuse: plan.fuse,
          },
          vaeBatchSize: 1,
        };
        let result;
        if (plan.strength !== undefined) {
          result = await videoToVideo(components, {
            ...animate,
            video: videoTensor(sourceFrames),
            strength: plan.strength,
          });
        } else {
          let latents: HostTensor<"float32"> | undefined;
          if (plan.invert)
            latents = await invertedSource(
              motionDir,
              sourceFrames,
              vae,
              counted,
              components,
              plan,
              settings,
              steps,
              scheduler.config,
              options,
            );
          result = await textToVideo(components, {
            ...animate,
            numFrames: frames,
            ...size,
            ...(latents ? { latents } : {}),
          });
        }
        const [, f = 0, ...rest] = result.frames.shape;
        images = tensorToImages(tensor("float32", [f, ...rest], result.frames.data));
      }

      // 6. Frames
      options.onProgress?.({ status: "start", task: "video frames", total: frames });
      for (const [i, img] of images.entries()) {
        await writePngFile(work.framePath(i), img);
        options.onFrame?.(i, img);
        options.onProgress?.({ status: "progress", task: "video frames", done: i + 1, total: frames });
      }
      options.onProgress?.({ status: "done", task: "video frames" });
      generated = frames;
    }
    throwIfAborted(options.signal, "video");

    const wall = (Date.now() - started) / 1000;
    const seconds = Array<number>(frames).fill((recorded.seconds + wall) / frames);
    const run = {
      steadyframe: await packageVersion(),
      node: process.version,
      created: new Date().toISOString(),
      settings: fingerprint,
      strategy: planName(plan),
      motion: {
        ...motionSetting,
        pipeline:
          plan.kind === "t2v-zero"
            ? "TextToVideoZeroPipeline"
            : plan.strength !== undefined
              ? "AnimateDiffVideoToVideoPipeline"
              : "AnimateDiffPipeline",
        resumedAfterStep: recorded.replay.length > 0 ? recorded.replay.length - 1 : null,
        unetCallsThisRun: unetCalls,
      },
      scheduler: scheduler.className,
      fps,
      frames,
      generatedThisRun: generated,
      wallSecondsThisRun: wall,
      secondsPerFrame: seconds,
    };
    return await publishWholeVideo(
      { out: settings.out, isFolder, work, info, fps, run, generated, seconds, strategy: planName(plan) },
      options,
    );
  } finally {
    for (const r of releases.reverse()) await r();
    await source?.close();
  }
}

/**
 * The source frames' VAE means (x scaling_factor) inverted with DDIM over the whole schedule, guidance 1,
 * conditioned on the prompt: [1, C, F, h, w]. Saved in the work folder, so a resumed render reads it.
 */
async function invertedSource(
  motionDir: string,
  frames: readonly Image[],
  vae: AutoencoderKL,
  unet: MotionUNet,
  components: {
    readonly textEncoder: {
      encode: (
        ids: HostTensor<"int64">,
        o?: { readonly clipSkip?: number },
      ) => Promise<HostTensor<"float32">>;
    };
    readonly tokenizer: { tokenize: (p: readonly string[]) => HostTensor<"int64"> };
  },
  plan: AnimateDiffPlan,
  settings: VideoRenderSettings,
  steps: number,
  schedulerConfig: Record<string, unknown>,
  options: RenderOptions,
): Promise<HostTensor<"float32">> {
  const file = join(motionDir, "inverted.safetensors");
  const saved = await readFile(file).then(
    () => readSafetensors(file),
    () => undefined,
  );
  const latents = saved?.get("latents");
  if (latents?.dtype === "float32") return latents as HostTensor<"float32">;
  const clean = await vae.encodeLatents(videoTensor(frames), {
    mode: "mean",
    batchSize: 1,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const promptEmbeds = await components.textEncoder.encode(
    components.tokenizer.tokenize([typeof settings.prompt === "string" ? settings.prompt : ""]),
    settings.clipSkip === undefined ? {} : { clipSkip: settings.clipSkip },
  );
  const inverted = await invertLatents(
    { unet: inversionUNet(unet, plan), scheduler: fromConfig("ddim_inverse", schedulerConfig) },
    {
      latents: clean,
      promptEmbeds,
      numInferenceSteps: steps,
      guidanceScale: 1,
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    },
  );
  const video = framesToVideo(inverted.latents);
  await writeFileAtomic(file, serializeSafetensors({ latents: video }), { durable: false });
  return video;
}
