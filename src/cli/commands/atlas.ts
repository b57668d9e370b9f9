/**
 * `steadyframe atlas fit|export|render`: Neural Layered Atlases (src/atlas) from the command line.
 * `fit` decodes a clip at the working size, computes Farneback flows (or reads given ones), reads
 * optional masks, pre-trains the mappings and fits the four nets with checkpoints (Ctrl-C keeps the
 * last one; `--resume` continues), then exports the atlases. `export` writes the atlas PNGs again
 * (another --atlas-size); `edit` edits an exported atlas with the image pipeline (img2img, optionally a
 * Canny ControlNet on the atlas's own edges: the StableVideo route, src/atlas/pipeline-edit.ts);
 * `render` propagates edited atlas PNGs to every frame into a video.
 */
import { readFile, readdir } from "node:fs/promises";
import { extname, join } from "node:path";
import { CancelledError, InvalidArgumentError } from "../../errors.js";
import type { FlowField } from "../../control/flow.js";
import { pairFlows } from "../../control/flow.js";
import { readImageFile } from "../../control/png.js";
import { resizeImage } from "../../control/resize.js";
import { type AtlasExportInfo, exportAtlases, renderAtlasVideo } from "../../atlas/edit.js";
import { RELEASE_LOSS_CONFIG } from "../../atlas/losses.js";
import { atlasLayer, editAtlasWithPipeline, requireFittedAtlas } from "../../atlas/pipeline-edit.js";
import {
  CHECKPOINT_FILE,
  type FitInput,
  createAtlasModel,
  fitAtlas,
  loadAtlasModel,
} from "../../atlas/fit.js";
import { toFloat32 } from "../../tensor.js";
import { writeFileAtomic } from "../../util/atomic-write.js";
import { readAllFrames } from "../../video/read.js";
import { probeVideo } from "../../video/probe.js";
import { readSafetensors } from "../../weights/safetensors.js";
import type { CliCommand, CliIO } from "../command.js";
import { checkOutputPath } from "../output-path.js";
import { progressBar } from "../progress-bar.js";
import {
  deviceOption,
  intOption,
  parseCanny,
  parseCommandArgs,
  parseSize,
  resolveSize,
  singleVideoArg,
} from "./cli-options.js";
import { parseSeed } from "./image.js";

const PROGRESS_FILE = "progress.csv";

