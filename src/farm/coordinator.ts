/**
 * `steadyframe video ... --queue redis://HOST:PORT`: the coordinator of a render spread over
 * machines. It runs every check a single-process render runs (`prepareRender`, src/engine/render.ts),
 * creates the work folder, and instead of generating frames itself enqueues *segment jobs* on the
 * BullMQ queue (./connection.ts) that `steadyframe worker` processes (./worker.ts):
 *
 *   1. the first job: the engine's first batch (frame 0, or the key frames every later batch reads);
 *   2. then segments of whole batches (./segments.ts): all at once when the frames are independent,
 *      one after the other when the render is chained (`isChained`: previous-output controls,
 *      content-flow, flow fusion, state carried from frame to frame).
 *
 * Ordering is *explicit enqueue-on-completion*: the coordinator adds the next job(s) when a job has
 * completed and its frames are on disk. One mechanism serves both shapes (a BullMQ flow cannot say
 * "one first job, then many in parallel": a job has a single parent), nothing is enqueued that cannot
 * run yet, and a failed segment stops the render before later segments waste work on it. The
 * coordinator has to stay up anyway to show progress and publish.
 *
 * Job ids are `<render id>-<frames>`, the render id kept in the work folder's farm.json, so a
 * coordinator restarted with --resume finds the jobs its predecessor left in the queue instead of
 * adding them twice. Progress is counted from the work folder's frames/ (what a worker has really
 * finished); step progress comes from the jobs' progress events. When every frame is there the
 * output is published exactly as a single-process render publishes it (`publishPreparedRender`).
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Queue, QueueEvents, type Job } from "bullmq";
import { CancelledError, InvalidArgumentError } from "../errors.js";
import { batchPlan, isChained } from "../engine/generate-video.js";
import { packageVersion } from "../engine/render-common.js";
import {
  prepareRender,
  publishPreparedRender,
  type RenderOptions,
  type RenderedVideo,
  type VideoRenderSettings,
} from "../engine/render.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import { QUEUE_NAME, checkRedis, describeRedis, type FarmConnection } from "./connection.js";
import { FarmError } from "./farm-error.js";
import { farmSettings, segmentJobData, type SegmentJobData, type SegmentResult } from "./job.js";
import { DEFAULT_SEGMENT, farmPlan, segmentLabel } from "./segments.js";

export interface FarmRenderOptions extends RenderOptions {
  /** The Redis server of the queue (parseRedisUrl). */
  readonly queue: FarmConnection;
  /** (optional, default 8) frames per segment job (whole batches). */
  readonly segment?: number;
  /** (optional, default 3) tries of a job that throws, with exponential backoff from 2 s. */
  readonly attempts?: number;
  /** (optional, default 500) how often the work folder is counted for progress, in ms. */
  readonly pollMs?: number;
  /** (optional) notes for the person running the render (no worker yet, a job retried). */
  readonly log?: (line: string) => void;
}

/** One segment job as the coordinator saw it (for the bench's queue-overhead numbers). */
export interface SegmentTiming {
  readonly jobId: string;
  readonly frames: readonly number[];
  /** Date.now() values: added to the queue, taken by a worker, finished there, seen here. */
  readonly enqueuedAt: number;
  readonly startedAt: number | undefined;
  readonly finishedAt: number | undefined;
  readonly noticedAt: number;
  /** The worker's report (undefined for a job an earlier coordinator had already finished). */
  readonly result: SegmentResult | undefined;
}

export interface FarmRenderResult extends RenderedVideo {
  readonly chained: boolean;
  readonly segments: readonly SegmentTiming[];
}

/** The render id of a work folder: read from farm.json, or made and written there. */
async function renderIdOf(dir: string): Promise<string> {
  const file = join(dir, "farm.json");
  const saved = await readFile(file, "utf8").then(
    (text) => (JSON.parse(text) as { renderId?: unknown }).renderId,
    () => undefined,
  );
  if (typeof saved === "string" && /^[\da-f]{12}$/.test(saved)) return saved;
  const renderId = randomBytes(6).toString("hex");
  await writeFileAtomic(file, `${JSON.stringify({ renderId }, null, 2)}\n`);
  return renderId;
}

