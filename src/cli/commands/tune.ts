/**
 * `steadyframe tune`: Tune-A-Video one-shot tuning (src/train/tune-a-video.ts) of a Stable Diffusion
 * model on one clip, with the release's trainable modules and hyper-parameters as defaults. The
 * output folder is the release's layout (a pipeline folder whose unet/ is a UNet3DConditionModel);
 * `steadyframe video --tuned <dir>` generates from it. A progress line shows the loss; Ctrl-C saves
 * the steps done so far and stops. Every argument is checked before any model loads.
 */
import { stat } from "node:fs/promises";
import { InvalidArgumentError } from "../../errors.js";
import { TUNE_A_VIDEO_DEFAULTS, type TuneAVideoOptions, tuneAVideo } from "../../train/tune-a-video.js";
import type { CliCommand, CliIO } from "../command.js";
import { checkOutputPath } from "../output-path.js";
import { progressBar } from "../progress-bar.js";
import { intOption, parseCommandArgs, parseSize, singleVideoArg } from "./cli-options.js";

const d = TUNE_A_VIDEO_DEFAULTS;

const USAGE = `Usage: steadyframe tune <video> --model <dir> --prompt <text> --out <dir> [options]

Tune-A-Video (showlab/Tune-A-Video): inflates the model's UNet (sparse-causal attention to the first
and previous frame, temporal attention layers) and tunes attn1.to_q, attn2.to_q and attn_temp on the
clip with the denoising loss (AdamW, gradient clipping 1.0, constant lr). The output folder holds
the tuned pipeline in the release's layout (unet/ = UNet3DConditionModel); generate from it with
'steadyframe video --tuned <dir> --prompt ...'. Ctrl-C saves the steps done so far and stops.

Options:
  --model <dir>     Stable Diffusion 1.x/2.x diffusers folder (or a tuned folder, to tune further)
  --prompt <text>   the clip's caption
  --out <dir>       the output folder (a new path)
  --steps <N>       tuning steps (default ${d.maxTrainSteps})
  --frames <N>      frames of the clip to tune on (n_sample_frames, default ${d.nSampleFrames})
  --stride <k>      take every k-th frame (sample_frame_rate, default ${d.sampleFrameRate})
  --start <i>       first frame (sample_start_idx, default ${d.sampleStartIdx})
  --size <WxH|N>    frame size; frames are stretched to it as the release does (default ${d.width}x${d.height})
  --lr <x>          AdamW learning rate (default ${d.learningRate})
  --seed <n>        seed of the temporal-layer init, VAE samples, noise and timesteps (default ${d.seed})
  --json            print a JSON summary on stdout
`;

const FLAGS = {
  model: { type: "string" },
  prompt: { type: "string" },
  out: { type: "string" },
  steps: { type: "string" },
  frames: { type: "string" },
  stride: { type: "string" },
  start: { type: "string" },
  size: { type: "string" },
  lr: { type: "string" },
  seed: { type: "string" },
  json: { type: "boolean" },
} as const;

/** The options of `tuneAVideo` from the flags (everything checked, nothing loaded). */
export async function tuneOptionsFromFlags(
  args: readonly string[],
): Promise<{ options: TuneAVideoOptions; json: boolean }> {
  const { values: v, positionals } = parseCommandArgs(args, FLAGS);
  const video = singleVideoArg(positionals, "tune");
  if ((await stat(video).catch(() => undefined)) === undefined)
    throw new InvalidArgumentError("<video>", "a video file or PNG sequence folder that exists", video);
  if (v.model === undefined)
    throw new InvalidArgumentError("--model", "a diffusers pipeline folder", undefined);
  if (v.prompt === undefined) throw new InvalidArgumentError("--prompt", "the clip's caption", undefined);
  if (v.out === undefined) throw new InvalidArgumentError("--out", "an output folder", undefined);
  const out = await checkOutputPath("--out", v.out, "folder");
  if (out.existing !== null)
    throw new InvalidArgumentError("--out", "a folder that does not exist yet", v.out, {
      hint: "choose a new output folder or remove the old one first",
    });
  const size = v.size === undefined ? undefined : parseSize(v.size);
  let lr: number | undefined;
  if (v.lr !== undefined) {
    lr = Number(v.lr);
    if (v.lr.trim() === "" || !(Number.isFinite(lr) && lr > 0))
      throw new InvalidArgumentError("--lr", "a learning rate > 0", v.lr);
  }
  let seed: number | undefined;
  if (v.seed !== undefined) {
    seed = Number(v.seed);
    if (!/^\d+$/.test(v.seed.trim()) || !Number.isSafeInteger(seed))
      throw new InvalidArgumentError("--seed", "a non-negative integer", v.seed);
  }
  const steps = intOption("--steps", v.steps, 1);
  const frames = intOption("--frames", v.frames, 1);
  const stride = intOption("--stride", v.stride, 1);
  const start = intOption("--start", v.start, 0);
  const options: TuneAVideoOptions = {
    model: v.model,
    video,
    prompt: v.prompt,
    out: v.out,
    ...(steps === undefined ? {} : { maxTrainSteps: steps }),
    ...(frames === undefined ? {} : { nSampleFrames: frames }),
    ...(stride === undefined ? {} : { sampleFrameRate: stride }),
    ...(start === undefined ? {} : { sampleStartIdx: start }),
    ...(size === undefined
      ? {}
      : "width" in size
        ? { width: size.width, height: size.height }
        : { width: size.shortSide, height: size.shortSide }),
    ...(lr === undefined ? {} : { learningRate: lr }),
    ...(seed === undefined ? {} : { seed }),
  };
  return { options, json: v.json === true };
}

async function run(args: readonly string[], io: CliIO): Promise<number> {
  const { options, json } = await tuneOptionsFromFlags(args);
  const plain = progressBar(io.stderr, io.interactive);
  const started = Date.now();
  let lastLine = 0;
  const result = await tuneAVideo({
    ...options,
    signal: io.signal,
    onProgress: (e) => {
      if (e.task !== "tuning") plain(e);
      else if (e.status === "done" && io.interactive) io.stderr.write("\n");
    },
    onStep: (s) => {
      const perStep = (Date.now() - started) / 1000 / s.step;
      const width = 24;
      const filled = Math.round((width * s.step) / s.total);
      const line =
        `tune [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${s.step}/${s.total}  ` +
        `loss ${s.loss.toFixed(4)}  ${perStep.toFixed(2)} s/step`;
      const now = Date.now();
      if (io.interactive) io.stderr.write(`\r\x1b[2K${line}`);
      else if (now - lastLine > 5000 || s.step === s.total) {
        io.stderr.write(`${line}\n`);
        lastLine = now;
      }
    },
  });
  if (json) {
    io.stdout.write(
      `${JSON.stringify({ out: result.out, steps: result.steps, cancelled: result.cancelled, frames: result.frames, losses: result.losses })}\n`,
    );
  } else {
    io.stdout.write(
      `${result.cancelled ? "stopped early; saved" : "saved"} ${result.out} after ${result.steps} steps` +
        ` (final loss ${result.losses[result.losses.length - 1]?.toFixed(4) ?? "?"})\n`,
    );
  }
  return result.cancelled ? 130 : 0;
}

export const tuneCommand: CliCommand = {
  name: "tune",
  summary: "Tune-A-Video: one-shot tuning of an inflated Stable Diffusion UNet on one clip",
  usage: USAGE,
  run,
};
