/**
 * `steadyframe video [source] --model M --prompt P [...]`: a controlled, temporally consistent video
 * from a source clip (or text only) with the video engine (src/engine/render.ts). Every option is
 * checked before a model loads; frames go to `<out>.steadyframe-partial/` as they finish and the
 * output is published when the last one is done; `--resume` continues a killed render.
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { CancelledError, InvalidArgumentError } from "../../errors.js";
import { workFolderFor } from "../../engine/work-folder.js";
import type { RenderInfo } from "../../engine/method.js";
import {
  parseCanny,
  parseCommandArgs,
  deviceOption,
  intOption,
  parseSize,
  resolveSize,
} from "./cli-options.js";
import { parsePromptSchedule, type PromptSchedule } from "../../engine/prompt-schedule.js";
import {
  renderVideo,
  type ControlKind,
  type ControlNetSetting,
  type MotionSettings,
} from "../../engine/render.js";
import { CONTEXT_FUSES, CONTEXT_SCHEDULES } from "../../pipeline/context-windows.js";
import {
  ATTENTION,
  CONTROLS_FROM,
  FUSION,
  NOISE,
  checkChoice,
  type Strategy,
} from "../../engine/strategies.js";
import { probeVideo } from "../../video/probe.js";
import type { CliCommand, CliIO } from "../command.js";
import { checkOutputPath } from "../output-path.js";
import { videoProgress } from "../video-progress.js";
import { parseSeed } from "./image.js";
import { renderMetrics } from "./video-metrics.js";
import { checkLoraLive, loraOption } from "./lora-option.js";
import { embeddingOption } from "./embedding-option.js";
import { parseRedisUrl } from "../../farm/connection.js";
import { renderOnFarm } from "../../farm/coordinator.js";
import type { UniRenderSetting } from "../../engine/uni-render.js";
import { checkConditionName } from "../../control/annotators/index.js";

export const VIDEO_FLAGS = {
  model: { type: "string" },
  config: { type: "string" },
  prompt: { type: "string" },
  "prompt-schedule": { type: "string" },
  "negative-prompt": { type: "string" },
  "prompt-syntax": { type: "string" },
  controlnet: { type: "string", multiple: true },
  "t2i-adapter": { type: "string" },
  "ip-adapter": { type: "string" },
  uni: { type: "string" },
  tuned: { type: "string" },
  "no-invert": { type: "boolean" },
  local: { type: "string" },
  global: { type: "string" },
  "local-strength": { type: "string" },
  "global-strength": { type: "string" },
  hed: { type: "string" },
  mlsd: { type: "string" },
  sketch: { type: "string" },
  openpose: { type: "string" },
  seg: { type: "string" },
  "ip-image": { type: "string" },
  "ip-scale": { type: "string" },
  "image-encoder": { type: "string" },
  lora: { type: "string", multiple: true },
  "lora-live": { type: "boolean" },
  "tiny-vae": { type: "string" },
  embedding: { type: "string", multiple: true },
  control: { type: "string", multiple: true },
  "control-scale": { type: "string", multiple: true },
  canny: { type: "string" },
  depth: { type: "string" },
  softedge: { type: "string" },
  "controls-from": { type: "string" },
  interpolate: { type: "string" },
  "interpolate-mode": { type: "string" },
  strength: { type: "string" },
  "first-control-image": { type: "string" },
  noise: { type: "string" },
  "noise-ratio": { type: "string" },
  attention: { type: "string" },
  keyframes: { type: "string" },
  fusion: { type: "string" },
  "fusion-strength": { type: "string" },
  "fusion-end": { type: "string" },
  frames: { type: "string" },
  size: { type: "string" },
  steps: { type: "string" },
  scheduler: { type: "string" },
  guidance: { type: "string" },
  seed: { type: "string" },
  eta: { type: "string" },
  "clip-skip": { type: "string" },
  batch: { type: "string" },
  "anchor-cache": { type: "string" },
  fps: { type: "string" },
  device: { type: "string" },
  "cache-dir": { type: "string" },
  out: { type: "string" },
  resume: { type: "boolean" },
  json: { type: "boolean" },
  "motion-adapter": { type: "string" },
  context: { type: "string" },
  overlap: { type: "string" },
  "context-schedule": { type: "string" },
  "context-fuse": { type: "string" },
  invert: { type: "boolean" },
  "motion-field": { type: "string" },
  t0: { type: "string" },
  t1: { type: "string" },
} as const;

export const VIDEO_STRATEGY_HELP = `Where control maps come from (--controls-from, default source):
  source            maps of the matching source frame (the study's strategy 1)
  previous-output   maps of the previously generated frame; frame 0 from the source or
                    --first-control-image ("true generation", strategy 2; sequential)
  interpolated      maps blended between source frames, --interpolate N in-between frames per pair
                    (default 1), --interpolate-mode blend (addWeighted, the study's) | flow (strategy 3)
  content-flow      no ControlNet: the previous output warped by the source's optical flow starts
                    the next frame as img2img at --strength (default 0.6) (strategy 4; sequential)
Initial noise (--noise, default shared):
  per-frame         seed + i for frame i (the study's)      fixed   the same seed for every frame
  shared            one latent for all frames               mixed   shared + per-frame residual,
                                                                    --noise-ratio r (default 0.2)
  flow-warped       the previous frame's noise moved along the source's optical flow
Self-attention (--attention, default first):
  per-frame         none across frames                      first   keys/values of frame 0 (Text2Video-Zero)
  first+previous    frames 0 and i-1 (Tune-A-Video)         keyframes  --keyframes K frames spread over
                                                                    the video, denoised first (bounded memory)
Fusion (--fusion, default none):
  flow              blend latents with the previous frame's, warped by the source's flow, where it is
                    consistent, during the first --fusion-end (default 0.5) of the steps at
                    --fusion-strength (default 0.8) (Rerender-style; sequential)
  atlas             fit a small layered atlas (NLA) to the frames generated so far with the source's
                    flows; each later frame starts from its atlas rendering as img2img at --strength
                    (default 0.6) (needs a source and --attention per-frame; sequential)
`;

const USAGE = `Usage: steadyframe video [SOURCE] --model DIR|FILE --prompt TEXT --out FILE.mp4|DIR [options]

Generates a video whose frames follow the control maps of SOURCE (a video file or a PNG folder), or
from text alone when no SOURCE is given (then --frames is required). Frames are written to
<out>.steadyframe-partial/ as they finish; the output (a video file, or a folder of PNGs) appears with
run.json (every setting, seeds, versions, per-frame timings) and metrics.json when all are done.

Model:
  --model DIR|FILE          diffusers folder, or a single .safetensors/.ckpt file (then --config)
  --config DIR              diffusers folder with the configs of a single-file checkpoint
  --lora FILE[:SCALE]       a LoRA (kohya/A1111, diffusers or PEFT .safetensors) fused into the UNet
                            and text encoder at SCALE (default 1; repeatable, the LoRAs add up)
  --lora-live               keep the LoRAs unfused with live scales (one compiled model for every scale)
  --tiny-vae DIR|FILE       decode (and encode img2img starts) with a Tiny AutoEncoder (TAESD: a diffusers
                            AutoencoderTiny folder or taesd_decoder/_encoder files): much faster, less detail
  --embedding FILE[:TOKEN]  a textual-inversion embedding (A1111 .pt/.safetensors, diffusers
                            learned_embeds); TOKEN (default: the file's token or name) calls it (repeatable)
  --controlnet DIR|FILE     a ControlNet (repeat for several); each reads the map named by --control
  --control canny|depth|softedge   the map of each --controlnet (default canny)
  --control-scale S         conditioning scale per --controlnet (default 1)
  --t2i-adapter DIR         a T2I-Adapter (diffusers T2IAdapter folder), a cheaper control: it takes
                            the --control and --control-scale positions after the ControlNets'
                            (map default canny; scale = adapter_conditioning_scale, default 1)
  --ip-adapter FILE         an IP-Adapter (ip-adapter_sd15 / ip-adapter-plus_sd15 .safetensors or .bin)
  --ip-image IMG|first-output   its reference: an image, or (default) frame 0's own output for every
                            later batch (identity lock: frame 0 is made without a reference)
  --ip-scale S              IP-Adapter scale (default 1); --image-encoder DIR its CLIP image encoder
                            (default image_encoder/ beside the file)
  --tuned DIR               Tune-A-Video: the folder of steadyframe tune; generates the whole clip from
                            the DDIM inversion of SOURCE (default: the clip it was tuned on) with the
                            edited --prompt (defaults --steps 50, --guidance 12.5; --no-invert starts
                            from seeded noise; --model defaults to DIR)
  --uni FILE                Uni-ControlNet (uni.ckpt or a .safetensors copy) instead of --controlnet; --model
                            is the SD-1.5 folder (text encoder, VAE, tokenizer, scheduler)
  --local NAMES             with --uni: the local conditions computed from each frame (comma-separated:
                            canny, mlsd, hed, sketch, openpose, depth, seg); the controls method says
                            which frames they come from (source, previous output, interpolated)
  --global IMG|previous     with --uni: the content image, or each frame the previous frame's output
                            (with --controls-from content-flow: the study's strategy 4); needs
                            --image-encoder DIR (CLIP ViT-L/14, CLIPVisionModelWithProjection)
  --local-strength S        --global-strength S: Uni-ControlNet's strengths (default 1)
  --hed FILE --mlsd FILE --sketch FILE --openpose FILE --seg FILE.onnx
                            annotator weights for --local (ControlNetHED.pth or network-bsds500.pth,
                            mlsd_large_512_fp32.pth, model_gan.pth, body_pose_model.pth, an ADE20k ONNX
                            model); depth uses --depth MODEL.onnx
  --canny LOW,HIGH          Canny thresholds (default 100,200)
  --depth MODEL.onnx        depth model for --control depth; --softedge MODEL.onnx for softedge
Prompt:
  --prompt TEXT             the prompt (or --prompt-schedule)
  --prompt-schedule S       prompt travel: '{"0": "a car in summer", "24": "a car in winter"}' or
                            '0:a car in summer|24:a car in winter' (embeddings interpolated between keys)
  --negative-prompt TEXT    (default "")
  --prompt-syntax S         plain (default: diffusers, 77 tokens) or a1111: (word:1.3), (word) = x1.1,
                            [word] = /1.1, BREAK, any length in 75-token chunks (README: exact rules)
Strategy:
${VIDEO_STRATEGY_HELP.replace(/^/gm, "  ")}
Motion (whole-video pipelines instead of the strategies above):
  --motion-adapter DIR|FILE AnimateDiff: a MotionAdapter folder (or an original mm_sd_*.ckpt) on the
                            model's UNet (a diffusers folder); every frame of a window in one UNet call.
                            With SOURCE: video-to-video at --strength (default 0.6; 1 starts from
                            noise), --controlnet maps from the source frames, or --invert
  --context N               frames per context window (default 16, at most the adapter's length)
  --overlap N               frames shared by neighbouring windows (default 4, below --context)
  --context-schedule uniform|sliding|static   window placement (default uniform: looped, shifted
                            every step; sliding: not looped; static: the same windows every step)
  --context-fuse flat|pyramid   weights of overlapping windows (default pyramid)
  --invert                  start from the DDIM inversion of SOURCE (needs a DDIM scheduler)
  --motion-field X,Y        Text2Video-Zero text-to-video: frame 0's latent moved X,Y pixels (512 grid)
                            per frame, cross-frame attention to frame 0; no SOURCE or ControlNet
  --t0 N --t1 N             Text2Video-Zero's t0 < t1, in steps from the end (default 44/50, 47/50 of
                            --steps); not with euler, euler_ancestral or lms (fractional timesteps)
  Their scheduler is the model folder's (class and config) unless --scheduler names another class;
  AnimateDiff was trained with DDIM on linear betas: use a folder whose scheduler config has them.
Sampling:
  --frames N                frames to generate (default: all the source gives)
  --size N|WxH              N = short side, aspect kept (default 512); WxH exact (multiples of 8)
  --steps N                 denoising steps (default 20)
  --scheduler NAME          ddim, euler, euler_ancestral, dpmpp_2m, dpmpp_2m_karras, unipc, pndm, lms,
                            ddpm, lcm (default: the model's)
  --guidance G              classifier-free guidance (default 7.5; <= 1 disables it)
  --seed N                  any 64-bit integer (default 0); frame seeds are in run.json
  --eta E                   DDIM eta (default 0)
  --clip-skip N             CLIP layers to skip (default 0)
  --batch N                 new frames per UNet call (default 1; sequential strategies use 1)
  --anchor-cache MIB        memory for the anchor frames' attention keys/values, so later batches
                            do not denoise frame 0 / the key frames again (default min(8192, 40 % of
                            RAM); 0: off; a budget too small falls back to denoising them again).
                            first+previous keeps the previous frame's in the work folder in any case
                            (keyvalues/, deleted when read), and in this memory while it has room
Output:
  --out FILE.mp4|DIR        .mp4/.webm/.gif/.mkv/.mov, or a folder of PNGs
  --fps F                   frame rate of a video output (default: the source's, x (N+1) when interpolated)
  --resume                  continue the unfinished render of --out (same settings), bit-identical
  --device cpu|cuda|webgpu  execution provider (falls back to CPU, saying why)
  --cache-dir DIR           compiled-model cache folder
  --json                    print the result as JSON on stdout
Render farm (see 'steadyframe worker --help'):
  --queue redis://HOST:PORT enqueue the frames as segment jobs for 'steadyframe worker's instead of
                            rendering here, show their progress, publish when all are done (the same
                            output, bit for bit). --out and the inputs must be on a filesystem every
                            worker sees at the same paths
  --segment N               frames per segment job (default 8; whole --batch batches)
`;

/** Flags of \`video\` only (not of \`study\`): the render farm. */
const FARM_FLAGS = { queue: { type: "string" }, segment: { type: "string" } } as const;

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

