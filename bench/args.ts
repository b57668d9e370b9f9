/**
 * Command-line flags of `npm run bench` (see run.ts for what each part measures).
 */
import { availableParallelism } from "node:os";
import { InvalidArgumentError } from "../src/errors.js";

export const PARTS = ["matmul", "conv", "flops", "unet", "pipeline"] as const;
export type Part = (typeof PARTS)[number];
export const SIZES = [512, 256] as const;
export type ImageSize = (typeof SIZES)[number];

export interface BenchArgs {
  readonly parts: readonly Part[];
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
}

export const USAGE = `npm run bench -- [--only ${PARTS.join(",")}] [--size 512,256] [--steps 20] [--runs 3]
                 [--pipeline full|estimate] [--profile] [--no-cache-timing] [--threads N]
                 [--keep] [--out report.json]`;

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

/** Parses argv (without node and the script). */
export function parseArgs(argv: readonly string[]): BenchArgs {
  let parts: readonly Part[] = PARTS;
  let sizes: readonly ImageSize[] = SIZES;
  let steps = 20;
  let runs = 3;
  let profile = false;
  let cacheTiming = true;
  let threads = availableParallelism();
  let keep = false;
  let pipeline: BenchArgs["pipeline"] = "full";
  let out: string | null = null;
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
      case "--keep":
        keep = true;
        break;
      default:
        throw new InvalidArgumentError(
          "flag",
          `one of --only, --size, --steps, --runs, --threads, --pipeline, --profile, --no-cache-timing, --keep, --out`,
          arg,
          { hint: USAGE },
        );
    }
  }
  return { parts, sizes, steps, runs, profile, cacheTiming, threads, pipeline, keep, out };
}
