/**
 * `steadyframe train`: fine-tunes the UNet (or trains a Canny ControlNet) of a diffusers pipeline
 * folder on frames of video clips with the denoising objective (src/train/loop), with a progress line showing the loss, Ctrl-C that
 * saves a checkpoint and stops, `--resume` that continues exactly, and a diffusers folder as output
 * (`steadyframe image --model OUT` loads it). Every argument is checked before any model loads.
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { CancelledError, InvalidArgumentError } from "../../errors.js";
import type { ParameterPattern } from "../../graph/autodiff/index.js";
import type { ProgressCallback } from "../../progress.js";
import { SCHEDULE_NAMES, type ScheduleName } from "../../train/optim/index.js";
import {
  type StepInfo,
  type TrainOptions,
  type TrainResult,
  trainDiffusion,
} from "../../train/loop/index.js";
import { RECIPES, findRecipe, runRecipe } from "../../train/loop/recipes.js";
import type { CliCommand, CliIO } from "../command.js";
import { checkOutputPath } from "../output-path.js";
import { progressBar } from "../progress-bar.js";
import { deviceOption, intOption, oneOf, parseCanny, parseCommandArgs, parseSize } from "./cli-options.js";
import { parseSeed } from "./image.js";

const USAGE = `Usage: steadyframe train --model <dir> --data <clip.mp4>[,<clip2.mp4>] --prompt <text> --out <dir> [options]

Fine-tunes the UNet of a diffusers pipeline on the frames of video clips (denoising loss, AdamW,
gradient clipping), seeded and resumable. The output folder is a diffusers pipeline (the model's
components with the trained unet/) plus checkpoints/step-N/ and loss.svg. Ctrl-C saves a checkpoint
and stops; the same command with --resume continues exactly where it stopped.

Options:
  --model <dir>            the diffusers pipeline folder to start from (model_index.json)
  --data <clips>           video files (or PNG sequences), comma-separated or repeated
  --prompt <text>          the caption: one for every clip, or repeated once per clip in --data order
  --out <dir>              the output folder (a new one, or the one to --resume)
  --steps <N>              optimisation steps in all (default 100)
  --lr <x>                 AdamW learning rate (default 1e-4)
  --lr-scheduler <s>       ${SCHEDULE_NAMES.join(", ")} (default constant)
  --warmup <N>             lr warm-up steps (default 0)
  --weight-decay <x>       AdamW decoupled weight decay (default 0.01)
  --max-grad-norm <x>      clip gradients to this global norm; 0 = off (default 1)
  --batch <B>              frames per step (default 1)
  --size <WxH|N>           frame size (N: NxN): the frames are scaled to cover it and centre-cropped
                           (default: the UNet's sample_size x the VAE factor)
  --frames <N>             at most N frames of each clip (default all)
  --stride <k>             every k-th frame (default 1)
  --train <m>              unet (default); controlnet: train a ControlNet on the Canny edges of the
                           frames with the UNet frozen (diffusers train_controlnet.py); unet+controlnet:
                           both together (a model trained from scratch learns its control far sooner)
  --controlnet <dir>       the ControlNet to start from, or from-unet (diffusers ControlNetModel.from_unet:
                           encoder copied from the UNet, zero convolutions); default the model's
                           controlnet/ folder, else from-unet
  --canny <low,high>       Canny thresholds of the control maps (default 100,200)
  --trainable <patterns>   comma-separated module-name suffixes to train, e.g. attn1.to_q,attn2
                           (default every UNet parameter); /regex/ matches the full key
  --prediction <p>         epsilon or v (default: the scheduler config's prediction_type)
  --noise-offset <x>       diffusers' noise offset (default 0)
  --empty-prompts <p>      share of captions replaced by "" so guidance has a trained unconditional
                           prediction (diffusers --proportion_empty_prompts; default 0)
  --latents <m>            mean (default) or sample: the VAE latent of each frame (cached on disk)
  --seed <n>               seed of the shuffles, noise and timesteps (default 0)
  --save-every <N>         save a checkpoint every N steps (default: at the end; the last 2 are kept)
  --resume                 continue from the newest checkpoint in --out (same model and options)
  --cache-dir <dir>        compiled-model cache folder (see 'steadyframe cache')
  --device <d>             cpu (default), cuda or webgpu
  --threads <n>            ONNX Runtime threads per op
  --json                   print a JSON summary on stdout
  --recipe <name>          a training recipe of the repository (${Object.keys(RECIPES).join(", ")}: see
                           src/train/loop/recipes.ts): it sets the model, clips, captions, size, seed and
                           the stages (each written to <out>/<stage>/); only --out, --model, --resume,
                           --cache-dir, --device, --threads and --json go with it
`;

const FLAGS = {
  model: { type: "string" },
  data: { type: "string", multiple: true },
  prompt: { type: "string", multiple: true },
  out: { type: "string" },
  steps: { type: "string" },
  lr: { type: "string" },
  "lr-scheduler": { type: "string" },
  warmup: { type: "string" },
  "weight-decay": { type: "string" },
  "max-grad-norm": { type: "string" },
  batch: { type: "string" },
  size: { type: "string" },
  frames: { type: "string" },
  stride: { type: "string" },
  trainable: { type: "string" },
  train: { type: "string" },
  controlnet: { type: "string" },
  canny: { type: "string" },
  prediction: { type: "string" },
  "noise-offset": { type: "string" },
  "empty-prompts": { type: "string" },
  latents: { type: "string" },
  seed: { type: "string" },
  "save-every": { type: "string" },
  resume: { type: "boolean" },
  "cache-dir": { type: "string" },
  device: { type: "string" },
  threads: { type: "string" },
  json: { type: "boolean" },
  recipe: { type: "string" },
} as const;

/** Flags a --recipe run takes (the recipe sets the rest). */
const RECIPE_FLAGS = new Set(["recipe", "out", "model", "resume", "cache-dir", "device", "threads", "json"]);

