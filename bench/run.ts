/**
 * `npm run -s bench` (or `node --import tsx bench/run.ts`): performance figures of this machine and
 * build as ONE JSON object on stdout (progress goes to stderr; `-s` keeps npm's own banner off
 * stdout; `--out report.json` also writes the JSON to a file). Parts (select with --only):
 *
 * - matmul:   ORT MatMul GFLOP/s at UNet shapes, weights as initializers (prepacked); max over shapes.
 *             Measured again after the UNet part (`matmulAfterUnet`): the cores may be shared.
 * - conv:     ORT 3x3 Conv GFLOP/s at UNet shapes (a second reference rate).
 * - flops:    FLOPs of one SD-1.5 UNet step per size (src/graph/flops.ts), no session.
 * - unet:     full-size SD-1.5 UNet, random weights: seconds per CFG-batch-2 step at 512 and 256
 *             (warm-up 1, median of --runs), achieved GFLOP/s and its ratio to the MatMul rate, peak
 *             RSS vs weight size, session creation (cold, and through the optimized-model cache: a
 *             cache write and a cache hit that also runs one step), and with --profile the time
 *             per ORT op type of the last 512 step.
 * - pipeline: a --steps-step (20) 512x512 text-to-image with full-size random-weight SD-1.5 models.
 *             `--pipeline full` (default) runs `textToImage` for real; `--pipeline estimate` measures
 *             the text encoder and VAE decode and adds --steps x the UNet step time (marked
 *             `estimated: true`, with the formula).
 * - video:    the video engine (video.ts; not run unless named in --only): seconds per frame of each
 *             strategy family with full-size SD-1.5 random weights at 256 and 512 (batch 1 and
 *             --video-batch), ratio to per-frame attention, cost linear in frames (8 vs 32), peak
 *             RSS flat in frame count (tiny pipeline, 8 vs 128 frames). About 1.5 hours on the idle
 *             2-core machine with the defaults; --video-skip-512 about 35 minutes.
 * - train:    one training step of the SD-1.5 UNet at 256x256 (train.ts; only with --only train):
 *             forward + loss + every parameter's gradient vs the inference step, and with recompute.
 * - lcm:      a 16-frame 512x512 ControlNet video, LCM 4 steps, a 144-layer LoRA fused (lcm.ts; only
 *             with --only lcm), and the LoRA fusing time.
 * - taesd:    one 512x512 VAE decode/encode, SD-1.5 AutoencoderKL vs a Tiny AutoEncoder (taesd.ts; --only taesd).
 * - uni:      a full-size Uni-ControlNet step at 512x512 vs the plain UNet step (uni.ts; --only uni).
 * - tav:      one Tune-A-Video tuning step of the SD-1.5 inflated UNet, 8 frames at 256x256, trainable
 *             attn1.to_q, attn2.to_q, attn_temp, recompute per block (tav.ts; --only tav): seconds per
 *             step, forward GFLOP, trainable parameters, peak RSS under a --tav-rss-limit guard.
 * - device:   the SD-1.5 components on another execution provider (device.ts; --only device
 *             --device webgpu|cuda): agreement with the CPU provider, seconds per call on both,
 *             cross-frame attention's cost ratio and a text-to-image on the device.
 *
 * Parts that fail or are not selected print `{ "result": null, "reason": ... }`. Start with `summary`.
 *
 * Duration of the default run on the 2-core reference machine: about 8-9 minutes when the cores are
 * idle (kernels 10 s; UNet write + load 30 s; 256 steps 15 s; 512 steps 1 min; cache timing 1 min;
 * pipeline 20 x ~12 s + load + VAE 5 min); up to twice that when other processes share the cores
 * (see `machine.loadAverage`, `unet.session.cpuUtilization`); `--pipeline estimate` saves ~4 min.
 * Needs ~8 GB free in the OS temp folder (model + ORT cache; removed at the end unless --keep) and
 * ~6 GB RAM (the pipeline holds UNet, text encoder and VAE).
 *
 *   npm run -s bench -- --only matmul,unet --size 256 --runs 2 --profile
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import ort from "onnxruntime-node";
import { type BenchArgs, USAGE, parseArgs } from "./args.js";
import { benchConv, benchMatMul } from "./kernels.js";
import { benchPipeline } from "./pipeline.js";
import { benchVideo } from "./video.js";
import { benchTrain } from "./train.js";
import { benchLcm } from "./lcm.js";
import { benchUni } from "./uni.js";
import { benchTav } from "./tav.js";
import { benchTaesd } from "./taesd.js";
import { benchDevice } from "./device.js";
import { CFG_BATCH, TEXT_LENGTH, benchUNet, countFor, sd15Config } from "./unet.js";
import { log, mib, reasonOf, round, skipped } from "./stats.js";
import { summarise } from "./summary.js";

async function part<T>(
  name: string,
  enabled: boolean,
  fn: () => Promise<T>,
): Promise<T | ReturnType<typeof skipped>> {
  if (!enabled) return skipped(`not selected (--only)`);
  log(`${name}: start`);
  const started = performance.now();
  try {
    const result = await fn();
    log(`${name}: done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return result;
  } catch (error) {
    log(`${name}: FAILED ${reasonOf(error)}`);
    return skipped(reasonOf(error));
  }
}

function flopsReport(args: BenchArgs): Record<string, unknown> {
  const config = sd15Config();
  const out: Record<string, unknown> = {};
  for (const size of args.sizes) {
    const r = countFor(config, size / 8);
    out[String(size)] = {
      batch: CFG_BATCH,
      textLength: TEXT_LENGTH,
      tflop: round(r.flops / 1e12),
      convG: round(r.conv / 1e9),
      matmulG: round(r.matmul / 1e9),
      attentionG: round(r.attention / 1e9),
      otherGElements: round(r.otherElements / 1e9),
      movementGElements: round(r.movementElements / 1e9),
    };
  }
  return out;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const has = (p: BenchArgs["parts"][number]): boolean => args.parts.includes(p);
  const started = performance.now();
  const loadStart = loadavg();
  const dir = await mkdtemp(join(tmpdir(), "steadyframe-bench-"));
  const machine = {
    cpu: cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
    memoryMiB: mib(totalmem()),
    node: process.version,
    onnxruntime: ort.env.versions.common,
    threads: args.threads,
  };
  const report: Record<string, unknown> = { machine, args };
  let summary: Record<string, unknown> | null = null;
  try {
    const matmul = await part("matmul", has("matmul"), () => benchMatMul({ threads: args.threads }));
    report["matmul"] = matmul;
    report["conv"] = await part("conv", has("conv"), () => benchConv({ threads: args.threads }));
    report["flops"] = await part("flops", has("flops"), () => Promise.resolve(flopsReport(args)));
    const matmulGflops = "maxGflops" in matmul ? matmul.maxGflops : null;
    const unet = await part("unet", has("unet"), () =>
      benchUNet({
        imageSizes: args.sizes,
        runs: args.runs,
        threads: args.threads,
        profile: args.profile,
        cacheTiming: args.cacheTiming,
        dir,
        matmulGflops,
      }),
    );
    report["unet"] = unet;
    // The cores may be shared: a second MatMul measurement brackets the UNet run.
    const matmulAfter = await part("matmul (after unet)", has("matmul") && has("unet"), () =>
      benchMatMul({ threads: args.threads, runs: 5 }),
    );
    report["matmulAfterUnet"] = matmulAfter;
    const pipeline = await part("pipeline", has("pipeline"), () => benchPipeline({ args, unet }));
    report["pipeline"] = pipeline;
    const video = await part("video", has("video"), () =>
      benchVideo({ video: args.video, threads: args.threads, dir }),
    );
    report["video"] = video;
    report["train"] = await part("train", has("train"), () =>
      // up to 4 steps after the warm-up: a training step's first runs after the warm-up still fault in
      // memory (e.g. 14.5 s, then 7.2 s), and a training run lives in the steady state
      benchTrain({ threads: args.threads, runs: Math.min(args.runs, 4), dir }),
    );
    report["lcm"] = await part("lcm", has("lcm"), () => benchLcm({ threads: args.threads, dir }));
    report["uni"] = await part("uni", has("uni"), () =>
      benchUni({ threads: args.threads, dir, runs: Math.min(args.runs, 3) }),
    );
    report["tav"] = await part("tav", has("tav"), () =>
      benchTav({
        threads: args.threads,
        dir,
        runs: Math.min(args.runs, 2),
        frames: args.tav.frames,
        imageSize: args.tav.size,
        recompute: args.tav.recompute,
        rssLimitMiB: args.tav.rssLimitGiB * 1024,
      }),
    );
    report["taesd"] = await part("taesd", has("taesd"), () =>
      benchTaesd({ threads: args.threads, runs: Math.max(3, args.runs) }),
    );
    report["device"] = await part("device", has("device"), () =>
      benchDevice({
        device: args.device,
        imageSizes: args.sizes,
        runs: args.runs,
        steps: args.steps,
        threads: args.threads,
        dir,
      }),
    );
    summary = summarise({ matmul, matmulAfter, unet, pipeline, video });
  } finally {
    if (args.keep) log(`kept ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  }
  report["machine"] = {
    ...machine,
    loadAverage: { start: loadStart.map((x) => round(x, 3)), end: loadavg().map((x) => round(x, 3)) },
  };
  const totalSeconds = round((performance.now() - started) / 1000);
  const json = `${JSON.stringify({ summary, totalSeconds, ...report }, null, 2)}\n`;
  if (args.out !== null) await writeFile(args.out, json);
  process.stdout.write(json);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${reasonOf(error)}\n${USAGE}\n`);
  process.exitCode = 1;
});
