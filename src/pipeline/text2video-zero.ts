/**
 * Text2Video-Zero (Khachatryan et al. 2023, "Text2Video-Zero: Text-to-Image Diffusion Models are
 * Zero-Shot Video Generators"): the algorithm of diffusers 0.26.3 `TextToVideoZeroPipeline`
 * (src/diffusers/pipelines/text_to_video_synthesis/pipeline_text_to_video_zero.py), as numbered steps
 * over the component interfaces in ./types.ts.
 *
 * Frame 0 is denoised alone down to t1 and further to t0; its t0 latent is copied to every other frame,
 * translated by a global motion field (`warpLatentsByMotionField`) and noised back from t0 to t1 with
 * the DDPM forward process (`ddpmForward`); then all frames are denoised from t1 with cross-frame
 * attention, frame 0 restarting from its own t1 latent. The UNet must attend across frames the way
 * diffusers' `CrossFrameAttnProcessor(batch_size=2)` does:
 * `UNet2DConditionModel.load(dir, { crossFrame: { batchSize: 2, mode: "first" } })`.
 *
 * The motion-field warp and the DDPM forward step are exported on their own for the video engine.
 */
import { InvalidArgumentError, UnsupportedError, throwIfAborted } from "../errors.js";
import type { LongTaskOptions } from "../progress.js";
import { TorchGenerator } from "../random/torch-generator.js";
import { fromConfig } from "../schedulers/registry.js";
import type { NoiseGenerator, Scheduler, SchedulerClassName } from "../schedulers/scheduler.js";
import { SchedulerBase } from "../schedulers/scheduler-base.js";
import { shapeToString, tensor, type HostTensor } from "../tensor.js";
import { type ResumableDenoising, replayedPrediction } from "./animatediff.js";
import { chunkBatch, classifierFreeGuidance, concatBatch, scale } from "./guidance.js";
import { denormalize, toChannelsLast } from "./images.js";
import type { DenoisingUNet, LatentDecoder, PromptTokenizer, TextEncoder } from "./types.js";

const f32 = Math.fround;

// ---------------------------------------------------------------------------------------------
// Motion-field warp (diffusers `create_motion_field_and_warp_latents`)
// ---------------------------------------------------------------------------------------------

export interface MotionField {
  /** motion_field_strength_x: pixels of the flow grid per frame id (positive moves content to -x). */
  readonly strengthX: number;
  /** motion_field_strength_y: pixels of the flow grid per frame id (positive moves content to -y). */
  readonly strengthY: number;
  /**
   * (optional, default 512) side of the square grid the translation flow lives on. diffusers hard-codes
   * 512 whatever the latent size, so one unit of strength is `latentSize / 512` latent pixels.
   */
  readonly flowSize?: number;
}

/** torch `area_pixel_compute_source_index` + bilinear weights for one axis (align_corners=False). */
function linearTaps(outIndex: number, inSize: number, outSize: number): [number, number, number, number] {
  const scaleRatio = f32(inSize / outSize);
  const src = Math.max(f32(f32(scaleRatio * f32(outIndex + 0.5)) - 0.5), 0);
  const i0 = Math.floor(src);
  const i1 = i0 + (i0 < inSize - 1 ? 1 : 0);
  const l1 = Math.min(Math.max(f32(src - i0), 0), 1);
  return [i0, i1, f32(1 - l1), l1];
}

/**
 * The sampling grid of the motion-field translation, [n, height, width, 2] with (x, y) in [-1, 1]
 * as `grid_sample` takes it: on the flowSize x flowSize grid, coords = pixel + strength * frameId,
 * normalised by flowSize (not flowSize - 1), mapped to [-1, 1], then resized to height x width with
 * bilinear interpolation (align_corners=False). One grid per entry of `frameIds`.
 */
