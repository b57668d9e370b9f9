/**
 * `steadyframe image`: text-to-image with optional ControlNets, from a diffusers folder or a
 * single-file checkpoint, with torch-compatible seeds, a progress bar, and an atomic PNG write.
 */
import { rename, unlink } from "node:fs/promises";
import { dirname, basename, join } from "node:path";
import { parseArgs } from "node:util";
import { InvalidArgumentError } from "../../errors.js";
import { readImageFile, writePngFile } from "../../control/png.js";
import { resizeImage } from "../../control/resize.js";
import { imageToTensor, tensorToImages } from "../../pipeline/images.js";
import { StableDiffusionPipeline } from "../../pipeline/stable-diffusion.js";
import { SCHEDULER_CLASS_NAMES, SCHEDULER_NAMES } from "../../schedulers/registry.js";
import { toFloat32, type HostTensor } from "../../tensor.js";
import { openSafetensors } from "../../weights/safetensors.js";
import type { CliCommand } from "../command.js";
import { progressBar } from "../progress-bar.js";

const usage = `Usage: steadyframe image --model <dir|file> --prompt <text> --out <file.png> [options]

Generates one image with Stable Diffusion (1.x/2.x), optionally guided by ControlNets.

Options:
  --model <dir|file>        a diffusers pipeline folder (model_index.json), or a single-file checkpoint
                            (.safetensors/.ckpt) together with --config
  --config <dir>            diffusers folder with the configs and tokenizer of a single-file checkpoint
  --prompt <text>           the prompt (required)
  --negative-prompt <text>  the negative prompt (default "")
  --controlnet <dir|file>   a ControlNet (repeatable; one --control image each, in the same order)
  --control <image>         a control image (PNG/JPEG; resized to the output size)
  --control-scale <s>       conditioning scale per ControlNet (repeatable, default 1)
  --guess-mode              ControlNet guess mode
  --steps <N>               denoising steps (default 30)
  --scheduler <name>        ddim, ddpm, pndm, euler, euler_ancestral, dpmpp_2m, lms (default: the model's)
  --guidance <g>            classifier-free guidance scale (default 7.5)
  --eta <e>                 DDIM eta (default 0)
  --seed <n>                seed of the torch-compatible noise (default 0)
  --latents <file[:name]>   initial latents from a safetensors file (tensor "latents" unless named)
  --width <px> --height <px>  output size, multiples of 8 (default: the UNet's sample_size x 8)
  --clip-skip <k>           use the text encoder's k-th last layer
  --threads <n>             ONNX Runtime threads per op
  --out <file.png>          the PNG to write (required)
`;

function number(
  name: string,
  text: string | undefined,
  check: (n: number) => boolean,
  expected: string,
): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || !check(n))
    throw new InvalidArgumentError(name, expected, text);
  return n;
}

async function readLatents(spec: string): Promise<HostTensor<"float32">> {
  const colon = spec.lastIndexOf(":");
  const [path, name] = colon > 1 ? [spec.slice(0, colon), spec.slice(colon + 1)] : [spec, undefined];
  const file = await openSafetensors(path);
  const key =
    name ?? (file.has("latents") ? "latents" : file.keys().length === 1 ? file.keys()[0] : undefined);
  if (key === undefined || !file.has(key)) {
    throw new InvalidArgumentError(
      "--latents",
      `a tensor name in ${path} (${file.keys().join(", ")})`,
      name ?? "(none)",
      {
        hint: "name it as --latents file.safetensors:name",
      },
    );
  }
  return toFloat32(await file.read(key));
}

function isSchedulerName(name: string): boolean {
  return Object.hasOwn(SCHEDULER_NAMES, name) || (SCHEDULER_CLASS_NAMES as readonly string[]).includes(name);
}

