/**
 * `steadyframe worker --redis redis://HOST:PORT`: a render-farm worker (src/farm/worker.ts). It takes
 * segment jobs that `steadyframe video ... --queue` enqueues and renders them into the render's work
 * folder, until Ctrl-C: the running job is then stopped at its next step and put back in the queue.
 */
import { InvalidArgumentError } from "../../errors.js";
import { parseRedisUrl } from "../../farm/connection.js";
import { runFarmWorker, WORKER_DEFAULTS } from "../../farm/worker.js";
import type { CliCommand, CliIO } from "../command.js";
import { deviceOption, intOption, parseCommandArgs } from "./cli-options.js";

const usage = `Usage: steadyframe worker --redis redis://HOST:PORT [options]

Processes render segments from the queue on that Redis server until Ctrl-C. Start one or more per
machine, then run 'steadyframe video ... --queue redis://HOST:PORT'. Every worker must see the
render's files (model, source, --out and its work folder) at the same absolute paths as the
coordinator: a shared filesystem mounted at the same place. Workers of one render should run the same
Steadyframe version on the same kind of --device, so every frame is the one a single process makes.

Options:
  --redis URL               the queue's Redis server: redis://HOST:PORT[/DB] (rediss:// for TLS)
  --concurrency N           segment jobs at once in this process (default 1)
  --device cpu|cuda|webgpu  execution provider of this machine (default cpu)
  --cache-dir DIR           compiled-model cache folder of this machine
  --lock-duration S         seconds a job stays locked without renewal (default ${WORKER_DEFAULTS.lockDurationMs / 1000});
                            a killed worker's job is back in the queue after about this plus twice
                            --stalled-interval. Keep it above the longest model load of a job
  --stalled-interval S      seconds between checks for jobs of dead workers (default ${WORKER_DEFAULTS.stalledIntervalMs / 1000})
  --max-stalled N           times a job may be recovered from dead workers before it fails (default ${WORKER_DEFAULTS.maxStalledCount})

Ctrl-C stops the running job at its next denoising step and puts it back in the queue (its finished
frames stay); a second Ctrl-C exits at once (the job then returns to the queue when its lock expires).
`;

function seconds(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const s = Number(text);
  if (text.trim() === "" || !Number.isFinite(s) || s < 0.1 || s > 86400)
    throw new InvalidArgumentError(flag, "a number of seconds from 0.1 to 86400", text);
  return Math.round(s * 1000);
}

async function run(args: readonly string[], io: CliIO): Promise<number> {
  const { values: v, positionals } = parseCommandArgs(args, {
    redis: { type: "string" },
    concurrency: { type: "string" },
    device: { type: "string" },
    "cache-dir": { type: "string" },
    "lock-duration": { type: "string" },
    "stalled-interval": { type: "string" },
    "max-stalled": { type: "string" },
  });
  if (positionals.length > 0)
    throw new InvalidArgumentError("worker", "no positional arguments", positionals.join(" "));
  if (v.redis === undefined)
    throw new InvalidArgumentError("--redis", "the queue's Redis server (redis://HOST:PORT)", undefined);
  const lockDurationMs = seconds("--lock-duration", v["lock-duration"]);
  const stalledIntervalMs = seconds("--stalled-interval", v["stalled-interval"]);
  const concurrency = intOption("--concurrency", v.concurrency, 1);
  const maxStalledCount = intOption("--max-stalled", v["max-stalled"], 0);
  await runFarmWorker({
    redis: parseRedisUrl("--redis", v.redis),
    ...(concurrency === undefined ? {} : { concurrency }),
    ...(v.device === undefined ? {} : { device: deviceOption(v.device) }),
    ...(v["cache-dir"] === undefined ? {} : { cacheDir: v["cache-dir"] }),
    ...(lockDurationMs === undefined ? {} : { lockDurationMs }),
    ...(stalledIntervalMs === undefined ? {} : { stalledIntervalMs }),
    ...(maxStalledCount === undefined ? {} : { maxStalledCount }),
    signal: io.signal,
    log: (line) => io.stderr.write(`worker: ${line}\n`),
  });
  return 0;
}

export const workerCommand: CliCommand = {
  name: "worker",
  summary: "render-farm worker: process video segments from a Redis (BullMQ) queue until Ctrl-C",
  usage,
  run,
};