export async function renderOnFarm(
  settings: VideoRenderSettings,
  options: FarmRenderOptions,
): Promise<FarmRenderResult> {
  if (settings.motion)
    throw new InvalidArgumentError("--queue", "a per-frame strategy render", "a motion pipeline", {
      hint: "--motion-adapter and --motion-field denoise the whole video at once; render them without --queue",
    });
  const segment = options.segment ?? DEFAULT_SEGMENT;
  farmPlan([], false, segment); // checks --segment before anything is written
  await checkRedis(options.queue, "--queue");
  const shared = farmSettings(settings);
  const prepared = await prepareRender(
    { ...shared, ...(settings.resume === undefined ? {} : { resume: settings.resume }) },
    options,
  );
  const log = options.log ?? (() => undefined);
  const queue = new Queue<SegmentJobData, SegmentResult>(QUEUE_NAME, { connection: options.queue });
  const events = new QueueEvents(QUEUE_NAME, { connection: options.queue });
  queue.on("error", () => undefined); // connection errors surface as rejected calls below
  events.on("error", () => undefined);
  let poll: NodeJS.Timeout | undefined;
  try {
    const { work, info, methods } = prepared;
    const version = await packageVersion();
    const renderId = await renderIdOf(work.dir);
    const chained = isChained(methods);
    const plan = farmPlan(batchPlan(info, methods, prepared.generateOptions.batch ?? 1), chained, segment);
    const already = new Set(await work.finishedFrames());
    await events.waitUntilReady();
    if ((await queue.getWorkersCount()) === 0)
      log(
        `no worker is connected to ${describeRedis(options.queue)} yet: start one with 'steadyframe worker --redis ${describeRedis(options.queue)}'`,
      );

    // Progress: frames counted in the work folder, steps from the jobs' progress events.
    const ours = new Set<string>();
    const seen = new Set(already);
    const task = "video frames";
    options.onProgress?.({ status: "start", task, total: info.frames });
    options.onProgress?.({ status: "progress", task, done: seen.size, total: info.frames });
    options.onProgress?.({ status: "start", task: "denoising", total: info.numInferenceSteps });
    events.on("progress", ({ jobId, data }) => {
      if (!ours.has(jobId) || typeof data !== "object" || data === null) return;
      const { step, steps } = data as { step?: unknown; steps?: unknown };
      if (typeof step === "number" && typeof steps === "number")
        options.onProgress?.({ status: "progress", task: "denoising", done: step, total: steps });
    });
    let counting = Promise.resolve();
    const count = (): Promise<void> =>
      (counting = counting.then(async () => {
        const fresh = (await work.finishedFrames()).filter((i) => !seen.has(i));
        for (const i of fresh) {
          seen.add(i);
          if (options.onFrame) options.onFrame(i, await work.image(i));
        }
        if (fresh.length > 0)
          options.onProgress?.({ status: "progress", task, done: seen.size, total: info.frames });
      }));
    poll = setInterval(() => void count().catch(() => undefined), options.pollMs ?? 500);

    const started = Date.now();
    const timings: SegmentTiming[] = [];
    const stages = plan.chained
      ? [[plan.first], ...plan.segments.map((s) => [s])]
      : [[plan.first], plan.segments];
    const cancelled = new Promise<never>((_, reject) => {
      const abort = (): void => reject(new CancelledError("video", { cause: options.signal?.reason }));
      if (options.signal?.aborted) abort();
      options.signal?.addEventListener("abort", abort, { once: true });
    });
    cancelled.catch(() => undefined);

    for (const stage of stages) {
      const todo = [];
      for (const frames of stage) {
        if (frames.length === 0) continue;
        let missing = false;
        for (const f of frames) if (!(await work.has(f))) missing = true;
        if (missing) todo.push(frames);
      }
      const jobs: { frames: readonly number[]; job: Job<SegmentJobData, SegmentResult> }[] = [];
      for (const frames of todo) {
        const job = await addSegment(
          queue,
          renderId,
          frames,
          segmentJobData(version, renderId, shared, frames),
          options.attempts ?? 3,
        );
        ours.add(job.id ?? "");
        jobs.push({ frames, job });
      }
      try {
        await Promise.race([
          Promise.all(
            jobs.map(async ({ frames, job }) => {
              const result = await job.waitUntilFinished(events).catch((error: unknown) => {
                throw new FarmError(
                  `segment ${segmentLabel(frames)} (job ${job.id}) failed after its attempts: ${(error instanceof Error ? error.message : String(error)).replace(/^render farm: /, "")}`,
                  {
                    hint: `the finished frames are kept in ${work.dir}; fix the cause and run the same command with --resume`,
                    cause: error,
                  },
                );
              });
              const noticedAt = Date.now();
              for (const f of frames) {
                if (!(await work.has(f)))
                  throw new FarmError(
                    `segment ${segmentLabel(frames)} (job ${job.id}) completed without frame ${f}`,
                    {
                      hint: `every worker must see ${work.dir} at the same path (a shared filesystem)`,
                    },
                  );
              }
              const done = await queue.getJob(job.id ?? "");
              timings.push({
                jobId: job.id ?? "",
                frames,
                enqueuedAt: done?.timestamp ?? job.timestamp,
                startedAt: done?.processedOn,
                finishedAt: done?.finishedOn,
                noticedAt,
                result: (result as SegmentResult | undefined) ?? undefined,
              });
            }),
          ),
          cancelled,
        ]);
      } catch (error) {
        await removeWaiting(queue, ours);
        throw error;
      }
    }
    clearInterval(poll);
    poll = undefined;
    await count();
    options.onProgress?.({ status: "done", task: "denoising" });
    options.onProgress?.({ status: "done", task });
    const missing: number[] = [];
    for (let i = 0; i < info.frames; i++) if (!(await work.has(i))) missing.push(i);
    if (missing.length > 0)
      throw new FarmError(
        `frames ${segmentLabel(missing)} are missing from ${work.dir} after every job finished`,
        {
          hint: "every worker must see the work folder at the same path; run the same command with --resume",
        },
      );
    const published = await publishPreparedRender(
      settings,
      prepared,
      { generated: info.frames - already.size, started },
      options,
    );
    return { ...published, chained, segments: timings };
  } finally {
    if (poll) clearInterval(poll);
    await events.close().catch(() => undefined);
    await queue.close().catch(() => undefined);
    await prepared.close();
  }
}