const USAGE = `Usage:
  steadyframe atlas fit <video> --out DIR [--mask masks/] [--frames N] [--size WxH] [--iterations N]
                        [--width N] [--encoding pe|grid] [--grid-levels R,R,...] [--batch N]
                        [--frame-affine] [--pretrain N] [--seed N] [--flows FILE]
                        [--checkpoint-every N] [--atlas-size R] [--workers N] [--resume] [--lr LR]
                        [--lr-decay-from N] [--lr-final F] [--focus F] [--bootstrap-until N]
                        [--threads N]
  steadyframe atlas export DIR [--atlas-size R] [--threads N]
  steadyframe atlas edit DIR --model sd15/ --prompt TEXT --out edited.png [--controlnet canny/]
                         [--layer background|foreground] [--strength S] [--steps N] [--seed N] ...
  steadyframe atlas render DIR [--atlas edited-bg.png] [--atlas-fg edited-fg.png] --out FILE.mp4 [--fps N]
                         [--threads N]

Neural Layered Atlases (ykasten/layered-neural-atlases): a foreground and a background atlas with
mapping and alpha networks fitted to one clip; an edit painted on an atlas re-renders in every frame.

fit options:
  --out DIR             model folder (model.json, data.safetensors, checkpoint.safetensors, atlas PNGs,
                        progress.csv: iteration, seconds, loss, rgb loss, batch PSNR)
  --mask DIR            folder of foreground masks (PNG, sorted by name, one per frame, white = object;
                        gray or the first channel; the video's size or the working size). Without it the
                        bootstrapping target is alpha 0 everywhere: one background layer.
  --frames N            use the first N frames (at least 2; default all)
  --size WxH | N        working size (N = short side, aspect kept; default 128)
  --iterations N        total iterations to reach (default 2000; the release runs 400000)
  --width N             hidden width of every network (default 256, the release's; with --encoding
                        grid: of the mapping and alpha networks)
  --encoding pe|grid    the atlas (texture) network: pe = the release's 8-layer MLP on a positional
                        encoding (default); grid = a multiresolution grid (6 levels, 16..512 vertices
                        per side) and a 3-layer width-64 MLP: not the release's; reaches the release
                        atlas's quality about 5x sooner (docs/atlas.md)
  --grid-levels R,...   with --encoding grid: vertices per side of each level, coarse to fine (default
                        16,32,64,128,256,512); the layers share the table, a quarter each, so a clip
                        whose background pans far past the frame wants finer levels (e.g. ...,1024,2048)
  --frame-affine        give the mapping networks a learnt affine map of (x, y) per frame (not the
                        release's): for a camera that pans, zooms or rolls far (docs/atlas.md)
  --batch N             pixels per iteration (default 10000, the release's)
  --pretrain N          mapping pre-training iterations (default 100, the release's)
  --seed N              seed of the weights and of the pixel sampling (default 0)
  --flows FILE          safetensors with flow_fw / flow_bw [N-1, H, W, 2] (pixels at the working size)
                        instead of Farneback flows
  --checkpoint-every N  checkpoint interval in iterations (default 1000; always at the end and on Ctrl-C)
  --atlas-size R        side of the exported atlas PNGs (default 4x the larger side, 256..1000)
  --workers N           data-parallel: split each batch into N shards run concurrently (N divides
                        --batch; each shard's session gets cores/N threads; same step as 1 worker)
  --resume              continue the model in --out from its checkpoint (the video is not read again)
  --lr LR               Adam learning rate (default 1e-4, the release's; short fits want ~1e-3)
  --lr-decay-from N     from iteration N on the rate decays exponentially, to --lr-final x the rate at
                        the last iteration (--iterations); give it again with --resume (default: none)
  --lr-final F          the last iteration's rate over --lr, in (0, 1] (default 0.1; with --lr-decay-from)
  --focus F             draw this share of each batch from the masks' foreground pixels, the rest from
                        all pixels (default 0: the release's uniform draw); weighs the object more in
                        every loss, for a small object that lags behind the background (docs/atlas.md)
  --bootstrap-until N   the alpha follows the masks (bootstrapping loss) until iteration N (default
                        10000, the release's); earlier lets rough masks (boxes) go sooner
  --threads N           ONNX Runtime threads per session (also for export and render)

edit options (the StableVideo route: the image pipeline edits an exported atlas):
  --model DIR           a diffusers Stable Diffusion folder
  --prompt TEXT         what the edited atlas should show
  --negative-prompt T   the negative prompt (default "")
  --controlnet DIR      a Canny ControlNet: the atlas's own Canny edges keep its structure
  --canny LOW,HIGH      Canny thresholds of that control image (default 100,200)
  --control-scale S     ControlNet conditioning scale (default 1)
  --layer L             background (atlas-bg.png, default) or foreground (atlas-fg.png)
  --strength S          img2img strength 0..1 (default 0.75; 1 = from noise, StableVideo's background)
  --steps N             denoising steps (default 20)
  --guidance G          classifier-free guidance (default 9)
  --seed N              torch-compatible seed (default 0)
  --size N              side the pipeline works at (default the atlas size, at most 512)
  --scheduler NAME      sampler (default the model's)
  --device D            cpu (default), cuda or webgpu
  --cache-dir DIR       compiled-model cache folder
  --threads N           ONNX Runtime threads per op
  --out FILE.png        the edited atlas: an RGBA PNG of the atlas size (alpha 255); render it with
                        --atlas (background) or --atlas-fg (foreground)
The atlases are exported first when DIR has none.

render options:
  --atlas FILE          edited background atlas (atlas-bg.png as exported; RGB: changed pixels are the
                        edit; RGBA: colour + edit alpha)
  --atlas-fg FILE       edited foreground atlas (atlas-fg.png)
  --out FILE            .mp4/.webm/.gif video or a folder for PNG frames
  --fps N               frame rate of the video (default 10)
Without edits, render writes the reconstruction from the atlas images.
`;

/** A positive number option (e.g. --lr 1e-3). */
function numberOption(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError(name, "a positive number", text);
  return n;
}