export function motionFieldGrid(
  frameIds: readonly number[],
  height: number,
  width: number,
  field: MotionField,
): HostTensor<"float32"> {
  const size = field.flowSize ?? 512;
  for (const [name, v] of [
    ["height", height],
    ["width", width],
    ["flowSize", size],
  ] as const) {
    if (!Number.isInteger(v) || v < 1) throw new InvalidArgumentError(name, "a positive integer", v);
  }
  for (const [name, v] of [
    ["strengthX", field.strengthX],
    ["strengthY", field.strengthY],
  ] as const) {
    if (!Number.isFinite(v)) throw new InvalidArgumentError(`motionField.${name}`, "a finite number", v);
  }
  const grid = new Float32Array(frameIds.length * height * width * 2);
  const xTaps = Array.from({ length: width }, (_, j) => linearTaps(j, size, width));
  const yTaps = Array.from({ length: height }, (_, i) => linearTaps(i, size, height));
  for (const [k, id] of frameIds.entries()) {
    if (!Number.isInteger(id)) throw new InvalidArgumentError(`frameIds[${k}]`, "an integer", id);
    // The flow is a float32 tensor: strength * frame id rounded once; coords then normalised in float32.
    const flow = [f32(field.strengthX * id), f32(field.strengthY * id)] as const;
    const coord = (axis: 0 | 1, p: number): number => f32(f32(f32(f32(p + flow[axis]) / size) * 2) - 1);
    for (let i = 0; i < height; i++) {
      const [y0, y1, hy0, hy1] = yTaps[i] ?? [0, 0, 1, 0];
      for (let j = 0; j < width; j++) {
        const [x0, x1, wx0, wx1] = xTaps[j] ?? [0, 0, 1, 0];
        const at = ((k * height + i) * width + j) * 2;
        // Bilinear in both axes; the x channel depends only on the column, the y channel on the row.
        const bilinear = (v00: number, v01: number, v10: number, v11: number): number =>
          f32(
            f32(hy0 * f32(f32(wx0 * v00) + f32(wx1 * v01))) + f32(hy1 * f32(f32(wx0 * v10) + f32(wx1 * v11))),
          );
        grid[at] = bilinear(coord(0, x0), coord(0, x1), coord(0, x0), coord(0, x1));
        grid[at + 1] = bilinear(coord(1, y0), coord(1, y0), coord(1, y1), coord(1, y1));
      }
    }
  }
  return tensor("float32", [frameIds.length, height, width, 2], grid);
}

/** torch `reflect_coordinates(x, -1, 2 * size - 1)` then `clip_coordinates` (align_corners=False). */
function reflectAndClip(x: number, size: number): number {
  const low = -0.5;
  const span = size;
  const d = Math.abs(f32(x - low));
  const extra = f32(d % span);
  const flips = Math.floor(d / span);
  const reflected = flips % 2 === 0 ? f32(extra + low) : f32(f32(span - extra) + low);
  return Math.min(size - 1, Math.max(reflected, 0));
}

/** Round half to even, as C's nearbyint in the default rounding mode. */
function nearbyint(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * `torch.nn.functional.grid_sample(input, grid, mode="nearest", padding_mode="reflection",
 * align_corners=False)`: input [n, C, H, W], grid [n, h, w, 2] (x, y in [-1, 1]) -> [n, C, h, w].
 * Positions are unnormalised as ((g + 1) * size - 1) / 2, reflected about -0.5 and size - 0.5,
 * clipped to [0, size - 1] and rounded half to even.
 */
export function gridSampleNearestReflection(
  input: HostTensor<"float32">,
  grid: HostTensor<"float32">,
): HostTensor<"float32"> {
  const [n = 0, c = 0, inH = 0, inW = 0] = input.shape;
  const [gn = 0, h = 0, w = 0, two = 0] = grid.shape;
  if (input.shape.length !== 4) {
    throw new InvalidArgumentError("input", "a 4-D tensor [n, C, H, W]", shapeToString(input.shape));
  }
  if (grid.shape.length !== 4 || gn !== n || two !== 2) {
    throw new InvalidArgumentError("grid", `shape [${n}, h, w, 2]`, shapeToString(grid.shape));
  }
  const out = new Float32Array(n * c * h * w);
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < h; i++) {
      for (let j = 0; j < w; j++) {
        const at = ((b * h + i) * w + j) * 2;
        const gx = grid.data[at] ?? 0;
        const gy = grid.data[at + 1] ?? 0;
        const ix = reflectAndClip(f32(f32(f32(f32(gx + 1) * inW) - 1) / 2), inW);
        const iy = reflectAndClip(f32(f32(f32(f32(gy + 1) * inH) - 1) / 2), inH);
        const sx = nearbyint(ix);
        const sy = nearbyint(iy);
        for (let ch = 0; ch < c; ch++) {
          out[((b * c + ch) * h + i) * w + j] = input.data[((b * c + ch) * inH + sy) * inW + sx] ?? 0;
        }
      }
    }
  }
  return tensor("float32", [n, c, h, w], out);
}

