/**
 * Peak memory of streaming decode: generates a 90-frame and a 900-frame 720x720 clip with ffmpeg's
 * testsrc2 in a temp folder, decodes each at 256x256 with readFrames in a fresh Node process, and
 * prints JSON with the peak RSS of that process (ffmpeg itself not included). If memory were tied
 * to video length, the 900-frame run would need far more than the 90-frame one.
 *
 * Run: node --import tsx bench/video-memory.ts
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { readFrames } from "../src/video/read.js";

const run = promisify(execFile);
const MiB = 1024 * 1024;

interface ChildResult {
  frames: number;
  seconds: number;
  baselineRssMiB: number;
  peakRssMiB: number;
}

async function child(clip: string): Promise<void> {
  const baseline = process.memoryUsage().rss;
  const started = performance.now();
  let frames = 0;
  let checksum = 0;
  for await (const frame of readFrames(clip, { resize: { width: 256, height: 256 } })) {
    frames++;
    checksum = (checksum + (frame.data[frames % frame.data.length] ?? 0)) % 65521;
  }
  const result: ChildResult & { checksum: number } = {
    frames,
    seconds: Number(((performance.now() - started) / 1000).toFixed(2)),
    baselineRssMiB: Number((baseline / MiB).toFixed(1)),
    // maxRSS is in KiB and covers the whole life of this process.
    peakRssMiB: Number((process.resourceUsage().maxRSS / 1024).toFixed(1)),
    checksum,
  };
  process.stdout.write(JSON.stringify(result));
}

async function makeClip(path: string, frames: number): Promise<void> {
  await run("ffmpeg", [
    "-nostdin",
    "-v",
    "error",
    "-y",
    "-f",
    "lavfi",
    "-i",
    "testsrc2=size=720x720:rate=30",
    "-frames:v",
    String(frames),
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-pix_fmt",
    "yuv420p",
    path,
  ]);
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "steadyframe-bench-"));
  try {
    const results: Record<string, ChildResult> = {};
    for (const frames of [90, 900]) {
      const clip = join(dir, `testsrc-720-${frames}.mp4`);
      await makeClip(clip, frames);
      const self = fileURLToPath(import.meta.url);
      const { stdout } = await run(process.execPath, [...process.execArgv, self, "--child", clip], {
        maxBuffer: MiB,
      });
      const parsed: ChildResult = JSON.parse(stdout);
      results[`720x720x${frames}`] = parsed;
    }
    process.stdout.write(
      `${JSON.stringify({ decodeSize: "256x256", node: process.version, results }, null, 2)}\n`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const childIndex = process.argv.indexOf("--child");
const clipArg = childIndex >= 0 ? process.argv[childIndex + 1] : undefined;
await (clipArg ? child(clipArg) : main());