async function readMasks(
  dir: string,
  count: number,
  working: { width: number; height: number },
  source: { width: number; height: number },
): Promise<Uint8Array> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => /\.png$/i.test(n) && !n.startsWith(".")).sort();
  } catch (cause) {
    throw new InvalidArgumentError("--mask", "a folder of PNG masks", dir, { cause });
  }
  if (names.length < count)
    throw new InvalidArgumentError(
      "--mask",
      `at least ${count} PNG masks (one per frame)`,
      `${names.length} in ${dir}`,
      {
        hint: "give one mask per frame, or fewer --frames",
      },
    );
  const out = new Uint8Array(count * working.width * working.height);
  for (let i = 0; i < count; i++) {
    const path = join(dir, names[i] ?? "");
    let img = await readImageFile(path);
    const sizeOk =
      (img.width === working.width && img.height === working.height) ||
      (img.width === source.width && img.height === source.height);
    if (!sizeOk)
      throw new InvalidArgumentError(
        "--mask",
        `masks of ${working.width}x${working.height} (working size) or ${source.width}x${source.height} (the video)`,
        `${img.width}x${img.height} (${path})`,
        { hint: "make the masks at the video's size" },
      );
    if (img.width !== working.width || img.height !== working.height)
      img = await resizeImage(img, { ...working, interpolation: "linear" });
    for (let k = 0; k < working.width * working.height; k++)
      out[i * working.width * working.height + k] = img.data[k * img.channels] ?? 0;
  }
  return out;
}

async function readFlows(
  path: string,
  count: number,
  width: number,
  height: number,
): Promise<[FlowField[], FlowField[]]> {
  const t = await readSafetensors(path);
  const get = (key: string): FlowField[] => {
    const f = t.get(key);
    const want = [count - 1, height, width, 2];
    if (!f || f.shape.join(",") !== want.join(","))
      throw new InvalidArgumentError(
        `--flows ${key}`,
        `a tensor of shape [${want.join(", ")}]`,
        f ? `[${f.shape.join(", ")}]` : "missing",
        {
          hint: "flows of every consecutive frame pair, (dx, dy) in pixels at the working size",
        },
      );
    const data = toFloat32(f).data;
    const size = width * height * 2;
    return Array.from({ length: count - 1 }, (_, i) => ({
      width,
      height,
      data: data.slice(i * size, (i + 1) * size),
    }));
  };
  return [get("flow_fw"), get("flow_bw")];
}

function reportIteration(
  io: CliIO,
  every: number,
): (p: {
  iteration: number;
  iterations: number;
  losses: Readonly<Record<string, number>>;
  psnr: number;
  msPerIteration: number;
}) => void {
  return (p) => {
    if (p.iteration % every !== 0 && p.iteration !== p.iterations) return;
    io.stderr.write(
      `iteration ${p.iteration}/${p.iterations}  loss ${(p.losses.total ?? NaN).toFixed(2)}  PSNR ${p.psnr.toFixed(2)} dB  ${p.msPerIteration.toFixed(0)} ms/it\n`,
    );
  };
}

/** `--grid-levels R,R,...`: increasing integers ≥ 2, only with `--encoding grid` on a new model. */
function gridLevelsOption(
  text: string | undefined,
  encoding: string | undefined,
  resume: boolean | undefined,
): number[] | undefined {
  if (text === undefined) return undefined;
  const expected =
    "comma-separated vertices per side, increasing, each an integer 2..4096 (e.g. 16,32,64,128,256,512,1024)";
  if (resume)
    throw new InvalidArgumentError(
      "--grid-levels",
      "no --grid-levels with --resume (the model's nets are kept)",
      text,
    );
  if (encoding !== "grid")
    throw new InvalidArgumentError("--grid-levels", "only with --encoding grid", text, {
      hint: "add --encoding grid",
    });
  const levels = text.split(",").map((t) => Number(t.trim()));
  const ok =
    levels.length > 0 &&
    levels.every(
      (r, i) => Number.isInteger(r) && r >= 2 && r <= 4096 && (i === 0 || r > (levels[i - 1] ?? 0)),
    );
  if (!ok) throw new InvalidArgumentError("--grid-levels", expected, text);
  return levels;
}