export interface WarpedLatents {
  /** [n, C, h, w]: latent k translated by the motion of frame `frameIds[k]`. */
  readonly warped: HostTensor<"float32">;
  /** [n, h, w, 2]: the grid each latent was sampled with. */
  readonly grid: HostTensor<"float32">;
}

/**
 * Translates each latent of [n, C, h, w] by the global motion of its frame id (diffusers
 * `create_motion_field_and_warp_latents`): destination pixel j reads source
 * j + (strength * frameId - 0.5) * size / flowSize, nearest sample, reflection at the borders.
 * A zero field (or frame id 0) is the identity.
 */
export function warpLatentsByMotionField(
  latents: HostTensor<"float32">,
  frameIds: readonly number[],
  field: MotionField,
): WarpedLatents {
  const [n = 0, , h = 0, w = 0] = latents.shape;
  if (latents.shape.length !== 4) {
    throw new InvalidArgumentError("latents", "a 4-D tensor [n, C, h, w]", shapeToString(latents.shape));
  }
  if (frameIds.length !== n) {
    throw new InvalidArgumentError("frameIds", `${n} frame ids (one per latent)`, frameIds.length);
  }
  const grid = motionFieldGrid(frameIds, h, w, field);
  return { warped: gridSampleNearestReflection(latents, grid), grid };
}

// ---------------------------------------------------------------------------------------------
// DDPM forward from t0 to t1 (diffusers `TextToVideoZeroPipeline.forward_loop`)
// ---------------------------------------------------------------------------------------------

export interface DdpmForwardCoefficients {
  /** prod(alphas[t0 : t1]) in float32 (diffusers `alpha_vec`). */
  readonly alphaVec: number;
  /** sqrt(alphaVec) (float32). */
  readonly sampleScale: number;
  /** sqrt(1 - alphaVec) (float32). */
  readonly noiseScale: number;
}

/**
 * The coefficients of the DDPM forward process from timestep value `t0` to `t1` > t0:
 * alpha_vec = prod(alphas[t0 : t1]) with alphas = 1 - betas — the slice starts AT t0 and stops before
 * t1, as diffusers computes it (the textbook alpha_bar[t1] / alpha_bar[t0] = prod(alphas[t0+1 : t1+1])
 * differs). The product is taken exactly and rounded once to float32.
 */
export function ddpmForwardCoefficients(
  betas: ArrayLike<number>,
  t0: number,
  t1: number,
): DdpmForwardCoefficients {
  if (!Number.isInteger(t0) || !Number.isInteger(t1) || t0 < 0 || t1 <= t0 || t1 > betas.length) {
    throw new InvalidArgumentError("t0, t1", `integer timesteps with 0 <= t0 < t1 <= ${betas.length}`, [
      t0,
      t1,
    ]);
  }
  let product = 1;
  for (let s = t0; s < t1; s++) product *= f32(1 - (betas[s] ?? 0));
  const alphaVec = f32(product);
  return {
    alphaVec,
    sampleScale: f32(Math.sqrt(alphaVec)),
    noiseScale: f32(Math.sqrt(f32(1 - alphaVec))),
  };
}