export const imageCommand: CliCommand = {
  name: "image",
  summary: "generate an image from a prompt (Stable Diffusion, optional ControlNets)",
  usage,
  async run(args, io) {
    const { values: v } = parseArgs({
      args: [...args],
      options: {
        model: { type: "string" },
        config: { type: "string" },
        prompt: { type: "string" },
        "negative-prompt": { type: "string" },
        controlnet: { type: "string", multiple: true },
        control: { type: "string", multiple: true },
        "control-scale": { type: "string", multiple: true },
        "guess-mode": { type: "boolean", default: false },
        steps: { type: "string" },
        scheduler: { type: "string" },
        guidance: { type: "string" },
        eta: { type: "string" },
        seed: { type: "string" },
        latents: { type: "string" },
        width: { type: "string" },
        height: { type: "string" },
        "clip-skip": { type: "string" },
        threads: { type: "string" },
        out: { type: "string" },
      },
    });
    if (v.model === undefined)
      throw new InvalidArgumentError("--model", "a diffusers folder or checkpoint file", undefined);
    if (v.prompt === undefined) throw new InvalidArgumentError("--prompt", "the prompt text", undefined);
    if (v.out === undefined || !v.out.toLowerCase().endsWith(".png")) {
      throw new InvalidArgumentError("--out", "a .png file path", v.out);
    }
    const controlnets = v.controlnet ?? [];
    const controls = v.control ?? [];
    if (controls.length !== controlnets.length) {
      throw new InvalidArgumentError(
        "--control",
        `one control image per --controlnet (${controlnets.length})`,
        `${controls.length} image(s)`,
      );
    }
    const scales = (v["control-scale"] ?? []).map(
      (s) => number("--control-scale", s, (n) => n >= 0, "a number >= 0") ?? 1,
    );
    const int = (name: string, text: string | undefined, min: number): number | undefined =>
      number(name, text, (n) => Number.isInteger(n) && n >= min, `an integer >= ${min}`);
    const steps = int("--steps", v.steps, 1) ?? 30;
    const seed = int("--seed", v.seed, 0) ?? 0;
    const threads = int("--threads", v.threads, 1);
    const clipSkip = int("--clip-skip", v["clip-skip"], 1);
    const guidance = number("--guidance", v.guidance, (n) => n >= 0, "a number >= 0") ?? 7.5;
    const eta = number("--eta", v.eta, (n) => n >= 0, "a number >= 0") ?? 0;
    if (v.scheduler !== undefined && !isSchedulerName(v.scheduler)) {
      throw new InvalidArgumentError(
        "--scheduler",
        `one of ${Object.keys(SCHEDULER_NAMES).join(", ")}`,
        v.scheduler,
      );
    }

    const pipeline = await StableDiffusionPipeline.load(v.model, {
      ...(v.config === undefined ? {} : { configDir: v.config }),
      controlnets,
      ...(threads === undefined ? {} : { intraOpNumThreads: threads }),
      signal: io.signal,
    });
    try {
      const sampleSize = Number(pipeline.unetConfig.sample_size ?? 64) * pipeline.vaeScaleFactor;
      const multiple = (name: string, text: string | undefined): number => {
        const n = int(name, text, 1) ?? sampleSize;
        const step = Math.max(8, pipeline.vaeScaleFactor);
        if (n % step !== 0) {
          throw new InvalidArgumentError(name, `a multiple of ${step}`, n);
        }
        return n;
      };
      const width = multiple("--width", v.width);
      const height = multiple("--height", v.height);
      const controlImages = await Promise.all(
        controls.map(async (path, i) => {
          const picture = await readImageFile(path);
          if (picture.channels !== 3)
            throw new InvalidArgumentError(
              `--control ${path}`,
              "an RGB image",
              `${picture.channels} channel(s)`,
            );
          const sized = await resizeImage(picture, { width, height, interpolation: "area" });
          return { image: imageToTensor(sized, "0,1"), scale: scales[i] ?? 1 };
        }),
      );
      const result = await pipeline.generate({
        prompt: v.prompt,
        negativePrompt: v["negative-prompt"] ?? "",
        width,
        height,
        numInferenceSteps: steps,
        guidanceScale: guidance,
        eta,
        seed,
        guessMode: v["guess-mode"] === true,
        ...(clipSkip === undefined ? {} : { clipSkip }),
        ...(v.scheduler === undefined ? {} : { scheduler: v.scheduler }),
        ...(v.latents === undefined ? {} : { latents: await readLatents(v.latents) }),
        controls: controlImages,
        onProgress: progressBar(io.stderr, io.interactive),
        signal: io.signal,
      });
      const [picture] = tensorToImages(result.image);
      if (picture === undefined) throw new InvalidArgumentError("image", "one generated image", 0);
      const temp = join(dirname(v.out), `.${basename(v.out)}.tmp-${process.pid}.png`);
      try {
        await writePngFile(temp, picture);
        await rename(temp, v.out);
      } catch (error) {
        await unlink(temp).catch(() => undefined);
        throw error;
      }
      io.stdout.write(`written: ${v.out} (${width}x${height}, ${steps} steps, seed ${seed})\n`);
      return 0;
    } finally {
      await pipeline.release();
    }
  },
};
