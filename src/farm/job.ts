/**
 * A segment job as it travels through Redis: the render's settings (every path made absolute, so a
 * worker in another folder or on another machine with the same mounts finds the same files), the
 * frames to generate, the render's id and the coordinator's Steadyframe version. A worker reads the
 * data back with `readSegmentJob`, which checks its shape: the queue is shared, so the data is not
 * trusted blindly.
 *
 * Settings that belong to a machine (`device`, `cacheDir`) are not sent: each worker has its own.
 */
import { isAbsolute, resolve } from "node:path";
import { ConfigError } from "../errors.js";
import type { VideoRenderSettings } from "../engine/render.js";

export interface SegmentJobData {
  /** Steadyframe version of the coordinator; a worker of another version refuses the job. */
  readonly steadyframe: string;
  /** The render's id (its work folder's farm.json), shared by all its jobs. */
  readonly renderId: string;
  /** VideoRenderSettings as JSON: absolute paths, `seed` as a decimal string. */
  readonly settings: Readonly<Record<string, unknown>>;
  /** Frames this job generates (the others must be finished when they are needed). */
  readonly frames: readonly number[];
}

/** The environment variable carrying a worker's machine settings (device, cacheDir) to its sandbox. */
export const WORKER_OPTIONS_ENV = "STEADYFRAME_WORKER_OPTIONS";

/** What a worker reports for a finished job (the job's return value). */
export interface SegmentResult {
  /** Frames this job generated (the rest were already there). */
  readonly generated: number;
  /** Frames another worker had written meanwhile (identical, not written again). */
  readonly duplicates: number;
  /** Job start to first denoising: checks, work folder, pipeline (about 0 when cached), ms. */
  readonly setupMs: number;
  /** Generating the frames, ms. */
  readonly renderMs: number;
  /** host:pid of the process that rendered. */
  readonly worker: string;
}

const abs = (p: string): string => resolve(p);

/** The settings a worker receives: absolute paths; no device, cache folder or resume flag. */
export function farmSettings(settings: VideoRenderSettings): VideoRenderSettings {
  const { device, cacheDir, resume, ...rest } = settings;
  void device;
  void cacheDir;
  void resume;
  return {
    ...rest,
    model: abs(rest.model),
    out: abs(rest.out),
    ...(rest.source === undefined ? {} : { source: abs(rest.source) }),
    ...(rest.config === undefined ? {} : { config: abs(rest.config) }),
    ...(rest.controlnets === undefined
      ? {}
      : { controlnets: rest.controlnets.map((n) => ({ ...n, path: abs(n.path) })) }),
    ...(rest.loras === undefined ? {} : { loras: rest.loras.map((l) => ({ ...l, path: abs(l.path) })) }),
    ...(rest.depthModel === undefined ? {} : { depthModel: abs(rest.depthModel) }),
    ...(rest.softEdgeModel === undefined ? {} : { softEdgeModel: abs(rest.softEdgeModel) }),
    ...(rest.firstControlImage === undefined ? {} : { firstControlImage: abs(rest.firstControlImage) }),
  };
}

/** The job data of `frames` of a render (settings from farmSettings). */
export function segmentJobData(
  steadyframe: string,
  renderId: string,
  settings: VideoRenderSettings,
  frames: readonly number[],
): SegmentJobData {
  const json = JSON.parse(
    JSON.stringify(settings, (_, v: unknown) => (typeof v === "bigint" ? v.toString() : v)),
  ) as Record<string, unknown>;
  return { steadyframe, renderId, settings: json, frames: [...frames] };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Checks a job's data and turns it back into settings and frames; a ConfigError naming the field. */
export function readSegmentJob(
  data: unknown,
  where: string,
): {
  readonly steadyframe: string;
  readonly renderId: string;
  readonly settings: VideoRenderSettings;
  readonly frames: number[];
} {
  const bad = (field: string, expected: string, received: unknown): never => {
    throw new ConfigError(where, field, expected, received, {
      hint: "the job was not made by `steadyframe video --queue` of this version; remove it from the queue",
    });
  };
  if (!isRecord(data)) return bad("(root)", "an object", data);
  const { steadyframe, renderId, settings, frames } = data;
  if (typeof steadyframe !== "string") bad("steadyframe", "a version string", steadyframe);
  if (typeof renderId !== "string" || !/^[\w-]+$/.test(renderId)) bad("renderId", "an id", renderId);
  if (!Array.isArray(frames) || frames.length === 0 || !frames.every((f) => Number.isInteger(f) && f >= 0))
    bad("frames", "a non-empty list of frame indices", frames);
  if (!isRecord(settings)) return bad("settings", "an object", settings);
  for (const key of ["model", "out"] as const) {
    const v = settings[key];
    if (typeof v !== "string" || !isAbsolute(v)) bad(`settings.${key}`, "an absolute path", v);
  }
  if (typeof settings["prompt"] !== "string" && !isRecord(settings["prompt"]))
    bad("settings.prompt", "a prompt or a prompt schedule", settings["prompt"]);
  if (!isRecord(settings["strategy"])) bad("settings.strategy", "a strategy object", settings["strategy"]);
  if ("motion" in settings)
    bad("settings.motion", "no motion pipeline (farm renders are per-frame)", "motion");
  const seed = settings["seed"];
  if (seed !== undefined && (typeof seed !== "string" || !/^-?\d+$/.test(seed)))
    bad("settings.seed", "a decimal integer string", seed);
  // The shape is checked above; every other field is checked by prepareRender, as for the CLI.
  const parsed = {
    ...settings,
    ...(seed === undefined ? {} : { seed: BigInt(seed as string) }),
  } as VideoRenderSettings;
  return {
    steadyframe: steadyframe as string,
    renderId: renderId as string,
    settings: parsed,
    frames: frames as number[],
  };
}
