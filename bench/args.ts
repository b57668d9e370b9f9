/**
 * Command-line flags of `npm run bench` (see run.ts for what each part measures).
 */
import { availableParallelism } from "node:os";
import { InvalidArgumentError } from "../src/errors.js";
import { EXECUTION_PROVIDERS, type ExecutionProvider } from "../src/runtime/session.js";

export const PARTS = [
  "matmul",
  "conv",
  "flops",
  "unet",
  "pipeline",
  "video",
  "train",
  "lcm",
  "uni",
  "tav",
  "taesd",
  "device",
] as const;
export type Part = (typeof PARTS)[number];
/** Parts run without --only: `video` and `train` take many minutes at full size, so they run only when asked. */
export const DEFAULT_PARTS: readonly Part[] = ["matmul", "conv", "flops", "unet", "pipeline"];
export const SIZES = [512, 256] as const;
export type ImageSize = (typeof SIZES)[number];

export interface BenchArgs {
  readonly parts: readonly Part[];
  /** Execution provider of the `device` part (checked against the CPU). */
  readonly device: ExecutionProvider;
  /** Image sizes for the UNet step (latents are size / 8). */
  readonly sizes: readonly ImageSize[];
  /** Denoising steps of the whole-image run. */
  readonly steps: number;
  /** Timed UNet steps per size (after one warm-up). */
  readonly runs: number;
  readonly profile: boolean;
  /** Also time session creation through the optimized-model cache (two more session loads). */
  readonly cacheTiming: boolean;
  readonly threads: number;
  /** "full" (default): run the whole pipeline; "estimate": text encoder + VAE measured, UNet steps from the unet part. */
  readonly pipeline: "estimate" | "full";
  /** Keep the temporary model folder (prints its path). */
  readonly keep: boolean;
  /** Also write the JSON report to this file. */
  readonly out: string | null;
  /** The `video` part's settings (see video.ts). */
  readonly video: VideoArgs;
  /** The `tav` part's settings (see tav.ts). */
  readonly tav: TavArgs;
}

export interface TavArgs {
  /** Frames per video of the Tune-A-Video step (default 8). */
  readonly frames: number;
  /** Square image size (default 256; latents size / 8). */
  readonly size: number;
  /** One recompute segment per UNet block (default true; --tav-no-recompute turns it off). */
  readonly recompute: boolean;
  /** RSS budget of the step process in GiB (default 20); past it the process is killed. */
  readonly rssLimitGiB: number;
}

export interface VideoArgs {
  /** "sd15" (default): full-size SD-1.5 random weights; "tiny": the tiny test pipeline (quick check). */
  readonly model: "sd15" | "tiny";
  /** Output sizes (square) of the per-strategy timings. */
  readonly sizes: readonly number[];
  /** Denoising steps of every video run. */
  readonly steps: number;
  /** Frames of each per-strategy run. */
  readonly frames: number;
  /** The batch that amortises the anchor frames (every strategy also runs with batch 1). */
  readonly batch: number;
  /** The two frame counts of the linearity check (at the smallest size). */
  readonly linearFrames: readonly [number, number];
  /** The two frame counts of the peak-RSS check (tiny model, 64x64). */
  readonly rssFrames: readonly [number, number];
  /** Strategy families to time (default all); the linearity runs go with `first`. */
  readonly families?: readonly VideoFamily[];
  /** Run the peak-RSS check (default true). */
  readonly rss: boolean;
  /** Execution provider of the timed SD-1.5 / tiny models (default cpu); the peak-RSS check stays on the CPU. */
  readonly device: ExecutionProvider;
  /**
   * Synthetic PNG sequences as sources even where the bundled clip is long enough (default false):
   * no ffmpeg needed, for a machine that has none (scripts/device-pack.sh).
   */
  readonly synthetic: boolean;
}

/** The video bench's strategy families (bench/video.ts FAMILIES). */
export const VIDEO_FAMILIES = [
  "per-frame",
  "first",
  "first+previous",
  "keyframes",
  "flow-fusion",
  "content-flow",
] as const;
export type VideoFamily = (typeof VIDEO_FAMILIES)[number];