async function fit(args: readonly string[], io: CliIO): Promise<number> {
  const { values: v, positionals } = parseCommandArgs(args, {
    out: { type: "string" },
    mask: { type: "string" },
    frames: { type: "string" },
    size: { type: "string" },
    iterations: { type: "string" },
    width: { type: "string" },
    encoding: { type: "string" },
    "grid-levels": { type: "string" },
    "frame-affine": { type: "boolean", default: false },
    batch: { type: "string" },
    pretrain: { type: "string" },
    seed: { type: "string" },
    flows: { type: "string" },
    "checkpoint-every": { type: "string" },
    "atlas-size": { type: "string" },
    resume: { type: "boolean", default: false },
    workers: { type: "string" },
    lr: { type: "string" },
    "lr-decay-from": { type: "string" },
    "lr-final": { type: "string" },
    focus: { type: "string" },
    "bootstrap-until": { type: "string" },
    threads: { type: "string" },
  });
  const out = v.out;
  if (out === undefined) throw new InvalidArgumentError("--out", "a model folder", undefined);
  const iterations = intOption("--iterations", v.iterations, 0) ?? 2000;
  const atlasSize = intOption("--atlas-size", v["atlas-size"], 2);
  const checkpointEvery = intOption("--checkpoint-every", v["checkpoint-every"], 1) ?? 1000;
  const workers = intOption("--workers", v.workers, 1);
  const threads = intOption("--threads", v.threads, 1);
  const lr = numberOption("--lr", v.lr);
  const decayFrom = intOption("--lr-decay-from", v["lr-decay-from"], 0);
  const lrFinal = numberOption("--lr-final", v["lr-final"]);
  if (lrFinal !== undefined && decayFrom === undefined)
    throw new InvalidArgumentError("--lr-final", "--lr-decay-from N as well", v["lr-final"]);
  if (lrFinal !== undefined && lrFinal > 1)
    throw new InvalidArgumentError("--lr-final", "a factor in (0, 1]", v["lr-final"]);
  if (decayFrom !== undefined && decayFrom >= iterations)
    throw new InvalidArgumentError(
      "--lr-decay-from",
      `an iteration before --iterations (${iterations})`,
      decayFrom,
    );
  const lrDecay = decayFrom === undefined ? undefined : { from: decayFrom, final: lrFinal ?? 0.1 };
  // checked before the video is decoded and its flows computed
  const encoding = v.encoding;
  if (encoding !== undefined && encoding !== "pe" && encoding !== "grid")
    throw new InvalidArgumentError("--encoding", "pe (the release's atlas MLP) or grid", encoding);
  if (encoding !== undefined && v.resume)
    throw new InvalidArgumentError(
      "--encoding",
      "no --encoding with --resume (the model's nets are kept)",
      encoding,
    );
  const gridLevels = gridLevelsOption(v["grid-levels"], encoding, v.resume);
  if (v["frame-affine"] && v.resume)
    throw new InvalidArgumentError(
      "--frame-affine",
      "no --frame-affine with --resume (the model's nets are kept)",
      true,
    );
  if (lr !== undefined && v.resume)
    throw new InvalidArgumentError("--lr", "no --lr with --resume (the model's rate is kept)", v.lr);
  const focus = numberOption("--focus", v.focus);
  if (focus !== undefined && v.resume)
    throw new InvalidArgumentError(
      "--focus",
      "no --focus with --resume (the model's sampling is kept)",
      v.focus,
    );
  if (focus !== undefined && !(focus >= 0 && focus < 1))
    throw new InvalidArgumentError("--focus", "a share of the batch in [0, 1)", v.focus);
  const bootstrapUntil = intOption("--bootstrap-until", v["bootstrap-until"], 0);
  if (bootstrapUntil !== undefined && v.resume)
    throw new InvalidArgumentError(
      "--bootstrap-until",
      "no --bootstrap-until with --resume (the model's schedule is kept)",
      v["bootstrap-until"],
    );
  if (focus !== undefined && focus > 0 && v.mask === undefined)
    throw new InvalidArgumentError("--focus", "--mask as well (the share is drawn from the masks)", v.focus);
  const onProgress = progressBar(io.stderr, io.interactive);
  await checkOutputPath("--out", out, "folder");
  if (!v.resume) {
    const video = singleVideoArg(positionals, "atlas fit");
    const existing = await readdir(out).catch(() => [] as string[]);
    if (existing.includes(CHECKPOINT_FILE))
      throw new InvalidArgumentError("--out", "a new folder (this one holds a fitted model)", out, {
        hint: "add --resume to continue it, or choose another --out",
      });
    const maxFrames = intOption("--frames", v.frames, 2);
    const info = await probeVideo(video);
    const size = resolveSize(parseSize(v.size ?? "128"), info.width, info.height);
    const frames = await readAllFrames(video, {
      ...(maxFrames === undefined ? {} : { maxFrames }),
      resize: { ...size, kernel: "area" },
      signal: io.signal,
    });
    if (frames.length < 2)
      throw new InvalidArgumentError(
        "<video>",
        "a clip of at least 2 frames",
        `${frames.length} frame(s) in ${video}`,
        {
          hint: "the flow terms need consecutive frame pairs",
        },
      );
    const n = frames.length;
    const rgb = new Uint8Array(n * size.width * size.height * 3);
    frames.forEach((f, i) => rgb.set(f.data, i * f.data.length));
    const masks = v.mask === undefined ? undefined : await readMasks(v.mask, n, size, info);
    const [flowFw, flowBw] =
      v.flows === undefined
        ? await (async () => {
            const pf = await pairFlows(frames, { onProgress, signal: io.signal });
            return [pf.forward, pf.backward];
          })()
        : await readFlows(v.flows, n, size.width, size.height);
    const input: FitInput = {
      ...size,
      count: n,
      frames: rgb,
      ...(masks ? { masks } : {}),
      flowFw,
      flowBw,
    };
    const width = intOption("--width", v.width, 1);
    const batch = intOption("--batch", v.batch, 1);
    const pretrain = intOption("--pretrain", v.pretrain, 0);
    const seed = intOption("--seed", v.seed, 0);
    await createAtlasModel(
      out,
      input,
      {
        ...(width === undefined ? {} : { width }),
        ...(encoding === undefined ? {} : { encoding }),
        ...(gridLevels === undefined ? {} : { gridLevels }),
        ...(v["frame-affine"] ? { frameAffine: true } : {}),
        ...(batch === undefined ? {} : { batch }),
        ...(pretrain === undefined ? {} : { pretrainIterations: pretrain }),
        ...(seed === undefined ? {} : { seed }),
        ...(lr === undefined ? {} : { lr }),
        ...(focus === undefined ? {} : { focus }),
        ...(bootstrapUntil === undefined
          ? {}
          : { loss: { ...RELEASE_LOSS_CONFIG, stopBootstrapping: bootstrapUntil } }),
        source: video,
      },
      { onProgress, signal: io.signal, ...(threads === undefined ? {} : { threads }) },
    );
    io.stderr.write(
      `${n} frames at ${size.width}x${size.height}${masks ? " with masks" : ", no masks (one background layer)"}\n`,
    );
  } else if (positionals.length > 1) {
    throw new InvalidArgumentError("<video>", "at most one video (ignored with --resume)", positionals);
  }
  const model = await loadAtlasModel(out);
  // progress.csv: PSNR vs time of every iteration, continued by --resume
  const logPath = join(out, PROGRESS_FILE);
  const previous = await readFile(logPath, "utf8").catch(
    () => "iteration,seconds,loss,rgb_loss,batch_psnr_db\n",
  );
  const offset = Number(previous.trim().split("\n").at(-1)?.split(",")[1]) || 0;
  const lines: string[] = [];
  const start = performance.now();
  const report = reportIteration(io, Math.max(1, Math.floor(iterations / 20)));
  // written with every checkpoint (periodic, final, Ctrl-C) and only then: the log always ends where
  // the checkpoint, and so --resume, does
  const saveLog = (): Promise<void> => writeFileAtomic(logPath, previous + lines.join(""));
  try {
    const result = await fitAtlas(model, {
      iterations,
      checkpointEvery,
      ...(workers === undefined ? {} : { workers }),
      ...(threads === undefined ? {} : { threads }),
      ...(lrDecay === undefined ? {} : { lrDecay }),
      onIteration: (p) => {
        report(p);
        const seconds = offset + (performance.now() - start) / 1000;
        lines.push(
          `${p.iteration},${seconds.toFixed(3)},${p.losses.total},${p.losses.rgb},${p.psnr.toFixed(3)}\n`,
        );
      },
      onCheckpoint: saveLog,
      signal: io.signal,
    });
    io.stderr.write(
      `fitted ${result.iterations} iterations, ${result.msPerIteration.toFixed(0)} ms per iteration\n`,
    );
  } catch (error) {
    if (error instanceof CancelledError)
      io.stderr.write(`stopped; the checkpoint in ${out} is kept (--resume continues)\n`);
    throw error;
  }
  const exported = await exportAtlases(out, {
    ...(atlasSize === undefined ? {} : { resolution: atlasSize }),
    ...(threads === undefined ? {} : { threads }),
    signal: io.signal,
  });
  io.stdout.write(
    `${out}: atlases ${exported.resolution}x${exported.resolution}, ${reconstructionLine(exported)}\n`,
  );
  return 0;
}