/**
 * Adds a segment job, or returns the one an earlier coordinator of this render left waiting or
 * running; a failed or completed job of the same id (its frames are missing) is replaced.
 */
async function addSegment(
  queue: Queue<SegmentJobData, SegmentResult>,
  renderId: string,
  frames: readonly number[],
  data: SegmentJobData,
  attempts: number,
): Promise<Job<SegmentJobData, SegmentResult>> {
  const jobId = `${renderId}-${segmentLabel(frames)}`;
  const existing = await queue.getJob(jobId);
  if (existing) {
    const state = await existing.getState();
    if (state !== "failed" && state !== "completed") return existing;
    await existing.remove();
  }
  return queue.add("segment", data, {
    jobId,
    attempts,
    backoff: { type: "exponential", delay: 2000 },
    removeOnComplete: { age: 24 * 3600 },
    removeOnFail: { age: 7 * 24 * 3600 },
  });
}

/** Removes this render's jobs that no worker has started (Ctrl-C or a failed segment). */
async function removeWaiting(
  queue: Queue<SegmentJobData, SegmentResult>,
  ids: ReadonlySet<string>,
): Promise<void> {
  for (const id of ids) {
    const job = await queue.getJob(id).catch(() => undefined);
    const state = await job?.getState().catch(() => "unknown");
    if (job && (state === "waiting" || state === "delayed" || state === "prioritized"))
      await job.remove().catch(() => undefined);
  }
}
