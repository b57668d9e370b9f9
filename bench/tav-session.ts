/**
 * Child process of the Tune-A-Video benchmark (tav.ts): opens the written tuning-step model (CPU
 * provider, intra-op threads), feeds the trainable parameters their initial values (read from the raw
 * float32 file the parent wrote, in the order of `job.params`) and random latents / target / text
 * embeddings, and times a warm-up + N steps with peak RSS sampled from a worker thread. Prints one
 * JSON object (TavRunResult). The parent watches this process's RSS and kills it past its budget.
 */
import { open } from "node:fs/promises";
import { loadavg } from "node:os";
import { createSession } from "../src/runtime/session.js";
import { type HostTensor, tensor } from "../src/tensor.js";
import { RssSampler, maxRssMiB } from "./rss.js";
import { log, round, timeSteps } from "./stats.js";

export interface TavParamSlot {
  readonly name: string;
  /** Shape in the graph's layout. */
  readonly shape: readonly number[];
  /** Element offset in the raw float32 file. */
  readonly offset: number;
}

export interface TavRunJob {
  readonly label: string;
  readonly modelPath: string;
  /** Raw little-endian float32 values of the trainable parameters, back to back. */
  readonly paramsPath: string;
  readonly params: readonly TavParamSlot[];
  readonly threads: number;
  readonly runs: number;
}

export interface TavRunResult {
  readonly label: string;
  readonly createSeconds: number;
  readonly warmupSeconds: number;
  readonly runSeconds: readonly number[];
  readonly medianSeconds: number;
  readonly bestSeconds: number;
  /** The loss of the warm-up step (finite = the step ran end to end). */
  readonly loss: number;
  /** Peak sampled RSS over creation and the runs (MiB). */
  readonly peakRssMiB: number;
  /** Peak sampled RSS during the steps only (MiB). */
  readonly peakRunRssMiB: number;
  readonly maxRssMiB: number;
  /** 1-minute load average before the warm-up and after the last step. */
  readonly loadAverage: { readonly start: number; readonly end: number };
}

async function readParams(job: TavRunJob): Promise<Record<string, HostTensor>> {
  const out: Record<string, HostTensor> = {};
  const file = await open(job.paramsPath, "r");
  try {
    for (const p of job.params) {
      const n = p.shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(n);
      await file.read(new Uint8Array(data.buffer), 0, n * 4, p.offset * 4);
      out[p.name] = tensor("float32", p.shape, data);
    }
  } finally {
    await file.close();
  }
  return out;
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? "{}") as TavRunJob;
  const sampler = new RssSampler(50);
  const t0 = performance.now();
  const session = await createSession(job.modelPath, { intraOpNumThreads: job.threads });
  const createSeconds = (performance.now() - t0) / 1000;
  log(`${job.label}: session created in ${createSeconds.toFixed(1)} s`);
  const feeds = await readParams(job);
  for (const spec of session.inputs) {
    if (spec.name in feeds) continue;
    const shape = spec.shape.map((d) => (typeof d === "number" ? d : 1));
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (spec.name === "timestep") data.fill(500);
    else for (let i = 0; i < n; i++) data[i] = Math.random() * 2 - 1;
    feeds[spec.name] = tensor("float32", shape, data);
  }
  const peakCreate = sampler.peakMiB();
  sampler.reset();
  const loadStart = loadavg()[0] ?? 0;
  let warmupLoss = Number.NaN;
  const times = await timeSteps(job.label, job.runs, async () => {
    const out = await session.run(feeds);
    const l = out["loss"];
    if (l && Number.isNaN(warmupLoss)) warmupLoss = Number(l.data[0]);
  });
  log(`${job.label}: loss of the warm-up step ${warmupLoss.toFixed(4)}`);
  const loadEnd = loadavg()[0] ?? 0;
  const peakRun = sampler.peakMiB();
  await sampler.stop();
  await session.release();
  const result: TavRunResult = {
    label: job.label,
    createSeconds: round(createSeconds),
    ...times,
    loss: round(warmupLoss, 6),
    peakRssMiB: Math.max(peakCreate, peakRun),
    peakRunRssMiB: peakRun,
    maxRssMiB: maxRssMiB(),
    loadAverage: { start: round(loadStart, 3), end: round(loadEnd, 3) },
  };
  process.stdout.write(JSON.stringify(result));
}

await main();
