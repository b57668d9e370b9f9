/**
 * `node --import tsx bench/farm.ts [--frames 16] [--steps 4] [--segment 4]`: the render farm's
 * scaling and queue overhead on this machine, as ONE JSON object on stdout (progress on stderr).
 *
 * - the same tiny-model render (text only, 64x64, default 16 frames, 4 steps, first-frame attention)
 *   as one process (`steadyframe video`), and through the queue with 1 and 2 `steadyframe worker`
 *   processes (workers started and idle before the render; each loads its models at its first job,
 *   as the single process does): seconds and frames/s;
 * - queue overhead per segment, from a chained render (flow fusion over the bundled car clip, one
 *   frame per job, one worker: each job is enqueued when the previous one is done, so the worker is
 *   idle when it arrives): enqueue-to-start latency, job finish to the coordinator noticing it, the
 *   job's own setup (checks, work folder, the cached pipeline), and the rest of the job's wall time
 *   beyond rendering (bookkeeping).
 *
 * Starts its own redis-server on a free localhost port (scripts/install.sh installs it). On the
 * 2-core reference machine, about 3-6 minutes depending on other load (see `machine.loadAverage`).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parseRedisUrl } from "../src/farm/connection.js";
import { renderOnFarm, type FarmRenderResult } from "../src/farm/coordinator.js";
import type { VideoRenderSettings } from "../src/engine/render.js";
import { startRedisServer } from "../test/helpers/redis-server.js";
import { log, median, round } from "./stats.js";

const MODEL = "test/fixtures/golden/tiny-sd";
const CLIP = "test/fixtures/videos/car-turn-9f.mp4";

const { values } = parseArgs({
  options: {
    frames: { type: "string", default: "16" },
    steps: { type: "string", default: "4" },
    segment: { type: "string", default: "4" },
  },
});
const frames = Number(values.frames);
const steps = Number(values.steps);
const segment = Number(values.segment);

function cli(args: string[]): ChildProcess {
  return spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], {
    stdio: ["ignore", "ignore", "pipe"],
  });
}

async function runCli(args: string[]): Promise<number> {
  const started = performance.now();
  const child = cli(args);
  let err = "";
  child.stderr?.on("data", (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  if (code !== 0) throw new Error(`steadyframe ${args[0]} exited with ${code}:\n${err.slice(-2000)}`);
  return (performance.now() - started) / 1000;
}

async function withWorkers<T>(url: string, n: number, fn: () => Promise<T>): Promise<T> {
  const workers = Array.from({ length: n }, () => cli(["worker", "--redis", url]));
  try {
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve, reject) => {
            let err = "";
            w.stderr?.on("data", (d: Buffer) => {
              err += d.toString();
              if (err.includes("ready:")) resolve();
            });
            w.once("exit", () => reject(new Error(`worker exited:\n${err}`)));
          }),
      ),
    );
    return await fn();
  } finally {
    for (const w of workers) w.kill("SIGTERM");
    await Promise.all(
      workers.map((w) => new Promise((r) => (w.exitCode !== null ? r(0) : w.once("exit", r)))),
    );
  }
}

const stats = (xs: readonly number[]) =>
  xs.length === 0 ? null : { median: round(median(xs)), max: round(Math.max(...xs)), n: xs.length };

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "steadyframe-bench-farm-"));
  const redis = await startRedisServer();
  const queue = parseRedisUrl("--queue", redis.url);
  try {
    const common = [
      "--model",
      MODEL,
      "--prompt",
      "a red car on a road",
      "--size",
      "64x64",
      "--steps",
      String(steps),
    ];
    const textOnly = (out: string) => [
      "video",
      ...common,
      "--frames",
      String(frames),
      "--seed",
      "1",
      "--out",
      out,
    ];
    const settings = (out: string, extra: Partial<VideoRenderSettings> = {}): VideoRenderSettings => ({
      model: MODEL,
      prompt: "a red car on a road",
      width: 64,
      height: 64,
      steps,
      frames,
      seed: 1n,
      strategy: { controlsFrom: "source", noise: "shared", attention: "first", fusion: "none" },
      out,
      ...extra,
    });

    log("warm-up (compiled-model cache)");
    await runCli(textOnly(join(dir, "warm")));
    log("single process");
    const single = await runCli(textOnly(join(dir, "single")));

    const farm: { workers: number; seconds: number; framesPerSecond: number; jobs: number }[] = [];
    for (const n of [1, 2]) {
      log(`farm, ${n} worker(s)`);
      await withWorkers(redis.url, n, async () => {
        const started = performance.now();
        const result = await renderOnFarm(settings(join(dir, `farm-${n}`)), { queue, segment });
        const seconds = (performance.now() - started) / 1000;
        farm.push({
          workers: n,
          seconds: round(seconds),
          framesPerSecond: round(frames / seconds),
          jobs: result.segments.length,
        });
      });
    }

    log("chained render, 1 frame per job, 1 worker (queue overhead)");
    const chainedFrames = 8;
    const chained = {
      source: CLIP,
      frames: chainedFrames,
      strategy: { controlsFrom: "source", noise: "shared", attention: "first", fusion: "flow" },
    } as const;
    const chainedSingle = await runCli([
      "video",
      CLIP,
      ...common,
      "--frames",
      String(chainedFrames),
      "--fusion",
      "flow",
      "--seed",
      "1",
      "--out",
      join(dir, "chained-single"),
    ]);
    let overhead: FarmRenderResult | undefined;
    let chainedFarm = 0;
    await withWorkers(redis.url, 1, async () => {
      const started = performance.now();
      overhead = await renderOnFarm(settings(join(dir, "chained-farm"), chained), { queue, segment: 1 });
      chainedFarm = (performance.now() - started) / 1000;
    });
    const jobs = (overhead?.segments ?? []).filter(
      (s) => s.startedAt !== undefined && s.finishedAt !== undefined,
    );
    const later = jobs.slice(1); // the first job also starts the sandbox process and loads the models

    const report = {
      machine: { cpus: cpus().length, loadAverage: loadavg().map((x) => round(x, 3)) },
      render: {
        model: "tiny-sd (test fixture)",
        frames,
        size: "64x64",
        steps,
        segment,
        strategy: "text only, shared noise, first-frame attention",
      },
      singleProcess: { seconds: round(single), framesPerSecond: round(frames / single) },
      farm,
      speedup2vs1: round((farm[0]?.seconds ?? Number.NaN) / (farm[1]?.seconds ?? Number.NaN), 3),
      queueOverhead: {
        render: `car clip, ${chainedFrames} frames, flow fusion (chained), 1 frame per job, 1 worker`,
        singleProcessSeconds: round(chainedSingle),
        farmSeconds: round(chainedFarm),
        jobs: jobs.length,
        firstJobSetupMs: round(jobs[0]?.result?.setupMs ?? Number.NaN),
        enqueueToStartMs: stats(later.map((s) => (s.startedAt ?? 0) - s.enqueuedAt)),
        finishToNoticeMs: stats(later.map((s) => s.noticedAt - (s.finishedAt ?? 0))),
        jobSetupMs: stats(later.map((s) => s.result?.setupMs ?? 0)),
        bookkeepingMs: stats(
          later.map((s) => s.noticedAt - s.enqueuedAt - (s.result?.renderMs ?? 0) - (s.result?.setupMs ?? 0)),
        ),
        perSegmentOverheadMs: stats(later.map((s) => s.noticedAt - s.enqueuedAt - (s.result?.renderMs ?? 0))),
        renderMsPerFrame: stats(later.map((s) => s.result?.renderMs ?? 0)),
      },
    };
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } finally {
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
