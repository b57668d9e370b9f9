/**
 * Helpers for the video tests: small clips made with ffmpeg's test sources in a temp folder, and a
 * look at this process's ffmpeg children (to prove they are killed).
 */
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { expect } from "vitest";
import type { SteadyframeError } from "../../src/errors.js";

const run = promisify(execFile);

export async function makeTempDir(
  prefix = "steadyframe-video-",
): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** `ffmpeg -f lavfi -i testsrc2=size=WxH:rate=R -frames:v N [extra...] path`. */
export async function makeClip(
  path: string,
  options: { width?: number; height?: number; frames: number; rate?: number; extra?: readonly string[] },
): Promise<string> {
  const {
    width = 64,
    height = 64,
    frames,
    rate = 10,
    extra = ["-c:v", "libx264", "-pix_fmt", "yuv420p"],
  } = options;
  await run("ffmpeg", [
    "-nostdin",
    "-v",
    "error",
    "-y",
    "-f",
    "lavfi",
    "-i",
    `testsrc2=size=${width}x${height}:rate=${rate}`,
    "-frames:v",
    String(frames),
    ...extra,
    path,
  ]);
  return path;
}

/** Pids of live `ffmpeg` processes whose parent is this process. */
export async function ffmpegChildren(): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    const m = /^\d+ \((.*)\) (\S) (\d+)/.exec(stat);
    if (m && m[1] === "ffmpeg" && m[2] !== "Z" && Number(m[3]) === process.pid) pids.push(Number(entry));
  }
  return pids;
}

/** Waits until `check` is true or `ms` pass. */
export async function waitFor(check: () => Promise<boolean>, ms = 3000): Promise<boolean> {
  const until = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Awaits `promise`, expects it to reject with `cls`, `code` and a message matching `fragment`. */
export async function expectError<E extends SteadyframeError>(
  promise: Promise<unknown>,
  cls: abstract new (...args: never[]) => E,
  code: string,
  fragment: string | RegExp,
): Promise<E> {
  const err: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof cls)) throw new Error(`expected ${cls.name}, got ${String(err)}`);
  expect(err.code).toBe(code);
  expect(err.message).toMatch(fragment);
  return err;
}