/** x_t1 = sqrt(alpha_vec) * x_t0 + sqrt(1 - alpha_vec) * noise, elementwise in float32. */
export function ddpmForward(
  xT0: HostTensor<"float32">,
  noise: HostTensor<"float32">,
  coefficients: DdpmForwardCoefficients,
): HostTensor<"float32"> {
  if (shapeToString(xT0.shape) !== shapeToString(noise.shape)) {
    throw new InvalidArgumentError("noise", `shape ${shapeToString(xT0.shape)}`, shapeToString(noise.shape));
  }
  const { sampleScale: a, noiseScale: b } = coefficients;
  const out = new Float32Array(xT0.data.length);
  for (let i = 0; i < out.length; i++) {
    out[i] = f32(f32(a * (xT0.data[i] ?? 0)) + f32(b * (noise.data[i] ?? 0)));
  }
  return tensor("float32", xT0.shape, out);
}

// ---------------------------------------------------------------------------------------------
// The pipeline
// ---------------------------------------------------------------------------------------------

/**
 * Schedulers whose `step` keeps no state between calls: pass 3 restarts the sampler at t1, which
 * diffusers does with a deep copy of the scheduler taken after pass 1; for these the copy equals the
 * scheduler itself.
 */
const STATELESS_SCHEDULERS: readonly SchedulerClassName[] = ["DDIMScheduler", "DDPMScheduler"];

/**
 * Schedulers diffusers' pipeline cannot run: their timesteps are fractional float values, and
 * `forward_loop` slices `alphas[t0:t1]` by timestep value (a TypeError in torch); the inverse DDIM
 * scheduler runs time backwards.
 */
export const T2V_ZERO_REFUSED_SCHEDULERS: readonly SchedulerClassName[] = [
  "EulerDiscreteScheduler",
  "EulerAncestralDiscreteScheduler",
  "LMSDiscreteScheduler",
  "DDIMInverseScheduler",
];

/** Noise that is never used: the twin of a stochastic scheduler only needs its state, not its sample. */
const NO_NOISE: NoiseGenerator = { randn: (shape) => tensor("float32", shape) };

/**
 * The scheduler pass 3 uses, as diffusers' `copy.deepcopy(self.scheduler)` after pass 1: `undefined`
 * for the stateless ones (the copy is the scheduler), else a fresh scheduler of the same class and
 * config that is stepped through pass 1 beside the real one (`step` state depends on the model
 * outputs, timesteps and samples, never on the step noise). Its history is one frame's, which torch
 * broadcasts against the F frames of pass 3: every frame's multistep update reads frame 0's pass-1
 * outputs, so the twin is stepped on F copies of frame 0.
 */
function restartScheduler(scheduler: Scheduler): Scheduler | undefined {
  if (STATELESS_SCHEDULERS.includes(scheduler.className)) return undefined;
  if (scheduler instanceof SchedulerBase) return fromConfig(scheduler.className, scheduler.config);
  throw new UnsupportedError(`Text2Video-Zero with a ${scheduler.className} not built by fromConfig`, {
    hint: "the last pass restarts the sampler at t1 with the state it had after the first pass; build the scheduler with fromConfig (schedulers/registry.ts) so that a twin can be made",
  });
}