type VideoFlagValues = ReturnType<typeof parseCommandArgs<typeof VIDEO_FLAGS>>["values"];

/** Flags of the per-frame strategies, which the whole-video motion pipelines do not take. */
const STRATEGY_FLAGS = [
  "controls-from",
  "interpolate",
  "interpolate-mode",
  "first-control-image",
  "noise",
  "noise-ratio",
  "attention",
  "keyframes",
  "fusion",
  "fusion-strength",
  "fusion-end",
  "batch",
  "anchor-cache",
  "prompt-schedule",
] as const;

const LOCAL_ALIASES: Readonly<Record<string, string>> = {
  midas: "depth",
  pose: "openpose",
  segmentation: "seg",
  lines: "mlsd",
  softedge: "hed",
};

/** The Uni-ControlNet settings the flags ask for (--uni ...), or undefined; refuses stray Uni flags. */
function uniFromFlags(v: VideoFlagValues): UniRenderSetting | undefined {
  const uniFlags = [
    "local",
    "global",
    "local-strength",
    "global-strength",
    "hed",
    "mlsd",
    "sketch",
    "openpose",
    "seg",
  ] as const;
  if (v.uni === undefined) {
    for (const flag of uniFlags)
      if (v[flag] !== undefined) throw new InvalidArgumentError(`--${flag}`, "--uni to go with it", v[flag]);
    return undefined;
  }
  const local = (v.local ?? "")
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== "")
    .map((s) => checkConditionName(LOCAL_ALIASES[s] ?? s));
  const localStrength = num("--local-strength", v["local-strength"], (n) => n >= 0, "a number >= 0");
  const globalStrength = num("--global-strength", v["global-strength"], (n) => n >= 0, "a number >= 0");
  const annotators = Object.fromEntries(
    (["hed", "mlsd", "sketch", "openpose", "seg"] as const).flatMap((k) =>
      v[k] === undefined ? [] : [[k, v[k]]],
    ),
  ) as UniRenderSetting["annotators"];
  return {
    checkpoint: v.uni,
    local,
    ...(v.global === undefined ? {} : { global: v.global }),
    ...(localStrength === undefined ? {} : { localStrength }),
    ...(globalStrength === undefined ? {} : { globalStrength }),
    ...(v["image-encoder"] === undefined ? {} : { imageEncoder: v["image-encoder"] }),
    ...(annotators && Object.keys(annotators).length > 0 ? { annotators } : {}),
  };
}

