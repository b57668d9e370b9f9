/**
 * Child process of the training benchmark: opens one written model (src/runtime/session.ts options:
 * CPU provider, intra-op threads), feeds random float inputs of its static input shapes, and times a
 * warm-up + N runs with peak RSS sampled from a worker thread. Prints one JSON object (TrainRunResult).
 */
import { createSession } from "../src/runtime/session.js";
import { type HostTensor, tensor } from "../src/tensor.js";
import { RssSampler, maxRssMiB } from "./rss.js";
import { round, timeSteps } from "./stats.js";

export interface TrainRunJob {
  readonly label: string;
  readonly modelPath: string;
  readonly threads: number;
  readonly runs: number;
}

export interface TrainRunResult {
  readonly label: string;
  readonly createSeconds: number;
  readonly warmupSeconds: number;
  readonly runSeconds: readonly number[];
  readonly medianSeconds: number;
  readonly bestSeconds: number;
  /** Peak sampled RSS over creation and the runs (MiB). */
  readonly peakRssMiB: number;
  /** Peak sampled RSS during the runs only (MiB). */
  readonly peakRunRssMiB: number;
  readonly maxRssMiB: number;
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? "{}") as TrainRunJob;
  const sampler = new RssSampler(50);
  const t0 = performance.now();
  const session = await createSession(job.modelPath, { intraOpNumThreads: job.threads });
  const createSeconds = (performance.now() - t0) / 1000;
  const feeds: Record<string, HostTensor> = {};
  for (const spec of session.inputs) {
    const shape = spec.shape.map((d) => (typeof d === "number" ? d : 1));
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = (Math.random() * 2 - 1) * (spec.name === "timestep" ? 0 : 1);
    if (spec.name === "timestep") data.fill(500);
    feeds[spec.name] = tensor("float32", shape, data);
  }
  const peakCreate = sampler.peakMiB();
  sampler.reset();
  const times = await timeSteps(job.label, job.runs, () => session.run(feeds));
  const peakRun = sampler.peakMiB();
  await sampler.stop();
  await session.release();
  const result: TrainRunResult = {
    label: job.label,
    createSeconds: round(createSeconds),
    ...times,
    peakRssMiB: Math.max(peakCreate, peakRun),
    peakRunRssMiB: peakRun,
    maxRssMiB: maxRssMiB(),
  };
  process.stdout.write(JSON.stringify(result));
}

await main();