export const USAGE = `npm run bench -- [--only ${PARTS.join(",")}] [--size 512,256] [--steps 20] [--runs 3]
                 [--pipeline full|estimate] [--profile] [--no-cache-timing] [--threads N]
                 [--keep] [--out report.json] [--device webgpu|cuda]
                 [--video-model sd15|tiny] [--video-size 256,512] [--video-skip-512]
                 [--video-steps 2] [--video-frames 4] [--video-batch 4]
                 [--video-frames-linear 8,32] [--video-rss-frames 8,128]
                 [--video-families per-frame,first,...] [--video-no-rss]
                 [--video-device cpu|webgpu|cuda] [--video-synthetic]
                 [--tav-frames 8] [--tav-size 256] [--tav-no-recompute] [--tav-rss-limit 20]
  --only device: the SD-1.5 text encoder, UNet (each --size) and VAE decode on --device (default
  webgpu), each compared with the CPU provider on the same inputs (max abs and relative L2 error)
  and timed on both; the UNet with first+previous cross-frame attention against per-frame; a
  --steps 512x512 text-to-image on the device; which op types the device left to the CPU.
  --only train: one SD-1.5 UNet training step at 256x256 (every weight trainable) against the
  inference step, and with recompute (peak RSS); about 10 minutes, ~16 GB RAM, ~11 GB temp space.
  --only lcm: a 16-frame 512x512 ControlNet video, LCM 4 steps, with a synthetic 144-layer LoRA fused
  (and the fusing time), decoded by a tiny autoencoder (TAESD architecture); about 10 minutes.
  --only uni: a full-size Uni-ControlNet step at 512x512 (CFG batch 2) against the plain UNet step; ~5 min.
  --only taesd: one 512x512 frame decoded / encoded by the SD-1.5 VAE and by a Tiny AutoEncoder (TAESD)
  --only tav: one Tune-A-Video tuning step (SD-1.5 inflated UNet, 8 frames at 256x256, gradients of
  attn1.to_q, attn2.to_q and attn_temp, recompute per block); the step process is killed past
  --tav-rss-limit GiB of RSS (default 20) and reported as out of memory budget. Up to --runs 2 steps.
  Without --only every part but video, train, lcm, uni, tav and taesd runs (about 8-9 minutes on the idle 2-core machine).
  --only video (full-size SD-1.5, defaults) takes about 1.5 hours on the idle 2-core machine
  (512x512 ~55 min; 256x256 ~13 min; 8+32-frame linearity ~10 min; 4 model builds ~5 min; peak RSS
  on the tiny model ~5 min), 3-4 times that when other processes load the cores; --video-skip-512
  brings it to about 35 minutes. Needs ~7 GB RAM (UNet + ControlNet + VAE) and ~6 GB temp space.
  --video-device runs the timed models on that provider (the peak-RSS check stays on the CPU);
  --video-synthetic uses synthetic PNG sources instead of the bundled clip (no ffmpeg needed).`;

function provider(flag: string, raw: string): ExecutionProvider {
  const p = EXECUTION_PROVIDERS.find((e) => e === raw);
  if (p === undefined) throw new InvalidArgumentError(flag, `one of ${EXECUTION_PROVIDERS.join(", ")}`, raw);
  return p;
}

function list<T extends string | number>(flag: string, raw: string, allowed: readonly T[]): T[] {
  const out: T[] = [];
  for (const item of raw
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")) {
    const v = allowed.find((a) => String(a) === item);
    if (v === undefined)
      throw new InvalidArgumentError(flag, `a comma-separated list of ${allowed.join(", ")}`, item);
    if (!out.includes(v)) out.push(v);
  }
  if (out.length === 0)
    throw new InvalidArgumentError(flag, `a comma-separated list of ${allowed.join(", ")}`, raw);
  return out;
}

function positiveInt(flag: string, raw: string | undefined): number {
  const n = Number(raw);
  if (raw === undefined || !Number.isInteger(n) || n < 1)
    throw new InvalidArgumentError(flag, "a positive integer", raw ?? null);
  return n;
}

/** Comma-separated positive integers, each a multiple of `multiple`, duplicates dropped. */
function intList(flag: string, raw: string, multiple: number): number[] {
  const out: number[] = [];
  for (const item of raw.split(",").map((x) => x.trim())) {
    const n = Number(item);
    if (item === "" || !Number.isInteger(n) || n < multiple || n % multiple !== 0)
      throw new InvalidArgumentError(flag, `a comma-separated list of multiples of ${multiple}`, raw);
    if (!out.includes(n)) out.push(n);
  }
  return out;
}

/** Two positive integers "A,B" with A < B. */
function pair(flag: string, raw: string): [number, number] {
  const [a, b, ...rest] = raw.split(",").map((x) => Number(x.trim()));
  if (
    a === undefined ||
    b === undefined ||
    rest.length > 0 ||
    !Number.isInteger(a) ||
    !Number.isInteger(b) ||
    a < 1 ||
    b <= a
  )
    throw new InvalidArgumentError(flag, "two frame counts A,B with 1 <= A < B", raw);
  return [a, b];
}

