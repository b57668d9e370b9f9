/**
 * Child process of the UNet benchmark: loads one written UNet model and times it, so its peak RSS
 * (getrusage maxrss + worker-thread samples) covers only session creation and the runs. Prints one
 * JSON object (SessionResult) on stdout.
 *
 * Modes: "steps" creates a session (ORT directly, with the options `src/runtime/session.ts` uses:
 * CPU provider, intra-op threads, default optimization level "all"; plus profiling when asked) and
 * times warm-up + N steps per latent size; "create" times `createSession` (src/runtime) with the
 * optimized-model cache folder (first call writes the cache, second loads it), then runs the steps
 * asked for (none, or one size to check that a cached model runs as fast).
 */
import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import ort from "onnxruntime-node";
import { toOrtTensor } from "../src/runtime/ort-tensor.js";
import { createSession } from "../src/runtime/session.js";
import { type HostTensor, tensor } from "../src/tensor.js";
import { summariseProfile, type ProfileSummary } from "./profile.js";
import { RssSampler, maxRssMiB, rssMiB } from "./rss.js";
import { log, median, reasonOf, round } from "./stats.js";

export interface SessionJob {
  readonly mode: "steps" | "create";
  readonly modelPath: string;
  readonly threads: number;
  /** Latent sizes (image size / 8), run in this order; the profile covers the last run. */
  readonly latentSizes: readonly number[];
  readonly batch: number;
  readonly runs: number;
  /** Text length and width of encoder_hidden_states. */
  readonly contextShape: readonly [number, number];
  readonly profileDir?: string;
  readonly cacheDir?: string;
}

export interface StepTiming {
  readonly latentSize: number;
  readonly warmupSeconds: number;
  readonly stepSeconds: readonly number[];
  readonly medianSeconds: number;
  /** Fastest timed step (on shared cores the least disturbed one). */
  readonly bestSeconds: number;
  /** Highest sampled RSS during this size's runs (MiB). */
  readonly peakRssMiB: number;
}

export interface SessionResult {
  readonly createSeconds: number;
  readonly cacheStatus?: string;
  readonly rssAfterCreateMiB: number;
  /** Highest sampled RSS during session creation (MiB). */
  readonly peakRssCreateMiB: number;
  readonly steps: readonly StepTiming[];
  /** getrusage maxrss of this process (MiB). */
  readonly maxRssMiB: number;
  readonly cpuSeconds: number;
  readonly wallSeconds: number;
  readonly profile?: ProfileSummary | { readonly result: null; readonly reason: string };
}

function randomData(n: number, scale = 1): Float32Array {
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = (Math.random() * 2 - 1) * scale;
  return data;
}

/** Random UNet feeds for the model's inputs (sample, timestep, encoder_hidden_states). */
function feedsFor(
  inputNames: readonly string[],
  job: SessionJob,
  latent: number,
): Record<string, HostTensor> {
  const [textLength, width] = job.contextShape;
  const b = job.batch;
  const known: Record<string, () => HostTensor> = {
    sample: () => tensor("float32", [b, 4, latent, latent], randomData(b * 4 * latent * latent)),
    timestep: () => tensor("float32", [b], new Float32Array(b).fill(500)),
    encoder_hidden_states: () =>
      tensor("float32", [b, textLength, width], randomData(b * textLength * width)),
  };
  const feeds: Record<string, HostTensor> = {};
  for (const name of inputNames) {
    const make = known[name];
    if (!make)
      throw new Error(`the UNet model has an input "${name}" the benchmark does not know how to feed`);
    feeds[name] = make();
  }
  return feeds;
}

type RunFeeds = (feeds: Record<string, HostTensor>) => Promise<unknown>;

