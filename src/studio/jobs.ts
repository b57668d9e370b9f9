/**
 * The studio's long actions as jobs: renders (renderVideo, src/engine/render.ts) and comparisons
 * (writeStudyReport, src/study/report.ts). Jobs run one at a time, in the order they were asked for
 * (the machine's cores are shared by one ONNX Runtime session at a time); each has an AbortController
 * for Cancel. Every change (state, task, step, frame) is published to the listeners, which the server
 * turns into server-sent events.
 */
import { InvalidArgumentError, SteadyframeError } from "../errors.js";
import type { ProgressEvent } from "../progress.js";
import type { ApiError, ApiEvent, ApiJob, JobState } from "./api.js";
import { apiError } from "./http.js";

/** What a job's work gets: its signal, a progress sink and a frame sink. */
export interface JobContext {
  readonly signal: AbortSignal;
  readonly progress: (event: ProgressEvent) => void;
  readonly frame: (index: number) => void;
}

interface Job {
  api: ApiJob;
  readonly controller: AbortController;
  readonly work: (context: JobContext) => Promise<void>;
  /** Called when the job ends, whatever the outcome (removes partial outputs of a failed render). */
  readonly cleanup?: (state: JobState) => Promise<void>;
}

const KEEP_FINISHED = 100;
/** Progress-only changes of a job are sent at most this often (model loading reports every tensor). */
const PROGRESS_INTERVAL_MS = 100;

export class JobQueue {
  private readonly jobs = new Map<string, Job>();
  private readonly listeners = new Set<(event: ApiEvent) => void>();
  private running: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly pending = new Map<string, ReturnType<typeof setTimeout>>();

  /** `describe` rewrites task names for the page (e.g. drops the models folder from paths). */
  constructor(private readonly describe: (task: string) => string = (t) => t) {}

  /** Subscribes to events; returns the unsubscribe function. */
  listen(listener: (event: ApiEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  list(): ApiJob[] {
    return [...this.jobs.values()].map((j) => j.api);
  }

  get(id: string): ApiJob | undefined {
    return this.jobs.get(id)?.api;
  }

  /** Queues a job; it runs after the ones before it. */
  add(
    id: string,
    kind: ApiJob["kind"],
    title: string,
    work: (context: JobContext) => Promise<void>,
    cleanup?: (state: JobState) => Promise<void>,
  ): ApiJob {
    if (this.closed) throw new InvalidArgumentError("job", "a running studio", "the studio is stopping");
    const api: ApiJob = {
      id,
      kind,
      state: "queued",
      title,
      task: null,
      done: 0,
      total: null,
      frames: { done: 0, total: null },
      steps: { done: 0, total: null },
      finished: [],
      error: null,
      started: new Date().toISOString(),
    };
    const job: Job = { api, controller: new AbortController(), work, ...(cleanup ? { cleanup } : {}) };
    this.jobs.set(id, job);
    this.prune();
    this.emit({ type: "job", job: api });
    this.running = this.running.then(() => this.run(job));
    return api;
  }

  /** Cancels a queued or running job; false when there is no such job still going. */
  cancel(id: string): boolean {
    const job = this.jobs.get(id);
    if (job === undefined || (job.api.state !== "queued" && job.api.state !== "running")) return false;
    job.controller.abort(new Error("cancelled in the studio"));
    if (job.api.state === "queued") this.update(job, { state: "cancelled", task: null });
    return true;
  }

  /** Cancels everything and waits for the running job to stop. */
  async close(): Promise<void> {
    this.closed = true;
    for (const id of this.jobs.keys()) this.cancel(id);
    await this.running;
    this.listeners.clear();
  }

  private emit(event: ApiEvent): void {
    for (const l of this.listeners) l(event);
  }

  private update(job: Job, change: Partial<ApiJob>, progressOnly = false): void {
    job.api = { ...job.api, ...change };
    const id = job.api.id;
    if (progressOnly) {
      if (!this.pending.has(id))
        this.pending.set(
          id,
          setTimeout(() => {
            this.pending.delete(id);
            this.emit({ type: "job", job: job.api });
          }, PROGRESS_INTERVAL_MS),
        );
      return;
    }
    clearTimeout(this.pending.get(id));
    this.pending.delete(id);
    this.emit({ type: "job", job: job.api });
  }

  private prune(): void {
    const done = [...this.jobs.values()].filter((j) => j.api.state !== "queued" && j.api.state !== "running");
    for (const j of done.slice(0, Math.max(0, done.length - KEEP_FINISHED))) this.jobs.delete(j.api.id);
  }

  private async run(job: Job): Promise<void> {
    if (job.controller.signal.aborted) {
      await job.cleanup?.("cancelled").catch(() => undefined);
      return;
    }
    this.update(job, { state: "running", task: "starting" });
    const context: JobContext = {
      signal: job.controller.signal,
      progress: (e) => this.progress(job, e),
      frame: (index) => {
        job.api = { ...job.api, finished: [...job.api.finished, index] };
        this.emit({ type: "frame", id: job.api.id, index });
      },
    };
    let state: JobState = "done";
    let error: ApiError | null = null;
    try {
      await job.work(context);
    } catch (e) {
      const cancelled =
        job.controller.signal.aborted || (e instanceof SteadyframeError && e.code === "E_CANCELLED");
      state = cancelled ? "cancelled" : "failed";
      error = cancelled ? null : apiError(e);
      if (!cancelled && !(e instanceof SteadyframeError)) console.error(e);
    }
    await job.cleanup?.(state).catch(() => undefined);
    this.update(job, { state, error, task: null });
  }

  private progress(job: Job, e: ProgressEvent): void {
    const given = "total" in e && e.total !== undefined ? e.total : null;
    const count = (before: { done: number; total: number | null }) => {
      const total = given ?? (e.status === "start" ? null : before.total);
      const done = e.status === "progress" ? e.done : e.status === "done" ? (total ?? before.done) : 0;
      return { done, total };
    };
    if (e.task === "video frames")
      this.update(job, { task: "rendering", frames: count(job.api.frames) }, true);
    else if (e.task === "denoising")
      this.update(job, { task: "rendering", steps: count(job.api.steps) }, true);
    else this.update(job, { task: this.describe(e.task), ...count(job.api) }, true);
  }
}