/** Parses argv (without node and the script). */
export function parseArgs(argv: readonly string[]): BenchArgs {
  let parts: readonly Part[] = DEFAULT_PARTS;
  let sizes: readonly ImageSize[] = SIZES;
  let steps = 20;
  let runs = 3;
  let profile = false;
  let cacheTiming = true;
  let threads = availableParallelism();
  let keep = false;
  let pipeline: BenchArgs["pipeline"] = "full";
  let out: string | null = null;
  let device: ExecutionProvider = "webgpu";
  let video: VideoArgs = {
    model: "sd15",
    sizes: [256, 512],
    steps: 2,
    frames: 4,
    batch: 4,
    linearFrames: [8, 32],
    rssFrames: [8, 128],
    rss: true,
    device: "cpu",
    synthetic: false,
  };
  let skip512 = false;
  let tav: TavArgs = { frames: 8, size: 256, recompute: true, rssLimitGiB: 20 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    const [flag, inline] = arg.includes("=")
      ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)]
      : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined)
        throw new InvalidArgumentError(flag, "a value after the flag", null, { hint: USAGE });
      return v;
    };
    switch (flag) {
      case "--only":
        parts = list("--only", value(), PARTS);
        break;
      case "--size":
        sizes = list("--size", value(), SIZES);
        break;
      case "--steps":
        steps = positiveInt("--steps", value());
        break;
      case "--runs":
        runs = positiveInt("--runs", value());
        break;
      case "--threads":
        threads = positiveInt("--threads", value());
        break;
      case "--pipeline": {
        const v = value();
        if (v !== "estimate" && v !== "full")
          throw new InvalidArgumentError("--pipeline", '"estimate" or "full"', v);
        pipeline = v;
        break;
      }
      case "--profile":
        profile = true;
        break;
      case "--no-cache-timing":
        cacheTiming = false;
        break;
      case "--out":
        out = value();
        break;
      case "--device":
        device = provider("--device", value());
        break;
      case "--keep":
        keep = true;
        break;
      case "--video-model": {
        const v = value();
        if (v !== "sd15" && v !== "tiny")
          throw new InvalidArgumentError("--video-model", '"sd15" or "tiny"', v);
        video = { ...video, model: v };
        break;
      }
      case "--video-size":
        video = { ...video, sizes: intList("--video-size", value(), 8) };
        break;
      case "--video-skip-512":
        skip512 = true;
        break;
      case "--video-steps":
        video = { ...video, steps: positiveInt("--video-steps", value()) };
        break;
      case "--video-frames":
        video = { ...video, frames: positiveInt("--video-frames", value()) };
        break;
      case "--video-batch":
        video = { ...video, batch: positiveInt("--video-batch", value()) };
        break;
      case "--video-frames-linear":
        video = { ...video, linearFrames: pair("--video-frames-linear", value()) };
        break;
      case "--video-rss-frames":
        video = { ...video, rssFrames: pair("--video-rss-frames", value()) };
        break;
      case "--video-families":
        video = { ...video, families: list("--video-families", value(), VIDEO_FAMILIES) };
        break;
      case "--video-no-rss":
        video = { ...video, rss: false };
        break;
      case "--video-device":
        video = { ...video, device: provider("--video-device", value()) };
        break;
      case "--video-synthetic":
        video = { ...video, synthetic: true };
        break;
      case "--tav-frames":
        tav = { ...tav, frames: positiveInt("--tav-frames", value()) };
        break;
      case "--tav-size": {
        const [size, ...more] = intList("--tav-size", value(), 64);
        if (size === undefined || more.length > 0)
          throw new InvalidArgumentError("--tav-size", "one multiple of 64", arg);
        tav = { ...tav, size };
        break;
      }
      case "--tav-no-recompute":
        tav = { ...tav, recompute: false };
        break;
      case "--tav-rss-limit":
        tav = { ...tav, rssLimitGiB: positiveInt("--tav-rss-limit", value()) };
        break;
      default:
        throw new InvalidArgumentError(
          "flag",
          `one of --only, --size, --steps, --runs, --threads, --pipeline, --profile, --no-cache-timing, --keep, --out, --device, --video-*, --tav-*`,
          arg,
          { hint: USAGE },
        );
    }
  }
  if (skip512) {
    const sizes = video.sizes.filter((s) => s !== 512);
    if (sizes.length === 0)
      throw new InvalidArgumentError(
        "--video-skip-512",
        "another size in --video-size",
        video.sizes.join(","),
      );
    video = { ...video, sizes };
  }
  return {
    parts,
    device,
    sizes,
    steps,
    runs,
    profile,
    cacheTiming,
    threads,
    pipeline,
    keep,
    out,
    video,
    tav,
  };
}
