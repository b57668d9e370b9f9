/**
 * `steadyframe image`: text-to-image (or img2img with --init-image) with optional ControlNets, from
 * a diffusers folder or a single-file checkpoint, with torch-compatible seeds, progress for loading
 * and denoising, and atomic PNG writes. Every argument and input file is checked, and the output
 * location tested, before any model is loaded.
 */
import { access, stat } from "node:fs/promises";
import { basename, dirname, extname, join } from "node:path";
import { parseArgs } from "node:util";
import { CorruptFileError, FileNotFoundError, InvalidArgumentError } from "../../errors.js";
import type { Image } from "../../image.js";
import { readImageFile, writePngFile } from "../../control/png.js";
import { resizeImage } from "../../control/resize.js";
import { imageToTensor, tensorToImages, toRGB } from "../../pipeline/images.js";
import { StableDiffusionPipeline } from "../../pipeline/stable-diffusion.js";
import { type ProviderFailure, explainFallback } from "../../runtime/session.js";
import { SCHEDULER_CLASS_NAMES, SCHEDULER_NAMES } from "../../schedulers/registry.js";
import { shapeToString, toFloat32, type HostTensor } from "../../tensor.js";
import { withAtomicFile } from "../../util/atomic-write.js";
import { openSafetensors } from "../../weights/safetensors.js";
import type { CliCommand } from "../command.js";
import { checkOutputPath } from "../output-path.js";
import { progressBar } from "../progress-bar.js";
import { readT2IAdapterConfig } from "../../models/t2i-adapter/config.js";
import { deviceOption } from "./cli-options.js";
import { LORA_HELP, TINY_VAE_HELP, checkLoraLive, loraOption } from "./lora-option.js";
import { EMBEDDING_HELP, embeddingOption } from "./embedding-option.js";
import { UNI_IMAGE_HELP, UNI_IMAGE_OPTIONS, runUniImage } from "./image-uni.js";

/** How single-file owners get the diffusers folder --config needs. */
const CONFIG_HOWTO =
  "download the configs and tokenizer (no weights) of the matching diffusers model, e.g. for SD 1.5: " +
  "`huggingface-cli download stable-diffusion-v1-5/stable-diffusion-v1-5 --include '*.json' '*.txt' " +
  "--local-dir sd15-config` (SD 2.x: stabilityai/stable-diffusion-2-1), then pass --config sd15-config " +
  "(see docs/models.md)";