async function exportCommand(args: readonly string[], io: CliIO): Promise<number> {
  const { values: v, positionals } = parseCommandArgs(args, {
    "atlas-size": { type: "string" },
    threads: { type: "string" },
  });
  const [dir, ...more] = positionals;
  if (dir === undefined || more.length > 0)
    throw new InvalidArgumentError("DIR", "one model folder", positionals, {
      hint: "see steadyframe atlas --help",
    });
  const size = intOption("--atlas-size", v["atlas-size"], 2);
  const threads = intOption("--threads", v.threads, 1);
  const r = await exportAtlases(dir, {
    ...(size === undefined ? {} : { resolution: size }),
    ...(threads === undefined ? {} : { threads }),
    signal: io.signal,
  });
  io.stdout.write(
    `${join(dir, "atlas-fg.png")}, ${join(dir, "atlas-bg.png")}: ${r.resolution}x${r.resolution}; ${reconstructionLine(r)}\n`,
  );
  return 0;
}

/** "reconstruction PSNR 27.45 dB (inside the masks 23.42, outside 31.04)" of an export. */
function reconstructionLine(r: AtlasExportInfo): string {
  const split =
    r.psnrInsideMasks === undefined || r.psnrOutsideMasks === undefined
      ? ""
      : ` (inside the masks ${r.psnrInsideMasks.toFixed(2)}, outside ${r.psnrOutsideMasks.toFixed(2)})`;
  return `reconstruction PSNR ${r.psnr.toFixed(2)} dB${split}`;
}