/**
 * The motion pipeline the flags ask for (--motion-adapter or --motion-field), or undefined; refuses
 * the combinations that cannot work, naming the flags.
 */
export function motionFromFlags(v: VideoFlagValues, source: string | undefined): MotionSettings | undefined {
  const adapter = v["motion-adapter"];
  const field = v["motion-field"];
  const given = (flag: keyof VideoFlagValues): boolean => v[flag] !== undefined;
  if (adapter !== undefined && field !== undefined)
    throw new InvalidArgumentError("--motion-field", "either --motion-adapter or --motion-field", field);
  const adapterOnly = ["context", "overlap", "context-schedule", "context-fuse", "invert"] as const;
  const fieldOnly = ["t0", "t1"] as const;
  if (adapter === undefined)
    for (const flag of adapterOnly)
      if (given(flag))
        throw new InvalidArgumentError(
          `--${flag}`,
          "--motion-adapter (it sets AnimateDiff's windows / start)",
          v[flag],
        );
  if (field === undefined)
    for (const flag of fieldOnly)
      if (given(flag))
        throw new InvalidArgumentError(`--${flag}`, "--motion-field (Text2Video-Zero)", v[flag]);
  if (adapter === undefined && field === undefined) return undefined;
  const which = adapter !== undefined ? "--motion-adapter" : "--motion-field";
  for (const flag of STRATEGY_FLAGS)
    if (given(flag))
      throw new InvalidArgumentError(`--${flag}`, `no per-frame strategy flag with ${which}`, v[flag], {
        hint: `${which} generates the whole video with a motion pipeline; drop --${flag}, or drop ${which} to use the strategies`,
      });
  const strength = num("--strength", v.strength, (n) => n > 0 && n <= 1, "a number in (0, 1]");
  if (field !== undefined) {
    if (source !== undefined)
      throw new InvalidArgumentError("[SOURCE]", "no source video with --motion-field", source, {
        hint: "Text2Video-Zero is text-to-video: drop the source, or use --motion-adapter for video-to-video",
      });
    if ((v.controlnet ?? []).length > 0)
      throw new InvalidArgumentError(
        "--controlnet",
        "no ControlNet with --motion-field",
        v.controlnet?.join(", "),
        {
          hint: "Text2Video-Zero here is text-only; use --motion-adapter with a source for control maps",
        },
      );
    if (strength !== undefined)
      throw new InvalidArgumentError("--strength", "no --strength with --motion-field", v.strength);
    const parts = field.split(",");
    const [x, y] = parts.map((p) => Number(p));
    if (
      parts.length !== 2 ||
      parts.some((p) => p.trim() === "") ||
      !Number.isFinite(x) ||
      !Number.isFinite(y)
    )
      throw new InvalidArgumentError(
        "--motion-field",
        "X,Y: two numbers (pixels per frame, e.g. 12,12)",
        field,
      );
    const t0 = intOption("--t0", v.t0, 0);
    const t1 = intOption("--t1", v.t1, 1);
    return {
      t2vZero: {
        motionX: x ?? 0,
        motionY: y ?? 0,
        ...(t0 === undefined ? {} : { t0 }),
        ...(t1 === undefined ? {} : { t1 }),
      },
    };
  }
  if (source === undefined && strength !== undefined)
    throw new InvalidArgumentError("--strength", "a source video (AnimateDiff video-to-video)", v.strength, {
      hint: "text-to-video starts from noise: drop --strength, or give a source",
    });
  if (v.invert === true && source === undefined)
    throw new InvalidArgumentError("--invert", "a source video to invert", undefined);
  if (v.invert === true && strength !== undefined)
    throw new InvalidArgumentError("--strength", "no --strength with --invert", v.strength, {
      hint: "--invert starts from the source inverted over the whole schedule",
    });
  const context = intOption("--context", v.context, 1);
  const overlap = intOption("--overlap", v.overlap, 0);
  return {
    adapter: adapter ?? "",
    ...(context === undefined ? {} : { context }),
    ...(overlap === undefined ? {} : { overlap }),
    ...(v["context-schedule"] === undefined
      ? {}
      : { schedule: checkChoice("--context-schedule", v["context-schedule"], CONTEXT_SCHEDULES) }),
    ...(v["context-fuse"] === undefined
      ? {}
      : { fuse: checkChoice("--context-fuse", v["context-fuse"], CONTEXT_FUSES) }),
    ...(strength === undefined ? {} : { strength }),
    ...(v.invert === true ? { invert: true } : {}),
  };
}

