/**
 * Small helpers shared by the benchmark parts: timing, medians, rounding, progress on stderr.
 */

/** Median of a non-empty list (mean of the middle two for even lengths). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const hi = sorted[mid] ?? Number.NaN;
  return sorted.length % 2 === 1 ? hi : ((sorted[mid - 1] ?? Number.NaN) + hi) / 2;
}

/** Rounds to `digits` significant digits (JSON stays readable). */
export function round(value: number, digits = 4): number {
  if (!Number.isFinite(value) || value === 0) return value;
  return Number(value.toPrecision(digits));
}

/** Seconds taken by `fn`, and its result. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ seconds: number; result: T }> {
  const started = performance.now();
  const result = await fn();
  return { seconds: (performance.now() - started) / 1000, result };
}

/** Progress line on stderr (stdout carries only the JSON report). */
export function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

export const MiB = 1024 * 1024;

/** Bytes to MiB, rounded to 0.1. */
export function mib(bytes: number): number {
  return Math.round((bytes / MiB) * 10) / 10;
}

/** A part that did not run: its value is null and the reason says why. */
export interface Skipped {
  readonly result: null;
  readonly reason: string;
}

export function skipped(reason: string): Skipped {
  return { result: null, reason };
}

/** Error text for a report (first line, bounded). */
export function reasonOf(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return text.split("\n")[0]?.slice(0, 400) ?? text;
}

/** Step times of a session loop: one warm-up step, then `runs` timed steps (seconds, rounded). */
export interface StepTimes {
  readonly warmupSeconds: number;
  readonly runSeconds: readonly number[];
  readonly medianSeconds: number;
  readonly bestSeconds: number;
}

/** Runs `step` once as warm-up and `runs` more times, logging each as `label`. */
export async function timeSteps(
  label: string,
  runs: number,
  step: () => Promise<unknown>,
): Promise<StepTimes> {
  const once = async (): Promise<number> => (await timed(step)).seconds;
  const warmup = await once();
  log(`${label}: warm-up ${warmup.toFixed(2)} s`);
  const seconds: number[] = [];
  for (let i = 0; i < runs; i++) {
    seconds.push(await once());
    log(`${label}: step ${i + 1}/${runs} ${seconds[i]?.toFixed(2)} s`);
  }
  return {
    warmupSeconds: round(warmup),
    runSeconds: seconds.map((s) => round(s)),
    medianSeconds: round(median(seconds)),
    bestSeconds: round(Math.min(...seconds)),
  };
}
