/**
 * `steadyframe worker --redis redis://HOST:PORT`: takes segment jobs (./job.ts) from the farm's BullMQ
 * queue until stopped. Each job runs in a BullMQ *sandbox* — a child process that BullMQ keeps for
 * the next job — with ./segment-processor.ts; this process only talks to Redis, so its event loop is
 * free to renew the job's lock however long a model call blocks the child.
 *
 * Delivery is at least once, made safe:
 * - every frame file is written atomically, and a frame already in the work folder is skipped or
 *   compared, never written twice (./checked-store.ts);
 * - a worker killed mid-job loses nothing: its lock is no longer renewed, and after `lockDuration`
 *   another worker's stalled check (every `stalledInterval`) puts the job back in the queue; whoever
 *   takes it skips the frames already finished. A job may be recovered `maxStalledCount` times;
 * - a job that throws is retried (`attempts`, exponential backoff: set by the coordinator);
 * - stopping (`signal`, Ctrl-C) cancels the running jobs at their next denoising step and puts them
 *   back in the queue at once, so another worker continues them.
 */
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "bullmq";
import type { ExecutionProvider } from "../runtime/session.js";
import { QUEUE_NAME, checkRedis, describeRedis, type FarmConnection } from "./connection.js";
import { WORKER_OPTIONS_ENV, type SegmentJobData, type SegmentResult } from "./job.js";

export type { SegmentResult };

/**
 * Lock and stalled-check timing. A killed worker's job is back in the queue after at most about
 * lockDuration + 2 x stalledInterval; the lock is renewed every lockDuration / 2 by this process,
 * whose event loop the rendering (in the sandbox) does not block.
 */
export const WORKER_DEFAULTS = { lockDurationMs: 30_000, stalledIntervalMs: 15_000, maxStalledCount: 2 };

export interface FarmWorkerOptions {
  readonly redis: FarmConnection;
  /** (optional, default 1) jobs at once (one sandbox process, and one set of loaded models, each). */
  readonly concurrency?: number;
  /** (optional) execution providers of this machine (every worker of a render should use the same). */
  readonly device?: readonly ExecutionProvider[];
  /** (optional) compiled-model cache folder of this machine. */
  readonly cacheDir?: string;
  /** (optional, default 30000) how long a job's lock lasts without renewal, ms. */
  readonly lockDurationMs?: number;
  /** (optional, default 15000) how often this worker looks for jobs of dead workers, ms. */
  readonly stalledIntervalMs?: number;
  /** (optional, default 2) how often one job may be recovered from dead workers before it fails. */
  readonly maxStalledCount?: number;
  /** Stops the worker: running jobs go back to the queue, then it disconnects. */
  readonly signal?: AbortSignal;
  /** (optional) one line per event of this process (ready, failed jobs, stopping); the sandbox's
   * lines (job started, finished) go to this process's stderr. */
  readonly log?: (line: string) => void;
}

/** The sandbox module next to this one (.ts under tsx, .js once built). */
function processorFile(): URL {
  const ext = extname(fileURLToPath(import.meta.url));
  return new URL(`./segment-processor${ext}`, import.meta.url);
}

/** Runs a farm worker until `signal` fires; returns the number of jobs it completed. */
export async function runFarmWorker(options: FarmWorkerOptions): Promise<{ jobs: number }> {
  const log = options.log ?? (() => undefined);
  await checkRedis(options.redis, "--redis");
  const concurrency = options.concurrency ?? 1;
  const machine = {
    ...(options.device ? { device: options.device } : {}),
    ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
  };
  const worker = new Worker<SegmentJobData, SegmentResult>(QUEUE_NAME, processorFile(), {
    connection: options.redis,
    concurrency,
    lockDuration: options.lockDurationMs ?? WORKER_DEFAULTS.lockDurationMs,
    stalledInterval: options.stalledIntervalMs ?? WORKER_DEFAULTS.stalledIntervalMs,
    maxStalledCount: options.maxStalledCount ?? WORKER_DEFAULTS.maxStalledCount,
    workerForkOptions: { env: { ...process.env, [WORKER_OPTIONS_ENV]: JSON.stringify(machine) } },
  });
  let completed = 0;
  worker.on("completed", () => void completed++);
  worker.on("failed", (job, error) => {
    if (error.name !== "WaitingError") log(`job ${job?.id ?? "?"} failed: ${error.message}`);
  });
  worker.on("error", (error) => log(`queue: ${error.message}`));
  await worker.waitUntilReady();
  log(
    `ready: ${describeRedis(options.redis)}, queue ${QUEUE_NAME}, concurrency ${concurrency} (pid ${process.pid})`,
  );
  await new Promise<void>((resolve) => {
    if (options.signal?.aborted) resolve();
    options.signal?.addEventListener("abort", () => resolve(), { once: true });
  });
  log("stopping: running jobs go back to the queue");
  worker.cancelAllJobs("worker stopping");
  await worker.close();
  log(`stopped after ${completed} job(s)`);
  return { jobs: completed };
}