/** The strategy the flags describe. */
export function strategyFromFlags(v: VideoFlagValues): Strategy {
  const interpolate = intOption("--interpolate", v.interpolate, 0);
  const strength = num("--strength", v.strength, (n) => n > 0 && n <= 1, "a number in (0, 1]");
  const noiseRatio = num("--noise-ratio", v["noise-ratio"], (n) => n >= 0 && n <= 1, "a number in [0, 1]");
  const keyframes = intOption("--keyframes", v.keyframes, 1);
  const fusionStrength = num(
    "--fusion-strength",
    v["fusion-strength"],
    (n) => n >= 0 && n <= 1,
    "a number in [0, 1]",
  );
  const fusionEnd = num("--fusion-end", v["fusion-end"], (n) => n > 0 && n <= 1, "a number in (0, 1]");
  return {
    controlsFrom: checkChoice("--controls-from", v["controls-from"] ?? "source", CONTROLS_FROM),
    noise: checkChoice("--noise", v.noise ?? "shared", NOISE),
    attention: checkChoice("--attention", v.attention ?? "first", ATTENTION),
    fusion: checkChoice("--fusion", v.fusion ?? "none", FUSION),
    ...(interpolate === undefined ? {} : { interpolate }),
    ...(v["interpolate-mode"] === undefined
      ? {}
      : {
          interpolateMode: checkChoice("--interpolate-mode", v["interpolate-mode"], [
            "blend",
            "flow",
          ] as const),
        }),
    ...(strength === undefined ? {} : { strength }),
    ...(noiseRatio === undefined ? {} : { noiseRatio }),
    ...(keyframes === undefined ? {} : { keyframes }),
    ...(fusionStrength === undefined ? {} : { fusionStrength }),
    ...(fusionEnd === undefined ? {} : { fusionEnd }),
  };
}

