/**
 * The one interface behind which every consistency method of the video engine lives. The denoising
 * loop (./generate-video.ts) knows no method by name: it asks the methods it was given, through the
 * hooks below, for
 *
 * - the **initial noise** of a frame (`initialNoise`: per-frame seeds, shared, mixed, flow-warped),
 * - the **start** of a frame (`start`: img2img from a warped previous output, strategy 4),
 * - the **control images** of a frame (`controlImages`: source maps, maps of the previous output,
 *   interpolated maps),
 * - the **attention K/V source** (`crossFrame` + `anchors`: which finished frames are prepended to a
 *   batch so that self-attention can read their keys/values, and how the graphs are built),
 * - a change of the latents **after each step** (`afterStep`: flow-guided fusion, motion warps),
 * - the **reference images** of an IP-Adapter for a batch (`reference`: frame 0's output, an identity
 *   lock),
 * - the **per-frame state** carried to the next frame (`frameDone`, saved with each finished frame
 *   through `saveState`/`loadState` so a resumed render continues bit-identically).
 *
 * A method that needs its predecessor's *output* says `sequential`, and the engine then generates one
 * new frame per batch.
 */
import type { Image } from "../image.js";
import type { CrossFrameSetting } from "../models/unet/build.js";
import type { NoiseGenerator, Scheduler } from "../schedulers/scheduler.js";
import type { HostTensor } from "../tensor.js";
import type { SourcePairFlow } from "./source.js";

/** What every hook may read about the render. */
export interface RenderInfo {
  /** Output frame count. */
  readonly frames: number;
  readonly width: number;
  readonly height: number;
  /** Latent grid: [channels, height / 8, width / 8]. */
  readonly latentShape: readonly [number, number, number];
  readonly seed: bigint;
  readonly numInferenceSteps: number;
}

/** Source-video access for methods that read the input (frames, flows and their consistency). */
export interface SourceAccess {
  /** Source frames available. */
  readonly frames: number;
  /** Source frame `i`, RGB at the output size. */
  frame(i: number): Promise<Image>;
  /** Flows and consistency mask of the source pair (i-1, i). */
  flow(i: number): Promise<SourcePairFlow>;
}

/** Everything a per-frame hook knows about the frame it serves. */
export interface FrameContext {
  readonly index: number;
  readonly info: RenderInfo;
  /** The source video, when the render has one. */
  readonly source?: SourceAccess;
  /** The source frame this output frame shows, or undefined for an in-between frame (interpolation). */
  readonly sourceIndex: number | undefined;
  /** Finished output frames (RGB, output size) by index, for methods that read earlier outputs. */
  output(i: number): Promise<Image>;
  /** The per-frame generator: its draws are the same whatever batch the frame lands in. */
  readonly generator: NoiseGenerator;
}

/**
 * An img2img start: the image is encoded (posterior sample from the frame's generator), noised to the
 * first kept timestep, and the last `strength` part of the schedule runs (diffusers img2img).
 */
export interface FrameStart {
  /** [1, 3, H, W] in [0, 1] at the output size. */
  readonly image: HostTensor<"float32">;
  readonly strength: number;
}

/** What `afterStep` sees: the batch's latents after the scheduler step, slot by slot. */
export interface StepContext {
  readonly stepIndex: number;
  readonly numSteps: number;
  /** Timestep just taken and the scheduler (for alphas, add_noise). */
  readonly t: number;
  readonly scheduler: Scheduler;
  /** Frame index of each slot of the batch. */
  readonly slots: readonly number[];
  /** Which slots are new frames (the others are anchors re-denoised for attention). */
  readonly fresh: readonly boolean[];
  /** x_{t-1} of every slot, [S, C, h, w]. A hook returns a replacement or undefined. */
  readonly latents: HostTensor<"float32">;
  /** The scheduler's x0 estimate when it gives one. */
  readonly predOriginal?: HostTensor<"float32">;
}

/** What `check` is told about the render besides RenderInfo. */
export interface CheckContext {
  readonly hasSource: boolean;
  readonly sourceFrames: number;
  /** Controls loaded: ControlNets and the T2I-Adapter. */
  readonly controlNets: number;
  /** An IP-Adapter is loaded. */
  readonly ipAdapter: boolean;
  /** A global (content) adapter is loaded (Uni-ControlNet). */
  readonly globalAdapter: boolean;
  /** Every method of the render (to refuse combinations that cannot work). */
  readonly methods: readonly VideoMethod[];
  /** Frames per batch asked for. */
  readonly batch: number;
}

/** A finished frame as `frameDone` receives it. */
export interface FinishedFrame {
  readonly index: number;
  readonly image: Image;
  /** Latents after every step, when a method asked for them (`keepStepLatents`). */
  readonly stepLatents?: readonly HostTensor<"float32">[];
}