export interface TextToVideoZeroComponents {
  /**
   * The UNet with cross-frame attention as diffusers' `CrossFrameAttnProcessor(batch_size=2)`:
   * `UNet2DConditionModel.load(dir, { crossFrame: { batchSize: 2, mode: "first" } })`.
   */
  readonly unet: DenoisingUNet;
  readonly vae: LatentDecoder;
  /**
   * A fresh scheduler for this run (not Euler, Euler ancestral or LMS: see
   * `T2V_ZERO_REFUSED_SCHEDULERS`). One with per-step state must come from `fromConfig`: pass 3 runs
   * on a twin that saw only pass 1.
   */
  readonly scheduler: Scheduler;
  /** 2 ** (len(vae block_out_channels) - 1): 8 for SD. */
  readonly vaeScaleFactor: number;
  /** UNet in_channels (4 for SD). */
  readonly latentChannels: number;
  /** (optional) needed only when the prompt is given as text. */
  readonly tokenizer?: PromptTokenizer;
  /** (optional) needed only when the prompt is given as text. */
  readonly textEncoder?: TextEncoder;
}

/** `onStep` / `replay` count the steps of the three passes together (pass 1, pass 2, pass 3). */
export interface TextToVideoZeroOptions extends LongTaskOptions, ResumableDenoising {
  /** (optional) the prompt as text (needs the tokenizer and text encoder); or give promptEmbeds. */
  readonly prompt?: string;
  /** (optional, default "") the negative prompt as text. */
  readonly negativePrompt?: string;
  /** (optional) [1, L, D] conditional text embeddings (win over `prompt`). */
  readonly promptEmbeds?: HostTensor<"float32">;
  /** (optional) [1, L, D] unconditional text embeddings; required with promptEmbeds. */
  readonly negativePromptEmbeds?: HostTensor<"float32">;
  /** (optional, default 8) number of frames. */
  readonly videoLength?: number;
  readonly width: number;
  readonly height: number;
  /** (optional, default 50) */
  readonly numInferenceSteps?: number;
  /** (optional, default 7.5) classifier-free guidance scale; must be > 1 (the method needs the CFG batch). */
  readonly guidanceScale?: number;
  /** (optional, default 0) DDIM eta. */
  readonly eta?: number;
  /** (optional) seed for torch-compatible noise (torch.Generator().manual_seed(seed)). */
  readonly seed?: number | bigint;
  /** (optional) a generator for every random draw (wins over seed). */
  readonly generator?: NoiseGenerator;
  /** (optional) frame 0's initial latents [1, C, h, w] before scaling by init_noise_sigma. */
  readonly latents?: HostTensor<"float32">;
  /** (optional, default 12) motion_field_strength_x. */
  readonly motionFieldStrengthX?: number;
  /** (optional, default 12) motion_field_strength_y. */
  readonly motionFieldStrengthY?: number;
  /** (optional, default 44) t0, counted in steps from the END of the timesteps. */
  readonly t0?: number;
  /** (optional, default 47) t1 > t0, counted in steps from the END of the timesteps. */
  readonly t1?: number;
  /** (optional, default 0..videoLength-1) frame indices (chunked generation of long videos). */
  readonly frameIds?: readonly number[];
  /**
   * (optional) receives named intermediates: initial_latents, pass<P>.step<NN>.{timestep,
   * noise_pred_uncond, noise_pred_text, latents_out}, stage.{x_1_t1, x_1_t0, x_2k_t0, x_2k_t1,
   * x_1k_t1, x_1k_0}, warp.grid, forward.alpha_vec, vae_decode.{input, output}, frames ([F, H, W, 3]).
   */
  readonly trace?: (name: string, value: HostTensor) => void;
}

export interface TextToVideoZeroResult {
  /** [F, 3, H, W] in [0, 1]. */
  readonly frames: HostTensor<"float32">;
  /** [F, C, h, w] final latents. */
  readonly latents: HostTensor<"float32">;
}

interface Resolved {
  readonly frames: number;
  readonly steps: number;
  readonly guidance: number;
  readonly t0: number;
  readonly t1: number;
  readonly frameIds: readonly number[];
  readonly h: number;
  readonly w: number;
}

