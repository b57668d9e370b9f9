/**
 * The processor of one segment job, run by BullMQ in a *sandbox*: a child process of the worker
 * (./worker.ts), which BullMQ keeps and reuses for the next job. Rendering blocks its process's event
 * loop (ONNX Runtime's Node binding runs a session synchronously, model graphs are built
 * synchronously), so it must not share a process with the timer that renews the job's lock: the
 * parent stays idle and renews it, and the lock can be short whatever the model.
 *
 * For each job: prepare the render exactly as the coordinator did (`prepareRender` with resume: the
 * work folder must exist with equal settings), take the pipeline from this process's cache (the last
 * render's models stay loaded between its segments), and run the engine's loop (`generateVideo`)
 * with `only` = the job's frames against the work folder: anchors and per-frame state come from the
 * recipes other workers wrote. A frame that is already there is skipped, or compared when two workers
 * raced on it (./checked-store.ts). When the worker stops (the job's signal), the job goes back to the
 * queue at once (moveToWait). When the worker process dies, this process exits too (IPC disconnect),
 * and the job returns to the queue through BullMQ's stalled check.
 *
 * The worker passes this machine's settings (device, cache folder) in STEADYFRAME_WORKER_OPTIONS.
 */
import { stat } from "node:fs/promises";
import { hostname } from "node:os";
import { WaitingError, type SandboxedJob } from "bullmq";
import { CancelledError, SteadyframeError } from "../errors.js";
import { generateVideo } from "../engine/generate-video.js";
import { packageVersion } from "../engine/render-common.js";
import {
  loadRenderPipeline,
  prepareRender,
  type PreparedRender,
  type RenderPipeline,
  type VideoRenderSettings,
} from "../engine/render.js";
import { workFolderFor } from "../engine/work-folder.js";
import type { ExecutionProvider } from "../runtime/session.js";
import { CheckedFrameStore } from "./checked-store.js";
import { FarmError } from "./farm-error.js";
import { WORKER_OPTIONS_ENV, readSegmentJob, type SegmentJobData, type SegmentResult } from "./job.js";
import { segmentLabel } from "./segments.js";

interface CachedPipeline {
  readonly pipeline: Promise<RenderPipeline>;
  users: number;
}

/** Pipelines by what they are built from; idle ones other than the one asked for are released. */
class PipelineCache {
  private readonly entries = new Map<string, CachedPipeline>();

  async acquire(
    settings: VideoRenderSettings,
    prepared: PreparedRender,
    signal: AbortSignal,
  ): Promise<{ pipeline: RenderPipeline; release: () => void }> {
    const fp = prepared.fingerprint;
    const key = JSON.stringify([
      fp["model"],
      fp["config"],
      fp["controlnets"],
      fp["loras"],
      prepared.crossFrame,
      settings.device,
      settings.cacheDir,
    ]);
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { pipeline: loadRenderPipeline(settings, prepared, { signal }), users: 0 };
      this.entries.set(key, entry);
    }
    entry.users++;
    for (const [k, other] of this.entries) {
      if (k === key || other.users > 0) continue;
      this.entries.delete(k);
      await other.pipeline.then((p) => p.release()).catch(() => undefined);
    }
    const mine = entry;
    try {
      const pipeline = await mine.pipeline;
      return { pipeline, release: () => void mine.users-- };
    } catch (error) {
      mine.users--;
      if (this.entries.get(key) === mine) this.entries.delete(key);
      throw error;
    }
  }
}

interface MachineOptions {
  readonly device?: readonly ExecutionProvider[];
  readonly cacheDir?: string;
}

function machineOptions(): MachineOptions {
  const text = process.env[WORKER_OPTIONS_ENV];
  if (text === undefined) return {};
  const parsed = JSON.parse(text) as { device?: ExecutionProvider[]; cacheDir?: string };
  return {
    ...(Array.isArray(parsed.device) ? { device: parsed.device } : {}),
    ...(typeof parsed.cacheDir === "string" ? { cacheDir: parsed.cacheDir } : {}),
  };
}

const pipelines = new PipelineCache();
const me = `${hostname()}:${process.pid}`;
const log = (line: string): void => void process.stderr.write(`worker ${me}: ${line}\n`);

// The worker process is gone (killed): stop at once, its job is recovered by the stalled check.
process.on("disconnect", () => process.exit(1));

export default async function processSegment(
  job: SandboxedJob<SegmentJobData, SegmentResult>,
  token: string | undefined,
  signal: AbortSignal | undefined,
): Promise<SegmentResult> {
  const t0 = performance.now();
  const where = `job ${job.id}`;
  const jobSignal = signal ?? new AbortController().signal;
  const { steadyframe, settings, frames } = readSegmentJob(job.data, where);
  const label = `${where} (frames ${segmentLabel(frames)} of ${settings.out})`;
  try {
    const version = await packageVersion();
    if (steadyframe !== version)
      throw new FarmError(`${where} comes from Steadyframe ${steadyframe}, this worker runs ${version}`, {
        hint: "run the same version on the coordinator and on every worker (frames must be bit-identical)",
      });
    if ((await stat(workFolderFor(settings.out)).catch(() => null)) === null) {
      log(`${label}: no work folder (the render was published or removed): nothing to do`);
      return { generated: 0, duplicates: 0, setupMs: 0, renderMs: 0, worker: me };
    }
    log(`${label}: started (attempt ${job.attemptsMade + 1})`);
    const local: VideoRenderSettings = { ...settings, ...machineOptions(), resume: true };
    const prepared = await prepareRender(local, { signal: jobSignal });
    try {
      const lease = await pipelines.acquire(local, prepared, jobSignal);
      try {
        const setupMs = performance.now() - t0;
        const wanted = new Set(frames);
        const store = new CheckedFrameStore(prepared.work);
        let reported = 0;
        const result = await generateVideo(lease.pipeline.videoComponents(local.scheduler), {
          ...prepared.generateOptions,
          store,
          only: (i) => wanted.has(i),
          signal: jobSignal,
          onProgress: (e) => {
            if (e.task !== "denoising" || e.status !== "progress" || Date.now() - reported < 200) return;
            reported = Date.now();
            job.updateProgress({ step: e.done, steps: e.total ?? 0 }).catch(() => undefined);
          },
        });
        const renderMs = performance.now() - t0 - setupMs;
        log(`${label}: ${result.generated} frame(s) in ${(renderMs / 1000).toFixed(1)} s`);
        return {
          generated: result.generated,
          duplicates: store.duplicates.length,
          setupMs,
          renderMs,
          worker: me,
        };
      } finally {
        lease.release();
      }
    } finally {
      await prepared.close();
    }
  } catch (error) {
    if (error instanceof CancelledError && jobSignal.aborted && token !== undefined) {
      await job.moveToWait(token);
      log(`${label}: stopped; back in the queue`);
      throw new WaitingError();
    }
    const message = error instanceof Error ? error.message : String(error);
    log(`${label}: failed: ${message}`);
    throw new FarmError(`worker ${me}: ${message.replace(/^render farm: /, "")}`, {
      cause: error,
      ...(error instanceof SteadyframeError && error.hint && !message.includes(error.hint)
        ? { hint: error.hint }
        : {}),
    });
  }
}