function num(
  flag: string,
  text: string | undefined,
  ok: (n: number) => boolean,
  expected: string,
): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || !ok(n))
    throw new InvalidArgumentError(flag, expected, text);
  return n;
}

/** "attn1.to_q,/^mid_block\\./" -> patterns (a /.../ item is a RegExp on the full key). */
export function parseTrainable(text: string): ParameterPattern[] {
  const items = text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (items.length === 0)
    throw new InvalidArgumentError("--trainable", "module-name suffixes separated by commas", text);
  return items.map((s) => {
    if (s.length > 2 && s.startsWith("/") && s.endsWith("/")) {
      try {
        return new RegExp(s.slice(1, -1));
      } catch {
        throw new InvalidArgumentError("--trainable", "a valid regular expression between slashes", s);
      }
    }
    return s;
  });
}

async function checkClips(clips: readonly string[]): Promise<void> {
  for (const c of clips) {
    const info = await stat(c).catch(() => undefined);
    if (!info) throw new InvalidArgumentError("--data", "video files that exist", c);
  }
}

/** The options of `trainDiffusion` from the flags (everything checked, nothing loaded). */
export async function trainOptionsFromFlags(
  args: readonly string[],
): Promise<{ options: TrainOptions; json: boolean }> {
  const { values: v, positionals } = parseCommandArgs(args, FLAGS);
  if (positionals.length > 0)
    throw new InvalidArgumentError(
      "arguments",
      "flags only (see steadyframe train --help)",
      positionals.join(" "),
    );
  if (v.model === undefined)
    throw new InvalidArgumentError("--model", "a diffusers pipeline folder", undefined);
  if (v.out === undefined) throw new InvalidArgumentError("--out", "an output folder", undefined);
  const clips = (v.data ?? [])
    .flatMap((d) => d.split(","))
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (clips.length === 0) throw new InvalidArgumentError("--data", "one or more video files", undefined);
  const prompts = v.prompt ?? [];
  if (prompts.length !== 1 && prompts.length !== clips.length) {
    throw new InvalidArgumentError(
      "--prompt",
      `one caption, or one per clip (${clips.length})`,
      `${prompts.length} prompts`,
    );
  }
  await checkClips(clips);
  const size = v.size === undefined ? undefined : parseSize(v.size);
  const frames = intOption("--frames", v.frames, 1);
  const stride = intOption("--stride", v.stride, 1);
  const maxGradNorm = num("--max-grad-norm", v["max-grad-norm"], (n) => n >= 0, "a number >= 0 (0 = off)");
  const prediction = oneOf("--prediction", v.prediction, ["epsilon", "v"], "epsilon");
  const threads = intOption("--threads", v.threads, 1);
  const train = oneOf("--train", v.train, ["unet", "controlnet", "unet+controlnet"], "unet");
  if (train === "unet") {
    for (const flag of ["controlnet", "canny"] as const)
      if (v[flag] !== undefined)
        throw new InvalidArgumentError(
          `--${flag}`,
          "--train controlnet or unet+controlnet (it only applies there)",
          v[flag],
        );
  }
  const canny = v.canny === undefined ? undefined : parseCanny(v.canny);
  const options: TrainOptions = {
    model: v.model,
    clips: clips.map((path, i) => ({
      path,
      prompt: prompts[prompts.length === 1 ? 0 : i] ?? "",
      ...(frames === undefined ? {} : { maxFrames: frames }),
      ...(stride === undefined ? {} : { stride }),
    })),
    out: v.out,
    steps: intOption("--steps", v.steps, 1) ?? 100,
    ...(v.lr === undefined ? {} : { lr: num("--lr", v.lr, (n) => n > 0, "a learning rate > 0") ?? 0 }),
    ...(v["lr-scheduler"] === undefined
      ? {}
      : {
          lrScheduler: oneOf<ScheduleName>("--lr-scheduler", v["lr-scheduler"], SCHEDULE_NAMES, "constant"),
        }),
    ...(v.warmup === undefined ? {} : { warmupSteps: intOption("--warmup", v.warmup, 0) ?? 0 }),
    ...(v["weight-decay"] === undefined
      ? {}
      : { weightDecay: num("--weight-decay", v["weight-decay"], (n) => n >= 0, "a number >= 0") ?? 0 }),
    ...(maxGradNorm === undefined ? {} : { maxGradNorm: maxGradNorm === 0 ? null : maxGradNorm }),
    batch: intOption("--batch", v.batch, 1) ?? 1,
    ...(size === undefined
      ? {}
      : "width" in size
        ? { width: size.width, height: size.height }
        : { width: size.shortSide, height: size.shortSide }),
    ...(v.trainable === undefined ? {} : { trainable: parseTrainable(v.trainable) }),
    train,
    ...(v.controlnet === undefined ? {} : { controlnet: v.controlnet }),
    ...(canny === undefined ? {} : { canny: { low: canny.threshold1, high: canny.threshold2 } }),
    ...(v.prediction === undefined ? {} : { prediction: prediction === "v" ? "v_prediction" : "epsilon" }),
    ...(v["noise-offset"] === undefined
      ? {}
      : { noiseOffset: num("--noise-offset", v["noise-offset"], (n) => n >= 0, "a number >= 0") ?? 0 }),
    ...(v["empty-prompts"] === undefined
      ? {}
      : {
          emptyPrompts:
            num("--empty-prompts", v["empty-prompts"], (n) => n >= 0 && n <= 1, "a share between 0 and 1") ??
            0,
        }),
    latents: oneOf("--latents", v.latents, ["mean", "sample"], "mean"),
    seed: parseSeed(v.seed),
    ...(v["save-every"] === undefined
      ? {}
      : { saveEvery: intOption("--save-every", v["save-every"], 1) ?? 1 }),
    resume: v.resume === true,
    load: {
      executionProviders: deviceOption(v.device),
      ...(v["cache-dir"] === undefined ? {} : { cacheDir: v["cache-dir"] }),
      ...(threads === undefined ? {} : { intraOpNumThreads: threads }),
    },
  };
  await checkOutputPath("--out", v.out, "folder");
  return { options, json: v.json === true };
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  return s >= 3600
    ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`
    : s >= 60
      ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`
      : `${s}s`;
}