/** The shared parts of `video` and `study`: model, prompt, controls, sampling, size. */
export async function commonSettings(v: VideoFlagValues, source: string | undefined) {
  if (v.model === undefined)
    throw new InvalidArgumentError("--model", "a diffusers folder or checkpoint file", undefined);
  if (v.prompt === undefined && v["prompt-schedule"] === undefined)
    throw new InvalidArgumentError("--prompt", "a prompt (or --prompt-schedule)", undefined);
  if (v.prompt !== undefined && v["prompt-schedule"] !== undefined)
    throw new InvalidArgumentError(
      "--prompt-schedule",
      "either --prompt or --prompt-schedule, not both",
      v["prompt-schedule"],
    );
  const promptSyntax = checkChoice("--prompt-syntax", v["prompt-syntax"] ?? "plain", [
    "plain",
    "a1111",
  ] as const);
  const prompt: PromptSchedule =
    v["prompt-schedule"] !== undefined ? parsePromptSchedule(v["prompt-schedule"]) : (v.prompt ?? "");
  const nets = v.controlnet ?? [];
  const adapterDir = v["t2i-adapter"];
  // The controls in order: each ControlNet, then the T2I-Adapter; --control/--control-scale follow it.
  const units = [...nets, ...(adapterDir === undefined ? [] : [adapterDir])];
  const guides = adapterDir === undefined ? "--controlnet" : "--controlnet and --t2i-adapter";
  const kinds = v.control ?? [];
  if (kinds.length > units.length)
    throw new InvalidArgumentError(
      "--control",
      `at most one per ${guides} (${units.length})`,
      kinds.join(", "),
    );
  const scales = v["control-scale"] ?? [];
  if (scales.length > units.length)
    throw new InvalidArgumentError(
      "--control-scale",
      `at most one per ${guides} (${units.length})`,
      scales.join(", "),
    );
  const [controlnets, adapters]: [ControlNetSetting[], ControlNetSetting[]] = [[], []];
  for (const [k, path] of units.entries()) {
    const scale = num("--control-scale", scales[k], (n) => n >= 0, "a number >= 0");
    (k < nets.length ? controlnets : adapters).push({
      path,
      control: checkChoice("--control", kinds[k] ?? "canny", [
        "canny",
        "depth",
        "softedge",
      ] as const) as ControlKind,
      ...(scale === undefined ? {} : { scale }),
    });
  }
  const t2iAdapter = adapters[0];
  const uni = uniFromFlags(v);
  const ipFile = v["ip-adapter"];
  if (ipFile === undefined)
    for (const flag of ["ip-image", "ip-scale", "image-encoder"] as const)
      if (v[flag] !== undefined && !(flag === "image-encoder" && v.uni !== undefined))
        throw new InvalidArgumentError(`--${flag}`, "--ip-adapter (or --uni) to go with it", v[flag]);
  const ipScale = num("--ip-scale", v["ip-scale"], (n) => n >= 0, "a number >= 0");
  const ipAdapter =
    ipFile === undefined
      ? undefined
      : {
          file: ipFile,
          image: v["ip-image"] ?? "first-output",
          ...(v["image-encoder"] === undefined ? {} : { imageEncoder: v["image-encoder"] }),
          ...(ipScale === undefined ? {} : { scale: ipScale }),
        };
  const sizeOption = v.size === undefined ? undefined : parseSize(v.size);
  let size: { width: number; height: number } | undefined;
  if (sizeOption && "width" in sizeOption) size = sizeOption;
  else if (source) {
    const info = await probeVideo(source);
    size = resolveSize(sizeOption ?? { shortSide: 512 }, info.width, info.height);
  } else size = sizeOption ? { width: sizeOption.shortSide, height: sizeOption.shortSide } : undefined;
  if (size && (size.width % 8 !== 0 || size.height % 8 !== 0))
    throw new InvalidArgumentError("--size", "sides that are multiples of 8", `${size.width}x${size.height}`);
  const clipSkip = intOption("--clip-skip", v["clip-skip"], 0);
  const eta = num("--eta", v.eta, (n) => n >= 0, "a number >= 0");
  const frames = intOption("--frames", v.frames, 1);
  const loras = await loraOption(v.lora);
  const liveLoras = checkLoraLive(v["lora-live"], loras);
  const embeddings = await embeddingOption(v.embedding);
  return {
    ...(source === undefined ? {} : { source }),
    model: v.model,
    ...(v.config === undefined ? {} : { config: v.config }),
    ...(loras.length === 0 ? {} : { loras }),
    ...(liveLoras ? { liveLoras } : {}),
    ...(embeddings.length === 0 ? {} : { embeddings }),
    ...(v["tiny-vae"] === undefined ? {} : { tinyVae: v["tiny-vae"] }),
    controlnets,
    ...(t2iAdapter === undefined ? {} : { t2iAdapter }),
    ...(ipAdapter === undefined ? {} : { ipAdapter }),
    ...(uni === undefined ? {} : { uni }),
    ...(v.depth === undefined ? {} : { depthModel: v.depth }),
    ...(v.softedge === undefined ? {} : { softEdgeModel: v.softedge }),
    ...(v.canny === undefined ? {} : { canny: parseCanny(v.canny) }),
    prompt,
    ...(v["negative-prompt"] === undefined ? {} : { negativePrompt: v["negative-prompt"] }),
    ...(promptSyntax === "a1111" ? { promptSyntax } : {}),
    ...(size ?? {}),
    ...(frames === undefined ? {} : { frames }),
    steps: intOption("--steps", v.steps, 1) ?? 20,
    ...(v.scheduler === undefined ? {} : { scheduler: v.scheduler }),
    guidanceScale: num("--guidance", v.guidance, (n) => n >= 0, "a number >= 0") ?? 7.5,
    seed: parseSeed(v.seed),
    ...(eta === undefined ? {} : { eta }),
    ...(clipSkip === undefined ? {} : { clipSkip }),
    batch: intOption("--batch", v.batch, 1) ?? 1,
    ...(v["anchor-cache"] === undefined
      ? {}
      : { anchorCacheMiB: num("--anchor-cache", v["anchor-cache"], (n) => n >= 0, "a number of MiB >= 0") }),
    ...(v["first-control-image"] === undefined ? {} : { firstControlImage: v["first-control-image"] }),
    ...(v.device === undefined ? {} : { device: deviceOption(v.device) }),
    ...(v["cache-dir"] === undefined ? {} : { cacheDir: v["cache-dir"] }),
  };
}

