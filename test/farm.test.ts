/**
 * The render farm (src/farm) on a real Redis and real worker processes, all on 127.0.0.1:
 * - Debian's redis-server on a free port (test/helpers/redis-server.ts), two `steadyframe worker`
 *   processes; a tiny-model render of 8 frames with --segment 2 through `video --queue`, one worker
 *   killed (SIGKILL) in the middle of a segment: its job is recovered by the other worker, and the
 *   published output equals a single-process render of the same settings byte for byte;
 * - a chained strategy (flow-warped noise, first+previous attention, flow fusion): its segments run
 *   one after the other through the queue and give the single-process frames;
 * - refusals: an unreachable Redis (E_FARM, nothing written), --segment without --queue.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/cli/main.js";
import { captureIO } from "./helpers/cli-io.js";
import { startRedisServer, type LocalRedis } from "./helpers/redis-server.js";

const MODEL = "test/fixtures/golden/tiny-sd";
const CONTROLNET = `${MODEL}/controlnet`;
const CLIP = "test/fixtures/videos/car-turn-9f.mp4";

interface WorkerProcess {
  readonly child: ChildProcess;
  readonly log: () => string;
  readonly exited: Promise<void>;
}

/** `steadyframe worker` as a child process, with short locks so a killed worker's job returns fast. */
async function startWorker(url: string): Promise<WorkerProcess> {
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      "src/cli/main.ts",
      "worker",
      "--redis",
      url,
      "--lock-duration",
      "3",
      "--stalled-interval",
      "1",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let log = "";
  child.stderr?.on("data", (d: Buffer) => (log += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  for (let t = 0; !log.includes("ready:"); t++) {
    if (child.exitCode !== null || t > 600) throw new Error(`worker did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, log: () => log, exited };
}

async function stopWorker(w: WorkerProcess): Promise<void> {
  if (w.child.exitCode !== null || w.child.signalCode !== null) return;
  w.child.kill("SIGTERM");
  const timer = setTimeout(() => w.child.kill("SIGKILL"), 10_000);
  await w.exited;
  clearTimeout(timer);
}

async function sameFrames(a: string, b: string, frames: number): Promise<void> {
  const names = (await readdir(a)).filter((n) => n.endsWith(".png")).sort();
  expect(names).toHaveLength(frames);
  expect((await readdir(b)).filter((n) => n.endsWith(".png")).sort()).toEqual(names);
  for (const name of names)
    expect(Buffer.compare(await readFile(join(a, name)), await readFile(join(b, name))), name).toBe(0);
}

describe("render farm (BullMQ on a local redis-server, two worker processes)", () => {
  let redis: LocalRedis;
  let dir: string;
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "steadyframe-farm-"));
    redis = await startRedisServer();
    workers.push(...(await Promise.all([startWorker(redis.url), startWorker(redis.url)])));
  });

  afterAll(async () => {
    await Promise.all(workers.map(stopWorker));
    await redis?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const videoArgs = (out: string, extra: string[] = []): string[] => [
    "video",
    CLIP,
    "--model",
    MODEL,
    "--controlnet",
    CONTROLNET,
    "--prompt",
    "a red car",
    "--size",
    "64x64",
    "--steps",
    "2",
    "--seed",
    "7",
    "--out",
    out,
    ...extra,
  ];

  it("a worker killed mid-segment loses nothing: the output equals a single-process render, byte for byte", async () => {
    const single = join(dir, "single");
    expect(await main(videoArgs(single, ["--frames", "8"]), captureIO())).toBe(0);

    const [a, b] = workers as [WorkerProcess, WorkerProcess];
    // SIGKILL worker a as soon as it has started a segment (not the first job, frame 0).
    let killedJob: string | undefined;
    const killer = (async () => {
      for (let t = 0; t < 3000 && killedJob === undefined; t++) {
        const started = /job (\S+) \(frames \d+-\d+ [^\n]*: started/.exec(a.log());
        if (started) {
          a.child.kill("SIGKILL");
          killedJob = started[1];
        } else await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const farm = join(dir, "farm");
    const io = captureIO();
    const code = await main(videoArgs(farm, ["--frames", "8", "--queue", redis.url, "--segment", "2"]), io);
    await killer;
    expect(code, io.err()).toBe(0);
    expect(killedJob, "worker a never started a segment").toBeDefined();
    await a.exited;
    // The killed worker's job was taken up again by the other worker.
    expect(b.log()).toContain(`job ${killedJob} (`);
    expect(io.err()).toMatch(/frame 8\/8/);
    expect(existsSync(`${farm}.steadyframe-partial`)).toBe(false);

    await sameFrames(single, farm, 8);
    const runOf = async (d: string) =>
      JSON.parse(await readFile(join(d, "run.json"), "utf8")) as Record<string, unknown>;
    const [one, many] = [await runOf(single), await runOf(farm)];
    expect(Object.keys(many).sort()).toEqual(Object.keys(one).sort());
    expect(many["settings"]).toEqual(one["settings"]);
    expect(many["frameSeeds"]).toEqual(one["frameSeeds"]);
    expect(many["generatedThisRun"]).toBe(8);
    expect((many["secondsPerFrame"] as number[]).length).toBe(8);
    expect(await readFile(join(farm, "metrics.json"), "utf8")).toBe(
      await readFile(join(single, "metrics.json"), "utf8"),
    );
  }, 300_000);

  it("a chained strategy (flow fusion) runs its segments in order and equals its single-process render", async () => {
    workers.push(await startWorker(redis.url)); // two live workers again
    const chained = [
      "--frames",
      "4",
      "--noise",
      "flow-warped",
      "--attention",
      "first+previous",
      "--fusion",
      "flow",
    ];
    const single = join(dir, "chained-single");
    expect(await main(videoArgs(single, chained), captureIO())).toBe(0);
    const farm = join(dir, "chained-farm");
    const io = captureIO();
    expect(
      await main(videoArgs(farm, [...chained, "--queue", redis.url, "--segment", "1"]), io),
      io.err(),
    ).toBe(0);
    await sameFrames(single, farm, 4);
  }, 300_000);

  it("refuses an unreachable Redis before writing anything, and --segment without --queue", async () => {
    const out = join(dir, "nowhere");
    const io = captureIO();
    expect(await main(videoArgs(out, ["--frames", "2", "--queue", "redis://127.0.0.1:1"]), io)).toBe(1);
    expect(io.err()).toMatch(/E_FARM.*redis:\/\/127\.0\.0\.1:1/);
    expect(existsSync(`${out}.steadyframe-partial`)).toBe(false);

    const bad = captureIO();
    expect(await main(videoArgs(out, ["--segment", "2"]), bad)).toBe(2);
    expect(bad.err()).toMatch(/--segment/);
    const url = captureIO();
    expect(await main(videoArgs(out, ["--queue", "http://127.0.0.1:6379"]), url)).toBe(2);
    expect(url.err()).toMatch(/--queue/);
  });
});