async function edit(args: readonly string[], io: CliIO): Promise<number> {
  const { values: v, positionals } = parseCommandArgs(args, {
    model: { type: "string" },
    controlnet: { type: "string" },
    prompt: { type: "string" },
    "negative-prompt": { type: "string" },
    layer: { type: "string" },
    strength: { type: "string" },
    steps: { type: "string" },
    guidance: { type: "string" },
    seed: { type: "string" },
    size: { type: "string" },
    canny: { type: "string" },
    "control-scale": { type: "string" },
    scheduler: { type: "string" },
    device: { type: "string" },
    threads: { type: "string" },
    "cache-dir": { type: "string" },
    out: { type: "string" },
  });
  const [dir, ...more] = positionals;
  if (dir === undefined || more.length > 0)
    throw new InvalidArgumentError("DIR", "one model folder", positionals, {
      hint: "see steadyframe atlas --help",
    });
  if (v.model === undefined)
    throw new InvalidArgumentError("--model", "a diffusers Stable Diffusion folder", undefined);
  if (v.prompt === undefined || v.prompt.trim() === "")
    throw new InvalidArgumentError("--prompt", "the prompt text", v.prompt);
  if (v.out === undefined || !v.out.toLowerCase().endsWith(".png"))
    throw new InvalidArgumentError("--out", "a .png file path (the edited atlas)", v.out);
  const layer = atlasLayer(v.layer);
  const strength = rangeOption("--strength", v.strength, 0, 1);
  const guidance = rangeOption("--guidance", v.guidance, 0, Number.MAX_VALUE);
  const controlScale = rangeOption("--control-scale", v["control-scale"], 0, Number.MAX_VALUE);
  const steps = intOption("--steps", v.steps, 1);
  const size = intOption("--size", v.size, 8);
  const threads = intOption("--threads", v.threads, 1);
  const seed = parseSeed(v.seed);
  const canny = v.canny === undefined ? undefined : parseCanny(v.canny);
  if (v.controlnet === undefined)
    for (const flag of ["canny", "control-scale"] as const)
      if (v[flag] !== undefined)
        throw new InvalidArgumentError(`--${flag}`, "--controlnet to go with it", v[flag]);
  const executionProviders = deviceOption(v.device);
  await requireFittedAtlas(dir);
  await checkOutputPath("--out", v.out, "file");
  const warn = (message: string): void => void io.stderr.write(`warning: ${message}\n`);
  const result = await editAtlasWithPipeline(dir, v.out, {
    model: v.model,
    prompt: v.prompt,
    layer,
    seed,
    executionProviders,
    ...(v.controlnet === undefined ? {} : { controlnet: v.controlnet }),
    ...(v["negative-prompt"] === undefined ? {} : { negativePrompt: v["negative-prompt"] }),
    ...(strength === undefined ? {} : { strength }),
    ...(guidance === undefined ? {} : { guidance }),
    ...(controlScale === undefined ? {} : { controlScale }),
    ...(steps === undefined ? {} : { steps }),
    ...(size === undefined ? {} : { size }),
    ...(canny === undefined ? {} : { canny }),
    ...(v.scheduler === undefined ? {} : { scheduler: v.scheduler }),
    ...(threads === undefined ? {} : { threads }),
    ...(v["cache-dir"] === undefined ? {} : { cacheDir: v["cache-dir"] }),
    onWarning: warn,
    onProgress: progressBar(io.stderr, io.interactive),
    signal: io.signal,
  });
  if (result.exported) io.stderr.write(`exported the atlases of ${dir} first\n`);
  const flag = layer === "background" ? "--atlas" : "--atlas-fg";
  io.stdout.write(
    `${result.path}: ${layer} atlas ${result.resolution}x${result.resolution} edited at ${result.size}x${result.size} ` +
      `(mean change ${result.meanChange.toFixed(1)} levels); render it: steadyframe atlas render ${dir} ${flag} ${result.path} --out edited.mp4\n`,
  );
  return 0;
}