async function run(args: readonly string[], io: CliIO): Promise<number> {
  const { values: v, positionals } = parseCommandArgs(args, { ...VIDEO_FLAGS, ...FARM_FLAGS });
  if (positionals.length > 1)
    throw new InvalidArgumentError("[SOURCE]", "at most one source video", positionals.join(" "));
  const source = positionals[0];
  if (v.out === undefined)
    throw new InvalidArgumentError("--out", "an output video file or folder", undefined);
  if (v.tuned !== undefined) return runTuned(v, source, io);
  if (v["no-invert"] === true) throw new InvalidArgumentError("--no-invert", "--tuned to go with it", true);
  const strategy = strategyFromFlags(v);
  const motion = motionFromFlags(v, source);
  const queue = v.queue === undefined ? undefined : parseRedisUrl("--queue", v.queue);
  const segment = intOption("--segment", v.segment, 1);
  if (segment !== undefined && queue === undefined)
    throw new InvalidArgumentError("--segment", "--queue (frames per farm job)", v.segment);
  const common = await commonSettings(v, source);
  const isVideo = /\.(mp4|m4v|mov|mkv|webm|gif)$/i.test(v.out);
  await checkOutputPath("--out", v.out, isVideo ? "file" : "folder");
  const fps = num("--fps", v.fps, (n) => n > 0, "a frame rate > 0");
  const progress = videoProgress(io.stderr, io.interactive);
  const settings = {
    ...common,
    strategy,
    out: v.out,
    resume: v.resume === true,
    ...(fps === undefined ? {} : { fps }),
    ...(motion === undefined ? {} : { motion }),
  };
  const options = {
    onProgress: progress,
    signal: io.signal,
    metrics: (dir: string, info: RenderInfo) => renderMetrics(dir, info, common),
  };
  const rendered = await (
    queue === undefined
      ? renderVideo(settings, options)
      : renderOnFarm(settings, {
          ...options,
          queue,
          ...(segment === undefined ? {} : { segment }),
          log: (line) => io.stderr.write(`farm: ${line}\n`),
        })
  ).catch(async (error: unknown) => {
    if (error instanceof CancelledError) {
      const kept = await readdir(join(workFolderFor(v.out ?? ""), "frames")).catch(() => [] as string[]);
      if (kept.length > 0)
        io.stderr.write(
          `\nstopped: ${kept.length} finished frame(s) kept in ${workFolderFor(v.out ?? "")}; run the same command with --resume to continue\n`,
        );
    }
    throw error;
  });
  const summary = {
    out: rendered.out,
    frames: rendered.frames,
    generated: rendered.generated,
    size: `${rendered.width}x${rendered.height}`,
    strategy: rendered.strategy,
    runJson: rendered.runJson,
    secondsPerFrame: rendered.secondsPerFrame,
  };
  if (v.json === true) io.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  else
    io.stdout.write(
      `wrote ${rendered.out}: ${rendered.frames} frames ${summary.size} (${rendered.generated} generated now), ${rendered.strategy}\n`,
    );
  return 0;
}