/** The training line: bar, step, loss (and its mean over the last 10 steps), s/step, ETA. */
export function trainProgress(
  stream: NodeJS.WritableStream,
  interactive: boolean,
): { onProgress: ProgressCallback; onStep: (s: StepInfo) => void } {
  const plain = progressBar(stream, interactive);
  const recent: number[] = [];
  let secs = 0;
  let runs = 0;
  let lastLine = 0;
  return {
    onProgress: (e) => {
      if (e.task !== "training") plain(e);
      else if (e.status === "done" && interactive) stream.write("\n");
    },
    onStep: (s) => {
      recent.push(s.loss);
      if (recent.length > 10) recent.shift();
      secs += s.seconds;
      runs += 1;
      const mean = recent.reduce((a, b) => a + b, 0) / recent.length;
      const perStep = secs / runs;
      const width = 24;
      const filled = Math.round((width * s.step) / s.totalSteps);
      const line =
        `train [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${s.step}/${s.totalSteps}  ` +
        `loss ${s.loss.toFixed(4)} (avg10 ${mean.toFixed(4)})  ${perStep.toFixed(2)} s/step  ` +
        `ETA ${duration(perStep * (s.totalSteps - s.step))}`;
      if (interactive) {
        const now = Date.now();
        if (now - lastLine >= 100 || s.step === s.totalSteps) stream.write(`\r\x1b[2K${line}`);
        lastLine = now;
      } else if (s.step % Math.max(1, Math.floor(s.totalSteps / 20)) === 0 || s.step === s.totalSteps) {
        stream.write(`${line}\n`);
      }
    },
  };
}

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