/** Named tensors a method stores with a finished frame and reads back on resume. */
export type MethodState = Readonly<Record<string, HostTensor<"float32">>>;

export type MethodRole = "noise" | "controls" | "attention" | "fusion" | "motion" | "reference";

export interface VideoMethod {
  /** `role:name`, e.g. "noise:shared"; recorded in run.json. */
  readonly id: string;
  readonly role: MethodRole;
  /** Settings recorded in run.json and compared on --resume. */
  readonly settings?: Readonly<Record<string, unknown>>;
  /** One new frame per batch: the method reads the previous frame's output or state. */
  readonly sequential?: boolean;
  /** Keep each fresh frame's latents after every step for `frameDone` (fusion methods). */
  readonly keepStepLatents?: boolean;

  /** Checks the render settings before anything loads; throws a typed error naming the option. */
  check?(info: RenderInfo, context: CheckContext): void;

  /** Output frames for a source of `sourceFrames` frames (controls methods that change the rate). */
  outputFrames?(sourceFrames: number): number;
  /** The source frame of output frame `i` (undefined for an in-between frame). Default: i. */
  sourceIndex?(i: number): number | undefined;

  /** The seed of frame `index`'s own generator (default seed + index). */
  frameSeed?(index: number, info: RenderInfo): bigint;
  /**
   * Initial noise [1, C, h, w] (unit variance, before init_noise_sigma) of frame `ctx.index`. `own` is
   * the frame generator's first draw (the engine always makes it, so step noise that follows is the
   * same whichever noise method runs).
   */
  initialNoise?(ctx: FrameContext, own: HostTensor<"float32">): Promise<HostTensor<"float32">>;
  /**
   * The generator of a batch's step noise (DDIM eta > 0, ancestral samplers), frames `slots` in
   * batch order: `randn([S, ...])` is then one draw for the whole batch, as a reference pipeline with
   * a single `generator` makes it. Undefined (the default): each slot draws from its own generator.
   */
  stepNoise?(slots: readonly number[]): NoiseGenerator | undefined;

  /** An img2img start for the frame, or undefined to start from noise. */
  start?(ctx: FrameContext): Promise<FrameStart | undefined>;

  /** One control image per ControlNet (RGB, output size), or undefined when another method supplies them. */
  controlImages?(ctx: FrameContext): Promise<readonly Image[] | undefined>;

  /** The cross-frame attention the UNet and ControlNets are built with. */
  crossFrame?(): CrossFrameSetting | undefined;
  /**
   * Finished frames to prepend to a batch of new frames so self-attention reads their K/V. Anchors are
   * denoised again from their recorded inputs (noise, controls), so they need no stored activations.
   */
  anchors?(fresh: readonly number[]): readonly number[];
  /**
   * Anchor frames whose self-attention keys/values, recorded when they are generated, are exactly what
   * denoising them again as anchors would give (they attend only to frames of this list). The engine
   * keeps those keys/values (./anchor-cache.ts) and feeds them to later batches instead of denoising
   * these anchors again, when the models are built with `anchorCache` (see `crossFrame`).
   */
  anchorCache?(info: RenderInfo): readonly number[];
  /**
   * The anchors not named by `anchorCache` must attend as they did when they were generated (they
   * read frames outside the anchor list, e.g. sparse-causal attention's previous frame reads its own
   * predecessor), so denoising them again would change what later frames see. The engine then
   * records the self-attention keys/values of every frame a later batch takes as an anchor while it
   * is generated, keeps them with the frame in the store (`FrameStore.putKeyValues`: on disk in a
   * render's work folder) until no later batch needs them, and feeds them to those batches: any
   * `--batch`, a resumed render and a farm segment see the same keys/values. Models that cannot take
   * anchor keys/values (Uni-ControlNet's local adapter) denoise such anchors again instead.
   */
  readonly storedAnchors?: boolean;
  /** Frames to generate before all others, together in one batch (key frames). */
  firstBatch?(info: RenderInfo): readonly number[] | undefined;

  /**
   * The IP-Adapter reference images for a batch of new frames (the same array object while it does
   * not change, so the engine conditions once), or undefined for the render's own reference (if any).
   */
  reference?(
    fresh: readonly number[],
    output: (i: number) => Promise<Image>,
  ): Promise<readonly Image[] | undefined>;

  /** Changes the batch latents after a scheduler step; returns the new latents or undefined. */
  afterStep?(ctx: StepContext): Promise<HostTensor<"float32"> | undefined>;

  /** Called once per finished fresh frame, in frame order for sequential renders. */
  frameDone?(frame: FinishedFrame): Promise<void> | void;
  /** State stored with the last finished frame, to resume from it. */
  saveState?(): MethodState;
  /** Restores `saveState`'s tensors (from the frame before the first one to render). */
  loadState?(state: MethodState): void;
}