/** `video --tuned DIR`: a Tune-A-Video render (src/engine/tuned-render.ts). */
async function runTuned(
  v: VideoFlagValues & { readonly queue?: string | undefined; readonly segment?: string | undefined },
  source: string | undefined,
  io: CliIO,
): Promise<number> {
  const tuned = v.tuned ?? "";
  for (const flag of [...STRATEGY_FLAGS, "motion-adapter", "motion-field", "queue", "segment"] as const)
    if (v[flag] !== undefined)
      throw new InvalidArgumentError(
        `--${flag}`,
        "no per-frame strategy or motion flag with --tuned",
        v[flag],
        {
          hint: "a Tune-A-Video render generates the whole clip with the tuned model",
        },
      );
  const common = await commonSettings({ ...v, model: v.model ?? tuned }, source);
  const sized = v.size === undefined ? { ...common, width: undefined, height: undefined } : common;
  const { width, height, ...rest } = sized;
  const out = v.out ?? "";
  const isVideo = /\.(mp4|m4v|mov|mkv|webm|gif)$/i.test(out);
  await checkOutputPath("--out", out, isVideo ? "file" : "folder");
  const fps = num("--fps", v.fps, (n) => n > 0, "a frame rate > 0");
  const rendered = await renderVideo(
    {
      ...rest,
      ...(width === undefined || height === undefined ? {} : { width, height }),
      ...(v.steps === undefined ? { steps: 50 } : {}),
      ...(v.guidance === undefined ? { guidanceScale: 12.5 } : {}),
      strategy: strategyFromFlags({}),
      tuned: { dir: tuned, invert: v["no-invert"] !== true },
      out,
      resume: v.resume === true,
      ...(fps === undefined ? {} : { fps }),
    },
    { onProgress: videoProgress(io.stderr, io.interactive), signal: io.signal },
  );
  io.stdout.write(
    `wrote ${rendered.out}: ${rendered.frames} frames ${rendered.width}x${rendered.height} (${rendered.generated} generated now), tune-a-video\n`,
  );
  return 0;
}

export const videoCommand: CliCommand = {
  name: "video",
  summary: "generate a controlled, temporally consistent video (strategies of the founding study and fixes)",
  usage: USAGE,
  run,
};