function summarize(result: TrainResult): Record<string, unknown> {
  return {
    out: result.out,
    steps: result.steps,
    checkpoint: result.checkpoint,
    lossFirst5: mean(result.losses.slice(0, 5)),
    lossLast5: mean(result.losses.slice(-5)),
    secondsPerStep: result.secondsPerStep,
    trainableParameters: result.trainableParameters,
    lossPlot: join(result.out, "loss.svg"),
  };
}

function describe(result: TrainResult): string {
  return (
    `wrote ${result.out}: ${result.steps} steps, loss ${mean(result.losses.slice(0, 5)).toFixed(4)} -> ` +
    `${mean(result.losses.slice(-5)).toFixed(4)} (mean of the first/last 5), ${result.secondsPerStep.toFixed(2)} s/step, ` +
    `${result.trainableParameters} parameters trained; plot ${join(result.out, "loss.svg")}\n`
  );
}

async function runRecipeCommand(args: readonly string[], io: CliIO): Promise<number> {
  const { values: v, positionals } = parseCommandArgs(args, FLAGS);
  if (positionals.length > 0)
    throw new InvalidArgumentError(
      "arguments",
      "flags only (see steadyframe train --help)",
      positionals.join(" "),
    );
  const recipe = findRecipe(v.recipe ?? "");
  const extra = Object.keys(v).filter((flag) => !RECIPE_FLAGS.has(flag));
  if (extra.length > 0)
    throw new InvalidArgumentError(
      "--recipe",
      "no other training flags than --out, --model, --resume, --cache-dir, --device, --threads, --json (the recipe sets the rest)",
      extra.map((f) => `--${f}`),
      { hint: "edit the recipe in src/train/loop/recipes.ts, or train without --recipe" },
    );
  if (v.out === undefined) throw new InvalidArgumentError("--out", "an output folder", undefined);
  await checkOutputPath("--out", v.out, "folder");
  const threads = intOption("--threads", v.threads, 1);
  const progress = trainProgress(io.stderr, io.interactive);
  const results = await runRecipe(recipe, {
    out: v.out,
    resume: v.resume === true,
    ...(v.model === undefined ? {} : { model: v.model }),
    load: {
      executionProviders: deviceOption(v.device),
      ...(v["cache-dir"] === undefined ? {} : { cacheDir: v["cache-dir"] }),
      ...(threads === undefined ? {} : { intraOpNumThreads: threads }),
    },
    ...progress,
    onVaeStep: (s) => progress.onStep({ ...s, lr: 0 }),
    signal: io.signal,
    onStage: (stage, i) =>
      io.stderr.write(
        `recipe ${recipe.name}: stage ${i + 1}/${recipe.stages.length} (${stage.name}, ${stage.steps} steps)\n`,
      ),
  }).catch((error: unknown) => {
    if (error instanceof CancelledError)
      io.stderr.write(
        `\nstopped: the steps done are saved; run the same command with --resume to continue\n`,
      );
    throw error;
  });
  if (v.json === true)
    io.stdout.write(`${JSON.stringify({ recipe: recipe.name, stages: results.map(summarize) }, null, 2)}\n`);
  else for (const r of results) io.stdout.write(describe(r));
  return 0;
}

async function run(args: readonly string[], io: CliIO): Promise<number> {
  if (args.some((a) => a === "--recipe" || a.startsWith("--recipe="))) return runRecipeCommand(args, io);
  const { options, json } = await trainOptionsFromFlags(args);
  const progress = trainProgress(io.stderr, io.interactive);
  const result = await trainDiffusion({ ...options, ...progress, signal: io.signal }).catch(
    (error: unknown) => {
      if (error instanceof CancelledError)
        io.stderr.write(
          `\nstopped: the steps done are saved in ${join(options.out, "checkpoints")}; run the same command with --resume to continue\n`,
        );
      throw error;
    },
  );
  if (json) io.stdout.write(`${JSON.stringify(summarize(result), null, 2)}\n`);
  else io.stdout.write(describe(result));
  return 0;
}

export const trainCommand: CliCommand = {
  name: "train",
  summary: "fine-tune a model's UNet on video frames (denoising loss, checkpoints, exact --resume)",
  usage: USAGE,
  run,
};
