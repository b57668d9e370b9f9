/**
 * Resident-set-size sampling from a worker thread, so samples keep coming while the main thread
 * waits on (or is blocked by) a long ORT run. The peak since the last reset is kept in shared memory.
 */
import { Worker } from "node:worker_threads";
import { mib } from "./stats.js";

const WORKER_CODE = `
const { workerData } = require("node:worker_threads");
const cells = new Int32Array(workerData.buffer);
const sample = () => {
  const kib = Math.round(process.memoryUsage.rss() / 1024);
  if (kib > Atomics.load(cells, 0)) Atomics.store(cells, 0, kib);
  Atomics.store(cells, 1, kib);
};
sample();
setInterval(sample, workerData.intervalMs);
`;

export class RssSampler {
  private readonly cells = new Int32Array(new SharedArrayBuffer(8));
  private readonly worker: Worker;

  constructor(intervalMs = 100) {
    this.worker = new Worker(WORKER_CODE, {
      eval: true,
      workerData: { buffer: this.cells.buffer, intervalMs },
    });
    this.worker.unref();
  }

  /** Highest sampled RSS (MiB) since construction or the last reset. */
  peakMiB(): number {
    return mib(Math.max(Atomics.load(this.cells, 0) * 1024, process.memoryUsage.rss()));
  }

  /** Starts a new peak window at the current RSS. */
  reset(): void {
    Atomics.store(this.cells, 0, Math.round(process.memoryUsage.rss() / 1024));
  }

  async stop(): Promise<void> {
    await this.worker.terminate();
  }
}

/** Lifetime peak RSS of this process (getrusage maxrss, KiB on Linux), in MiB. */
export function maxRssMiB(): number {
  return mib(process.resourceUsage().maxRSS * 1024);
}

/** Current RSS in MiB. */
export function rssMiB(): number {
  return mib(process.memoryUsage.rss());
}