function checkInputs(c: TextToVideoZeroComponents, o: TextToVideoZeroOptions): Resolved {
  const step = Math.max(8, c.vaeScaleFactor);
  for (const [name, value] of [
    ["width", o.width],
    ["height", o.height],
  ] as const) {
    if (!Number.isInteger(value) || value <= 0 || value % step !== 0) {
      throw new InvalidArgumentError(name, `a positive multiple of ${step}`, value);
    }
  }
  const frames = o.videoLength ?? 8;
  if (!Number.isInteger(frames) || frames < 1)
    throw new InvalidArgumentError("videoLength", "a positive integer", frames);
  const steps = o.numInferenceSteps ?? 50;
  if (!Number.isInteger(steps) || steps < 2)
    throw new InvalidArgumentError("numInferenceSteps", "an integer >= 2", steps);
  const guidance = o.guidanceScale ?? 7.5;
  if (!(guidance > 1)) {
    throw new InvalidArgumentError("guidanceScale", "a number > 1", guidance, {
      hint: "Text2Video-Zero's cross-frame attention expects the [uncond, cond] guidance batch",
    });
  }
  const t0 = o.t0 ?? 44;
  const t1 = o.t1 ?? 47;
  if (!Number.isInteger(t0) || !Number.isInteger(t1) || t0 < 0 || t1 <= t0 || t1 > steps - 1) {
    throw new InvalidArgumentError(
      "t0, t1",
      `integers with 0 <= t0 < t1 <= numInferenceSteps - 1 (${steps - 1})`,
      [t0, t1],
    );
  }
  const frameIds = o.frameIds ?? Array.from({ length: frames }, (_, i) => i);
  if (frameIds.length !== frames) {
    throw new InvalidArgumentError("frameIds", `${frames} frame ids (videoLength)`, frameIds.length);
  }
  if (T2V_ZERO_REFUSED_SCHEDULERS.includes(c.scheduler.className)) {
    throw new UnsupportedError(`Text2Video-Zero with ${c.scheduler.className}`, {
      hint: "use a scheduler with integer timesteps (DDIM, DDPM, PNDM, DPM-Solver multistep, UniPC, LCM): the DDPM forward step between the passes takes the product of alphas between two timestep values, which diffusers cannot do for fractional timesteps",
    });
  }
  const h = o.height / c.vaeScaleFactor;
  const w = o.width / c.vaeScaleFactor;
  if (o.latents && o.latents.shape.join() !== [1, c.latentChannels, h, w].join()) {
    throw new InvalidArgumentError(
      "latents",
      `shape ${shapeToString([1, c.latentChannels, h, w])} (frame 0 only)`,
      shapeToString(o.latents.shape),
    );
  }
  return { frames, steps, guidance, t0, t1, frameIds, h, w };
}

/** [uncond, cond] embeddings, [2, L, D]. */
async function promptEmbeddings(
  c: TextToVideoZeroComponents,
  o: TextToVideoZeroOptions,
): Promise<HostTensor<"float32">> {
  if (o.promptEmbeds !== undefined) {
    const negative = o.negativePromptEmbeds;
    if (negative === undefined) {
      throw new InvalidArgumentError("negativePromptEmbeds", "a tensor like promptEmbeds", undefined, {
        hint: "guidance needs the unconditional embeddings too",
      });
    }
    for (const [name, t] of [
      ["promptEmbeds", o.promptEmbeds],
      ["negativePromptEmbeds", negative],
    ] as const) {
      if (t.shape.length !== 3 || t.shape[0] !== 1)
        throw new InvalidArgumentError(name, "shape [1, L, D]", shapeToString(t.shape));
    }
    if (o.promptEmbeds.shape.join() !== negative.shape.join()) {
      throw new InvalidArgumentError(
        "negativePromptEmbeds",
        `shape ${shapeToString(o.promptEmbeds.shape)} (as promptEmbeds)`,
        shapeToString(negative.shape),
      );
    }
    return concatBatch([negative, o.promptEmbeds]);
  }
  if (o.prompt === undefined) throw new InvalidArgumentError("prompt", "a prompt or promptEmbeds", undefined);
  if (c.tokenizer === undefined || c.textEncoder === undefined) {
    throw new InvalidArgumentError(
      "components.tokenizer/textEncoder",
      "a tokenizer and a text encoder",
      undefined,
      {
        hint: "pass them with the components, or give promptEmbeds and negativePromptEmbeds",
      },
    );
  }
  return c.textEncoder.encode(c.tokenizer.tokenize([o.negativePrompt ?? "", o.prompt]));
}