/** Warm-up 1 + `runs` timed steps per latent size, RSS peak per size. */
async function timeSteps(
  job: SessionJob,
  inputNames: readonly string[],
  run: RunFeeds,
  sampler: RssSampler,
  runs: number,
): Promise<StepTiming[]> {
  const steps: StepTiming[] = [];
  for (const latent of job.latentSizes) {
    sampler.reset();
    const feeds = feedsFor(inputNames, job, latent);
    const time = async (): Promise<number> => {
      const t = performance.now();
      await run(feeds);
      return (performance.now() - t) / 1000;
    };
    const warmupSeconds = await time();
    log(`latent ${latent}x${latent}: warm-up ${warmupSeconds.toFixed(2)} s`);
    const stepSeconds: number[] = [];
    for (let i = 0; i < runs; i++) {
      stepSeconds.push(await time());
      log(`latent ${latent}x${latent}: step ${i + 1}/${runs} ${stepSeconds[i]?.toFixed(2)} s`);
    }
    steps.push({
      latentSize: latent,
      warmupSeconds: round(warmupSeconds),
      stepSeconds: stepSeconds.map((s) => round(s)),
      medianSeconds: round(median(stepSeconds)),
      bestSeconds: round(Math.min(...stepSeconds)),
      peakRssMiB: sampler.peakMiB(),
    });
  }
  return steps;
}

async function runSteps(
  job: SessionJob,
  sampler: RssSampler,
): Promise<Omit<SessionResult, "maxRssMiB" | "cpuSeconds" | "wallSeconds">> {
  if (job.profileDir !== undefined) await mkdir(job.profileDir, { recursive: true });
  const started = performance.now();
  // ORT directly (not runtime/session.ts) because profiling is a session option that wrapper does not expose.
  const session = await ort.InferenceSession.create(job.modelPath, {
    executionProviders: ["cpu"],
    intraOpNumThreads: job.threads,
    logSeverityLevel: 3,
    ...(job.profileDir === undefined
      ? {}
      : { enableProfiling: true, profileFilePrefix: join(job.profileDir, "unet") }),
  });
  const createSeconds = (performance.now() - started) / 1000;
  const peakRssCreateMiB = sampler.peakMiB();
  const rssAfterCreateMiB = rssMiB();
  log(`session created in ${createSeconds.toFixed(1)} s (RSS ${rssAfterCreateMiB} MiB)`);
  const run: RunFeeds = (feeds) =>
    session.run(Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, toOrtTensor(t)])));
  const steps = await timeSteps(job, session.inputNames, run, sampler, job.runs);
  let profile: SessionResult["profile"];
  if (job.profileDir !== undefined) {
    session.endProfiling();
    try {
      const files = (await readdir(job.profileDir)).filter((f) => f.endsWith(".json")).sort();
      const last = files[files.length - 1];
      profile =
        last === undefined
          ? { result: null, reason: "ORT wrote no profile file" }
          : await summariseProfile(join(job.profileDir, last));
    } catch (error) {
      profile = { result: null, reason: reasonOf(error) };
    }
  }
  await session.release();
  return {
    createSeconds: round(createSeconds),
    rssAfterCreateMiB,
    peakRssCreateMiB,
    steps,
    ...(profile === undefined ? {} : { profile }),
  };
}

async function createOnly(
  job: SessionJob,
  sampler: RssSampler,
): Promise<Omit<SessionResult, "maxRssMiB" | "cpuSeconds" | "wallSeconds">> {
  const session = await createSession(job.modelPath, {
    intraOpNumThreads: job.threads,
    ...(job.cacheDir === undefined ? {} : { cacheDir: job.cacheDir }),
  });
  const created = {
    createSeconds: round(session.createMs / 1000),
    cacheStatus: session.cache,
    rssAfterCreateMiB: rssMiB(),
    peakRssCreateMiB: sampler.peakMiB(),
  };
  log(`session (cache ${session.cache}) created in ${created.createSeconds} s`);
  // Runs through the project's Session wrapper: shows whether a model loaded from the cache is as fast.
  const steps = await timeSteps(
    job,
    session.inputs.map((i) => i.name),
    (feeds) => session.run(feeds),
    sampler,
    job.runs,
  );
  const result = { ...created, steps };
  await session.release();
  return result;
}

async function main(): Promise<void> {
  const job: SessionJob = JSON.parse(process.argv[2] ?? "{}");
  const sampler = new RssSampler(100);
  const started = performance.now();
  const cpu = process.cpuUsage();
  try {
    const partial = job.mode === "create" ? await createOnly(job, sampler) : await runSteps(job, sampler);
    const used = process.cpuUsage(cpu);
    const result: SessionResult = {
      ...partial,
      maxRssMiB: maxRssMiB(),
      cpuSeconds: round((used.user + used.system) / 1e6),
      wallSeconds: round((performance.now() - started) / 1000),
    };
    process.stdout.write(JSON.stringify(result));
  } finally {
    await sampler.stop();
  }
}

await main();