/** A number option within [min, max]. */
function rangeOption(name: string, text: string | undefined, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || n < min || n > max)
    throw new InvalidArgumentError(
      name,
      max === Number.MAX_VALUE ? `a number >= ${min}` : `a number from ${min} to ${max}`,
      text,
    );
  return n;
}

async function render(args: readonly string[], io: CliIO): Promise<number> {
  const { values: v, positionals } = parseCommandArgs(args, {
    atlas: { type: "string" },
    "atlas-fg": { type: "string" },
    out: { type: "string" },
    fps: { type: "string" },
    threads: { type: "string" },
  });
  const [dir, ...more] = positionals;
  if (dir === undefined || more.length > 0)
    throw new InvalidArgumentError("DIR", "one model folder", positionals, {
      hint: "see steadyframe atlas --help",
    });
  if (v.out === undefined) throw new InvalidArgumentError("--out", "a video file or folder", undefined);
  await checkOutputPath("--out", v.out, extname(v.out) === "" ? "folder" : "file");
  const fps = intOption("--fps", v.fps, 1);
  const threads = intOption("--threads", v.threads, 1);
  const written = await renderAtlasVideo(dir, v.out, {
    ...(v.atlas === undefined ? {} : { background: v.atlas }),
    ...(v["atlas-fg"] === undefined ? {} : { foreground: v["atlas-fg"] }),
    ...(fps === undefined ? {} : { fps }),
    ...(threads === undefined ? {} : { threads }),
    signal: io.signal,
    onProgress: progressBar(io.stderr, io.interactive),
  });
  io.stdout.write(`${written.path}: ${written.frames} frames ${written.width}x${written.height}\n`);
  return 0;
}

export const atlasCommand: CliCommand = {
  name: "atlas",
  summary:
    "Neural Layered Atlases: fit a clip, export the atlases, edit one (by hand or with a prompt), render",
  usage: USAGE,
  async run(args, io) {
    const [sub, ...rest] = args;
    if (sub === "fit") return fit(rest, io);
    if (sub === "export") return exportCommand(rest, io);
    if (sub === "edit") return edit(rest, io);
    if (sub === "render") return render(rest, io);
    throw new InvalidArgumentError("atlas subcommand", "fit, export, edit or render", sub, {
      hint: "see steadyframe atlas --help",
    });
  },
};