/** [1, ...] -> [n, ...]: n copies of the one frame (torch's broadcast of a batch of 1, made explicit). */
function repeatFrames(t: HostTensor<"float32">, n: number): HostTensor<"float32"> {
  return n === 1 ? t : concatBatch(Array<HostTensor<"float32">>(n).fill(t));
}

/** [2, L, D] -> [2F, L, D] laid out [uncond x F, cond x F] (prompt_embeds[:, None].repeat(1, F, 1, 1)). */
function repeatPerFrame(embeds: HostTensor<"float32">, frames: number): HostTensor<"float32"> {
  const [uncond, cond] = chunkBatch(embeds, 2) as [HostTensor<"float32">, HostTensor<"float32">];
  return concatBatch([
    ...Array<HostTensor<"float32">>(frames).fill(uncond),
    ...Array<HostTensor<"float32">>(frames).fill(cond),
  ]);
}

export async function textToVideoZero(
  c: TextToVideoZeroComponents,
  o: TextToVideoZeroOptions,
): Promise<TextToVideoZeroResult> {
  const task = "text2video-zero denoising";
  const trace = o.trace ?? (() => undefined);
  // 1. Check inputs
  const r = checkInputs(c, o);
  const generator = o.generator ?? new TorchGenerator(o.seed ?? 0);
  const field: MotionField = {
    strengthX: o.motionFieldStrengthX ?? 12,
    strengthY: o.motionFieldStrengthY ?? 12,
  };

  // 2. Prompt embeddings: [uncond, cond]
  const embeds = await promptEmbeddings(c, o);

  // 3. Timesteps and the three passes (t0/t1 count from the end of the timesteps)
  c.scheduler.setTimesteps(r.steps);
  const twin = restartScheduler(c.scheduler);
  twin?.setTimesteps(r.steps);
  const timesteps = c.scheduler.timesteps;
  const n = timesteps.length;
  const pass1 = timesteps.slice(0, n - r.t1 - 1);
  const pass2 = timesteps.slice(n - r.t1 - 1, n - r.t0 - 1);
  const pass3 = timesteps.slice(n - r.t1 - 1);
  const total = pass1.length + pass2.length + pass3.length;
  let done = 0;

  // 4. Initial latents: one frame only
  const latents = scale(
    o.latents ?? generator.randn([1, c.latentChannels, r.h, r.w]),
    c.scheduler.initNoiseSigma,
  );
  trace("initial_latents", latents);

  /**
   * diffusers `backward_loop`: CFG denoising over `ts` with `scheduler`, the batch of frames laid out
   * as `emb` says; `shadow` (pass 1) takes every step too, without noise.
   */
  const backward = async (
    pass: string,
    ts: readonly number[],
    x: HostTensor<"float32">,
    emb: HostTensor<"float32">,
    scheduler: Scheduler,
    shadow?: Scheduler,
  ): Promise<HostTensor<"float32">> => {
    let current = x;
    for (const [i, t] of ts.entries()) {
      throwIfAborted(o.signal, task);
      const tag = `${pass}.step${String(i).padStart(2, "0")}`;
      trace(`${tag}.timestep`, tensor("int64", [], new BigInt64Array([BigInt(Math.round(t))])));
      let guided = replayedPrediction(o, done, current);
      if (guided === undefined) {
        const input = scheduler.scaleModelInput(concatBatch([current, current]), t);
        const batch = input.shape[0] ?? 1;
        const noise = await c.unet.forward({
          sample: input,
          timestep: tensor("float32", [batch], new Float32Array(batch).fill(t)),
          encoderHiddenStates: emb,
        });
        const [uncond, cond] = chunkBatch(noise, 2) as [HostTensor<"float32">, HostTensor<"float32">];
        trace(`${tag}.noise_pred_uncond`, uncond);
        trace(`${tag}.noise_pred_text`, cond);
        guided = classifierFreeGuidance(uncond, cond, r.guidance);
      }
      const eta = o.eta === undefined ? {} : { eta: o.eta };
      // torch broadcasts the twin's one-frame history against pass 3's F frames: keep it as F copies
      if (shadow)
        shadow.step(repeatFrames(guided, r.frames), t, repeatFrames(current, r.frames), {
          generator: NO_NOISE,
          ...eta,
        });
      current = scheduler.step(guided, t, current, { generator, ...eta }).prevSample;
      trace(`${tag}.latents_out`, current);
      await o.onStep?.({
        step: done,
        total,
        noisePred: guided,
        latents: current,
        replayed: o.replay?.[done] !== undefined,
      });
      done += 1;
      o.onProgress?.({ status: "progress", task, done, total });
    }
    return current;
  };

  o.onProgress?.({ status: "start", task, total });
  // 5. Pass 1: frame 0 from T down to t1
  const x1T1 = await backward("pass1", pass1, latents, embeds, c.scheduler, twin);
  trace("stage.x_1_t1", x1T1);

  // 6. Pass 2: frame 0 from t1 down to t0
  const x1T0 = await backward("pass2", pass2, x1T1, embeds, c.scheduler);
  trace("stage.x_1_t0", x1T0);

  // 7. Frames 1..F-1: frame 0's t0 latent translated by each frame's motion, then noised back to t1.
  // A one-frame video runs it too, on empty tensors, as diffusers does (its empty noise draw leaves
  // the generator as it was).
  const others = r.frames - 1;
  const copies =
    others > 0
      ? concatBatch(Array<HostTensor<"float32">>(others).fill(x1T0))
      : tensor("float32", [0, ...x1T0.shape.slice(1)], new Float32Array(0));
  const { warped, grid } = warpLatentsByMotionField(copies, r.frameIds.slice(1), field);
  trace("warp.grid", grid);
  trace("stage.x_2k_t0", warped);
  const eps = generator.randn(warped.shape);
  const t0Value = timesteps[n - r.t0 - 1] ?? 0;
  const t1Value = timesteps[n - r.t1 - 1] ?? 0;
  const coefficients = ddpmForwardCoefficients(c.scheduler.betas, t0Value, t1Value);
  trace("forward.alpha_vec", tensor("float32", [], new Float32Array([coefficients.alphaVec])));
  const x2kT1 = ddpmForward(warped, eps, coefficients);
  trace("stage.x_2k_t1", x2kT1);
  // Frame 0 restarts from its own t1 latent, not from the t0 one.
  const start = others > 0 ? concatBatch([x1T1, x2kT1]) : x1T1;
  trace("stage.x_1k_t1", start);

  // 8. Pass 3: every frame from t1 to 0 with cross-frame attention (the scheduler as after pass 1)
  const final = await backward("pass3", pass3, start, repeatPerFrame(embeds, r.frames), twin ?? c.scheduler);
  trace("stage.x_1k_0", final);
  o.onProgress?.({ status: "done", task });

  // 9. Decode all frames as one batch
  throwIfAborted(o.signal, task);
  const decoderInput = scale(final, 1 / c.vae.scalingFactor);
  trace("vae_decode.input", decoderInput);
  const raw = await c.vae.decode(decoderInput);
  trace("vae_decode.output", raw);
  const frames = denormalize(raw);
  if (o.trace) trace("frames", toChannelsLast(frames)); // [F, H, W, 3], the layout diffusers returns
  return { frames, latents: final };
}
