/**
 * The video part's linearity check on its own, bracketed: `first` attention at 256x256, batch 4,
 * 2 DDIM steps, full-size SD-1.5 random weights, one process (models loaded once), runs of 8, 32 and
 * again 8 frames. The second 8-frame run shows how much the machine itself drifted during the
 * 32-frame run; the VAE decode per frame (the same work in every run, no attention) is the other
 * yardstick.
 *
 *   node --import tsx bench/video-linear.ts [--threads 2] > linear.json
 */
import { mkdtemp, rm } from "node:fs/promises";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { runChild } from "./child.js";
import { log, round } from "./stats.js";
import { writeSyntheticClip } from "./video.js";
import type { TimingJob, TimingResult, VideoRunSpec } from "./video-session.js";

const at = process.argv.indexOf("--threads");
const threads = at >= 0 ? Number(process.argv[at + 1]) : Math.min(2, availableParallelism());
const dir = await mkdtemp(join(tmpdir(), "steadyframe-linear-"));
const loadStart = loadavg();
try {
  const source = await writeSyntheticClip(join(dir, "shapes"), 32, 256);
  const strategy = {
    controlsFrom: "source",
    noise: "per-frame",
    attention: "first",
    fusion: "none",
  } as const;
  const spec = (frames: number, extra: Partial<VideoRunSpec> = {}): VideoRunSpec => ({
    family: "linear",
    strategy,
    size: 256,
    frames,
    batch: 4,
    controlnet: true,
    source,
    ...extra,
  });
  const job: TimingJob = {
    mode: "timing",
    model: "sd15",
    threads,
    dir: join(dir, "models"),
    steps: 2,
    runs: [spec(4, { steps: 1, warmup: true }), spec(8), spec(32), spec(8)],
  };
  log("video-linear: 8, 32, 8 frames");
  const result = (await runChild("./video-session.ts", job)) as TimingResult;
  const [a, b, c] = result.runs;
  const perFrame = (r: NonNullable<typeof a>) => ({
    secondsPerFrame: r.secondsPerFrame,
    denoiseSecondsPerFrame: round((r.unet.seconds + r.controlnet.seconds) / r.frames),
    vaeDecodeSecondsPerFrame: round(r.vaeDecode.seconds / r.frames),
    slotsPerFrame: r.slotsPerFrame,
  });
  const out = {
    strategy: "source/per-frame/first/none, 256x256, batch 4, 2 DDIM steps, SD-1.5 random weights",
    threads,
    loadAverage: { start: loadStart.map((x) => round(x, 3)), end: loadavg().map((x) => round(x, 3)) },
    runs: [a, b, c].map((r) =>
      r ? { frames: r.frames, ...perFrame(r), frameSeconds: r.frameSeconds } : null,
    ),
    ratio32to8First: a && b ? round(b.secondsPerFrame / a.secondsPerFrame, 4) : null,
    ratio32to8Mean:
      a && b && c ? round((2 * b.secondsPerFrame) / (a.secondsPerFrame + c.secondsPerFrame), 4) : null,
    vaeDecodeRatio32to8:
      a && b ? round(b.vaeDecode.seconds / b.frames / (a.vaeDecode.seconds / a.frames), 4) : null,
  };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