const usage = `Usage: steadyframe image --model <dir|file> --prompt <text> --out <file.png> [options]

Generates images with Stable Diffusion (1.x/2.x), optionally guided by ControlNets or started from
an image (img2img). Every argument and input file is checked before the models load.

Options:
  --model <dir|file>        a diffusers pipeline folder (model_index.json), or a single-file checkpoint
                            (.safetensors/.ckpt) together with --config
  --config <dir>            diffusers folder with the configs and tokenizer of a single-file checkpoint
                            (weights not needed; see docs/models.md for how to get one)
  --prompt <text>           the prompt (required; CLIP reads 77 tokens, a longer prompt is cut with a
                            warning that quotes the cut text; not with --prompt-syntax a1111)
  --negative-prompt <text>  the negative prompt (default "")
  --prompt-syntax <s>       plain (default: diffusers, 77 tokens) or a1111: (word:1.3), (word) = x1.1,
                            [word] = /1.1, \\( \\) literal, BREAK, any length in 75-token chunks
                            (the README has the exact rules)
  --controlnet <dir|file>   a ControlNet (repeatable; one --control image each, in the same order)
  --control <image>         a control image (PNG/JPEG; gray and RGBA are converted to RGB as diffusers
                            does; resized to the output size)
  --control-scale <s>       conditioning scale per ControlNet (repeatable, default 1)
  --t2i-adapter <dir>       a T2I-Adapter (diffusers T2IAdapter folder, full_adapter): takes the --control
                            image after those of the ControlNets, and the --control-scale at that
                            position (diffusers adapter_conditioning_scale, default 1)
  --ip-adapter <file>       an IP-Adapter (published SD1.5 ip-adapter / ip-adapter-plus .safetensors or
                            .bin): the image(s) of --ip-image steer the generation
  --ip-image <image>        the IP-Adapter's reference image (repeatable: several images of one adapter)
  --ip-scale <s>            IP-Adapter scale (diffusers set_ip_adapter_scale; default 1, 0 = no effect)
  --image-encoder <dir>     the IP-Adapter's CLIP image encoder (CLIPVisionModelWithProjection folder;
                            default: image_encoder/ beside the --ip-adapter file, h94's layout)
  --guess-mode              ControlNet guess mode (diffusers: residuals scaled 0.1 -> 1.0 over the
                            blocks, no control on the unconditional half; on by itself for ControlNets
                            whose config has global_pool_conditions)
${UNI_IMAGE_HELP}${LORA_HELP}${EMBEDDING_HELP}${TINY_VAE_HELP}  --init-image <image>      img2img: start from this image (resized to the output size)
  --strength <s>            img2img: how much of the schedule is run, 0..1 (default 0.8)
  --steps <N>               denoising steps (default 30)
  --scheduler <name>        ddim, ddpm, pndm, euler, euler_ancestral, dpmpp_2m, dpmpp_2m_karras,
                            unipc, lms, lcm (default: the model's)
  --guidance <g>            classifier-free guidance scale (default 7.5)
  --eta <e>                 DDIM eta (default 0)
  --seed <n>                seed of the torch-compatible noise, any integer torch accepts
                            (-2^63 .. 2^64-1; default 0): --seed 42 = torch.Generator().manual_seed(42)
  --num-images <N>          N images with seeds seed, seed+1, ..., seed+N-1 (default 1); with N > 1 the
                            files are <out>-<seed>.png (e.g. car-42.png, car-43.png)
  --latents <file[:name]>   initial latents from a safetensors file (tensor "latents" unless named)
  --width <px> --height <px>  output size, multiples of 8 (default: the UNet's sample_size x 8)
  --clip-skip <k>           text encoder layer from the end, as diffusers' clip_skip: 0 = the last layer
                            (the default), 1 = the penultimate (what A1111 calls "CLIP skip 2")
  --cache-dir <dir>         compiled-model cache folder (default STEADYFRAME_CACHE_DIR, else the OS
                            temp folder; see 'steadyframe cache')
  --device <d>              cpu (default), cuda or webgpu (ONNX Runtime execution provider; falls
                            back to the CPU with a warning saying why; CUDA needs onnxruntime-node's
                            CUDA build, see the README)
  --threads <n>             ONNX Runtime threads per op
  --json                    print one JSON object on stdout: {"images": [{"path", "seed", "seconds"}],
                            "width", "height", "steps", "timings": {"loadSeconds", "totalSeconds"}}
                            (seeds as decimal strings: 64-bit seeds do not fit a JSON number)
  --out <file.png>          the PNG to write (required; missing folders are created)
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

const int = (name: string, text: string | undefined, min: number, max?: number): number | undefined =>
  number(
    name,
    text,
    (n) => Number.isSafeInteger(n) && n >= min && (max === undefined || n <= max),
    max === undefined ? `an integer >= ${min}` : `an integer from ${min} to ${max}`,
  );

const MIN_SEED = -(2n ** 63n);
const MAX_SEED = 2n ** 64n - 1n;

/** --seed as torch takes it: any integer in [-2^63, 2^64 - 1], exact (no 2^53 limit). */
export function parseSeed(text: string | undefined, count = 1): bigint {
  if (text === undefined) return 0n;
  const expected = "an integer from -2^63 to 2^64-1 (torch's seed range)";
  if (!/^\s*[-+]?\d+\s*$/.test(text)) throw new InvalidArgumentError("--seed", expected, text);
  const seed = BigInt(text.trim());
  if (seed < MIN_SEED || seed > MAX_SEED) throw new InvalidArgumentError("--seed", expected, text);
  if (seed + BigInt(count - 1) > MAX_SEED) {
    throw new InvalidArgumentError(
      "--seed",
      `at most ${MAX_SEED - BigInt(count - 1)} with --num-images ${count} (the last seed, seed + ${count - 1}, must stay <= 2^64-1)`,
      text,
    );
  }
  return seed;
}

/** Checks that `path` is there before anything loads (the error names the flag). */
async function needFile(flag: string, path: string): Promise<void> {
  try {
    await access(path);
  } catch (cause) {
    throw new FileNotFoundError(path, `${flag} file`, { cause });
  }
}

async function readLatents(spec: string): Promise<HostTensor<"float32">> {
  const colon = spec.lastIndexOf(":");
  const [path, name] = colon > 1 ? [spec.slice(0, colon), spec.slice(colon + 1)] : [spec, undefined];
  await needFile("--latents", path);
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

/** A control or init image as RGB at the output size (PIL convert("RGB") first, as diffusers). */
async function readPicture(flag: string, path: string, width: number, height: number): Promise<Image> {
  await needFile(flag, path);
  const picture = await readImageFile(path).catch((error: unknown) => {
    if (!(error instanceof CorruptFileError)) throw error;
    throw new CorruptFileError(error.path, `${flag} image: ${error.reason}`, undefined, {
      cause: error,
      hint: "use an 8-bit PNG, JPEG or WebP file",
    });
  });
  const rgb = toRGB(picture);
  return rgb.width === width && rgb.height === height
    ? rgb
    : resizeImage(rgb, { width, height, interpolation: "area" });
}

function isSchedulerName(name: string): boolean {
  return Object.hasOwn(SCHEDULER_NAMES, name) || (SCHEDULER_CLASS_NAMES as readonly string[]).includes(name);
}

/** The file of image `index` of `count`: `out` itself, or `<stem>-<seed>.png` next to it. */
function outputPath(out: string, count: number, seed: bigint): string {
  if (count === 1) return out;
  const ext = extname(out);
  return join(dirname(out), `${basename(out, ext)}-${seed}${ext}`);
}

/** Checks --model / --config before anything is read: which is a checkpoint, which a folder. */
async function checkModelPaths(model: string, config: string | undefined): Promise<boolean> {
  const info = await stat(model).catch(() => undefined);
  if (info === undefined) {
    throw new FileNotFoundError(model, "--model (a diffusers folder or a .safetensors/.ckpt checkpoint)");
  }
  const singleFile = info.isFile();
  if (singleFile && config === undefined) {
    throw new InvalidArgumentError(
      "--config",
      "a diffusers folder with the configs of this checkpoint",
      undefined,
      {
        hint: `${model} is a single-file checkpoint, which holds no architecture; pass --config <diffusers folder>: ${CONFIG_HOWTO}`,
      },
    );
  }
  if (config !== undefined) {
    const c = await stat(config).catch(() => undefined);
    if (c === undefined) throw new FileNotFoundError(config, "--config folder", { hint: CONFIG_HOWTO });
    if (!c.isDirectory()) {
      throw new InvalidArgumentError(
        "--config",
        "a diffusers folder (model_index.json, unet/ vae/ text_encoder/ configs, tokenizer/, scheduler/)",
        config,
        { hint: `--config needs a diffusers folder, not a file such as an original .yaml; ${CONFIG_HOWTO}` },
      );
    }
  }
  return singleFile;
}

export const imageCommand: CliCommand = {
  name: "image",
  summary: "generate images from a prompt (Stable Diffusion; ControlNets, img2img)",
  usage,
  async run(args, io) {
    const started = performance.now();
    const { values: v } = parseArgs({
      args: [...args],
      options: {
        model: { type: "string" },
        config: { type: "string" },
        prompt: { type: "string" },
        "negative-prompt": { type: "string" },
        "prompt-syntax": { type: "string" },
        controlnet: { type: "string", multiple: true },
        "t2i-adapter": { type: "string" },
        "ip-adapter": { type: "string" },
        "ip-image": { type: "string", multiple: true },
        "ip-scale": { type: "string" },
        "image-encoder": { type: "string" },
        lora: { type: "string", multiple: true },
        "lora-live": { type: "boolean" },
        "tiny-vae": { type: "string" },
        embedding: { type: "string", multiple: true },
        control: { type: "string", multiple: true },
        "control-scale": { type: "string", multiple: true },
        "guess-mode": { type: "boolean", default: false },
        "init-image": { type: "string" },
        strength: { type: "string" },
        steps: { type: "string" },
        scheduler: { type: "string" },
        guidance: { type: "string" },
        eta: { type: "string" },
        seed: { type: "string" },
        "num-images": { type: "string" },
        latents: { type: "string" },
        width: { type: "string" },
        height: { type: "string" },
        "clip-skip": { type: "string" },
        device: { type: "string" },
        "cache-dir": { type: "string" },
        threads: { type: "string" },
        json: { type: "boolean", default: false },
        out: { type: "string" },
        ...UNI_IMAGE_OPTIONS,
      },
    });
    const warn = (message: string): void => void io.stderr.write(`warning: ${message}\n`);
    if (v.uni !== undefined) return runUniImage(v, io);

    // 1. Arguments that need no file.
    if (v.model === undefined)
      throw new InvalidArgumentError("--model", "a diffusers folder or checkpoint file", undefined);
    if (v.prompt === undefined) throw new InvalidArgumentError("--prompt", "the prompt text", undefined);
    const promptSyntax = v["prompt-syntax"] ?? "plain";
    if (promptSyntax !== "plain" && promptSyntax !== "a1111") {
      throw new InvalidArgumentError("--prompt-syntax", "plain or a1111", promptSyntax);
    }
    if (v.out === undefined || !v.out.toLowerCase().endsWith(".png")) {
      throw new InvalidArgumentError("--out", "a .png file path", v.out);
    }
    const controlnets = v.controlnet ?? [];
    const controls = v.control ?? [];
    const adapterDir = v["t2i-adapter"];
    const guided = controlnets.length + (adapterDir === undefined ? 0 : 1);
    const guides = adapterDir === undefined ? "--controlnet" : "--controlnet and --t2i-adapter";
    if (controls.length !== guided) {
      throw new InvalidArgumentError(
        "--control",
        `one control image per ${guides} (${guided})`,
        `${controls.length} image(s)`,
      );
    }
    const scaleTexts = v["control-scale"] ?? [];
    if (scaleTexts.length > guided) {
      throw new InvalidArgumentError(
        "--control-scale",
        `at most one per ${guides} (${guided})`,
        `${scaleTexts.length} value(s)`,
      );
    }
    const scales = scaleTexts.map((s) => number("--control-scale", s, (n) => n >= 0, "a number >= 0") ?? 1);
    const guessMode = v["guess-mode"] === true;
    if (guessMode && controlnets.length === 0) {
      throw new InvalidArgumentError("--guess-mode", "a --controlnet to act on", "no --controlnet");
    }
    const ipAdapterFile = v["ip-adapter"];
    const ipImages = v["ip-image"] ?? [];
    if (ipAdapterFile === undefined) {
      for (const flag of ["ip-image", "ip-scale", "image-encoder"] as const) {
        if (v[flag] !== undefined)
          throw new InvalidArgumentError(`--${flag}`, "--ip-adapter to go with it", v[flag]);
      }
    } else if (ipImages.length === 0) {
      throw new InvalidArgumentError("--ip-image", "a reference image for --ip-adapter", undefined);
    }
    if (ipAdapterFile !== undefined && adapterDir !== undefined) {
      throw new InvalidArgumentError("--ip-adapter", "no --t2i-adapter in the same run", ipAdapterFile, {
        hint: "use the IP-Adapter with ControlNets, or the T2I-Adapter alone",
      });
    }
    const ipScale = number("--ip-scale", v["ip-scale"], (n) => n >= 0, "a number >= 0") ?? 1;
    const steps = int("--steps", v.steps, 1) ?? 30;
    const count = int("--num-images", v["num-images"], 1, 10_000) ?? 1;
    const seed = parseSeed(v.seed, count);
    const threads = int("--threads", v.threads, 1);
    const guidance = number("--guidance", v.guidance, (n) => n >= 0, "a number >= 0") ?? 7.5;
    const eta = number("--eta", v.eta, (n) => n >= 0, "a number >= 0") ?? 0;
    const providers = deviceOption(v.device);
    const strength = number("--strength", v.strength, (n) => n >= 0 && n <= 1, "a number from 0 to 1");
    if (strength !== undefined && v["init-image"] === undefined) {
      throw new InvalidArgumentError("--strength", "--init-image to go with it", v.strength);
    }
    if (v.latents !== undefined && v["init-image"] !== undefined) {
      throw new InvalidArgumentError(
        "--latents",
        "no --init-image (img2img makes its own latents)",
        v.latents,
      );
    }
    if (v.latents !== undefined && count > 1) {
      throw new InvalidArgumentError(
        "--latents",
        "--num-images 1 (fixed latents give identical images)",
        v.latents,
      );
    }
    if (v.scheduler !== undefined && !isSchedulerName(v.scheduler)) {
      throw new InvalidArgumentError(
        "--scheduler",
        `one of ${Object.keys(SCHEDULER_NAMES).join(", ")}`,
        v.scheduler,
      );
    }

    // 2. Files: the model's configs, the output location, every input file.
    const singleFile = await checkModelPaths(v.model, v.config);
    if (!singleFile && v.config !== undefined)
      warn(`--config is only used with a single-file --model; ignored`);
    for (const path of controlnets) {
      if ((await stat(path).catch(() => undefined)) === undefined) {
        throw new FileNotFoundError(path, "--controlnet (a diffusers ControlNet folder or checkpoint file)");
      }
    }
    const adapterConfig =
      adapterDir === undefined
        ? undefined
        : (await readT2IAdapterConfig(join(adapterDir, "config.json"))).config;
    if (ipAdapterFile !== undefined) await needFile("--ip-adapter", ipAdapterFile);
    const imageEncoder = v["image-encoder"];
    if (imageEncoder !== undefined) await needFile("--image-encoder", join(imageEncoder, "config.json"));
    const ipReferences = [];
    for (const path of ipImages) {
      await needFile("--ip-image", path);
      const picture = await readImageFile(path).catch((error: unknown) => {
        if (!(error instanceof CorruptFileError)) throw error;
        throw new CorruptFileError(error.path, `--ip-image image: ${error.reason}`, undefined, {
          cause: error,
          hint: "use an 8-bit PNG, JPEG or WebP file",
        });
      });
      ipReferences.push(toRGB(picture)); // resized and cropped by the encoder's CLIPImageProcessor
    }
    const loras = await loraOption(v.lora);
    const liveLoras = checkLoraLive(v["lora-live"], loras);
    const embeddings = await embeddingOption(v.embedding);
    const summary = await StableDiffusionPipeline.inspect(
      v.model,
      singleFile && v.config !== undefined ? { configDir: v.config } : {},
    );
    const factor = summary.vaeScaleFactor;
    const step = Math.max(8, factor);
    const side = (flag: string, text: string | undefined): number => {
      const n = int(flag, text, step) ?? Number(summary.unetConfig.sample_size ?? 64) * factor;
      if (n % step !== 0) throw new InvalidArgumentError(flag, `a multiple of ${step}`, n);
      return n;
    };
    const width = side("--width", v.width);
    const height = side("--height", v.height);
    const layers = summary.textEncoderLayers;
    const clipSkip = number(
      "--clip-skip",
      v["clip-skip"],
      (n) => Number.isInteger(n) && n >= 0 && n < layers,
      `an integer from 0 to ${layers - 1} (this text encoder has ${layers} layers; 0 = the last, 1 = the penultimate)`,
    );
    const outputs = Array.from({ length: count }, (_, i) => outputPath(v.out ?? "", count, seed + BigInt(i)));
    for (const path of outputs) await checkOutputPath("--out", path, "file");
    const controlImages = [];
    for (const [i, path] of controls.slice(0, controlnets.length).entries()) {
      const picture = await readPicture(`--control`, path, width, height);
      controlImages.push({ image: imageToTensor(picture, "0,1"), scale: scales[i] ?? 1 });
    }
    // The T2I-Adapter's control image is the one after the ControlNets' (see --t2i-adapter), at the
    // latent size times its downscale_factor (the output size when that equals the VAE's factor).
    const adapterPath = controls[controlnets.length];
    const adapterControl =
      adapterConfig === undefined || adapterPath === undefined
        ? undefined
        : {
            image: imageToTensor(
              await readPicture(
                "--control",
                adapterPath,
                (width / factor) * adapterConfig.downscale_factor,
                (height / factor) * adapterConfig.downscale_factor,
              ),
              "0,1",
            ),
            scale: scales[controlnets.length] ?? 1,
          };
    const initImage =
      v["init-image"] === undefined
        ? undefined
        : imageToTensor(await readPicture("--init-image", v["init-image"], width, height), "0,1");
    const latents = v.latents === undefined ? undefined : await readLatents(v.latents);
    const latentShape = [1, summary.unetConfig.in_channels, height / factor, width / factor];
    if (latents !== undefined && latents.shape.join() !== latentShape.join()) {
      throw new InvalidArgumentError(
        "--latents",
        `a tensor of shape ${shapeToString(latentShape)} (for ${width}x${height})`,
        shapeToString(latents.shape),
      );
    }

    // 3. Models.
    const failed = new Set<string>();
    const onFallback = (f: ProviderFailure): void => {
      if (failed.has(f.provider)) return;
      failed.add(f.provider);
      warn(`--device ${v.device ?? "cpu"}: ${explainFallback(f)}; running on the next provider (cpu)`);
    };
    const bar = progressBar(io.stderr, io.interactive);
    const loadStarted = performance.now();
    const pipeline = await StableDiffusionPipeline.load(v.model, {
      ...(singleFile && v.config !== undefined ? { configDir: v.config } : {}),
      controlnets,
      guessMode,
      ...(adapterDir === undefined ? {} : { t2iAdapter: adapterDir }),
      ...(ipAdapterFile === undefined
        ? {}
        : { ipAdapter: { file: ipAdapterFile, ...(imageEncoder === undefined ? {} : { imageEncoder }) } }),
      ...(loras.length === 0 ? {} : { loras }),
      ...(liveLoras ? { liveLoras } : {}),
      ...(embeddings.length === 0 ? {} : { embeddings }),
      ...(v["tiny-vae"] === undefined ? {} : { tinyVae: v["tiny-vae"] }),
      executionProviders: providers,
      onFallback,
      ...(threads === undefined ? {} : { intraOpNumThreads: threads }),
      ...(v["cache-dir"] === undefined ? {} : { cacheDir: v["cache-dir"] }),
      onProgress: bar,
      signal: io.signal,
    });
    const loadSeconds = (performance.now() - loadStarted) / 1000;
    const written: { path: string; seed: string; seconds: number }[] = [];
    try {
      for (const [i, path] of outputs.entries()) {
        const imageStarted = performance.now();
        const imageSeed = seed + BigInt(i);
        const result = await pipeline.generate({
          prompt: v.prompt,
          negativePrompt: v["negative-prompt"] ?? "",
          promptSyntax,
          width,
          height,
          numInferenceSteps: steps,
          guidanceScale: guidance,
          eta,
          seed: imageSeed,
          guessMode,
          ...(clipSkip === undefined ? {} : { clipSkip }),
          ...(v.scheduler === undefined ? {} : { scheduler: v.scheduler }),
          ...(latents === undefined ? {} : { latents }),
          ...(initImage === undefined ? {} : { initImage, ...(strength === undefined ? {} : { strength }) }),
          controls: controlImages,
          ...(adapterControl === undefined ? {} : { t2iAdapterControl: adapterControl }),
          ...(ipAdapterFile === undefined
            ? {}
            : { ipAdapterImage: { images: ipReferences, scale: ipScale } }),
          onProgress: bar,
          // The prompt is the same for every image: say it once.
          onWarning: i === 0 ? warn : () => undefined,
          signal: io.signal,
        });
        const [picture] = tensorToImages(result.image);
        if (picture === undefined) throw new InvalidArgumentError("image", "one generated image", 0);
        await withAtomicFile(path, (temp) => writePngFile(temp, picture), { signal: io.signal });
        const seconds = (performance.now() - imageStarted) / 1000;
        written.push({ path, seed: String(imageSeed), seconds });
        if (!v.json) {
          io.stdout.write(`written: ${path} (${width}x${height}, ${steps} steps, seed ${imageSeed})\n`);
        }
      }
    } finally {
      await pipeline.release();
    }
    if (v.json) {
      const totalSeconds = (performance.now() - started) / 1000;
      const report = { images: written, width, height, steps, timings: { loadSeconds, totalSeconds } };
      io.stdout.write(`${JSON.stringify(report)}\n`);
    }
    return 0;
  },
};
