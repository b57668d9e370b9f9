/**
 * The video engine: one denoising loop for every strategy. Frames are generated in batches; each
 * batch is a list of *slots*: anchor frames (finished frames denoised again from their recorded
 * noise and controls, so cross-frame attention can read their keys/values) followed by the new
 * frames. The consistency methods (./method.ts) supply noise, starts, controls, attention anchors and
 * after-step changes through hooks; the loop itself knows none of them by name.
 *
 * Per batch, as numbered steps:
 *   1. slots = anchors + fresh frames; each slot gets its own generator (seed from the noise method);
 *      anchors whose keys/values are in the anchor cache (./anchor-cache.ts) or, for methods with
 *      `storedAnchors`, in the store (kept from their own generation) are fed, not denoised
 *   2. per slot: initial noise, control images (recorded recipe for anchors), img2img start
 *   3. timesteps (img2img keeps the last `strength` part) and initial latents
 *   4. denoising loop: predictNoise (CFG, ControlNets, T2I-Adapter features, UNet) -> scheduler step ->
 *      afterStep hooks
 *
 * The controls of a frame are one map per control: each ControlNet, then the T2I-Adapter if any.
 *   5. decode the fresh slots, hand them to the methods (frameDone), store image + recipe + state
 */
import { totalmem } from "node:os";
import { InvalidArgumentError, throwIfAborted } from "../errors.js";
import { resizeImage } from "../control/resize.js";
import type { Image } from "../image.js";
import { chunkBatch, concatBatch, scale } from "../pipeline/guidance.js";
import { imageToTensor, tensorToImages, denormalize } from "../pipeline/images.js";
import { img2imgTimesteps, noiseLatentsTo, toSignedRange } from "../pipeline/img2img.js";
import { guidanceMode, predictNoise, type BatchControl } from "../pipeline/denoise.js";
import type { AnchorAttentionIO, AnchorEntry } from "../models/anchor-attention.js";
import type { LongTaskOptions } from "../progress.js";
import { TorchGenerator } from "../random/torch-generator.js";
import { type HostTensor, tensor } from "../tensor.js";
import { AnchorCache, type AnchorCacheStats } from "./anchor-cache.js";
import { SlotNoiseGenerator } from "./frame-noise.js";
import type { FrameRecipe, FrameStore, StepKeyValues } from "./frame-store.js";
import type { FrameContext, FrameStart, RenderInfo, SourceAccess, VideoMethod } from "./method.js";
import type { DenoisingUNet, VideoAdapter, VideoComponents } from "../pipeline/types.js";
export type { VideoComponents };
import { keysAround, lerpTensors, scheduleKeys, type PromptSchedule } from "./prompt-schedule.js";

/** Per-control strength and schedule (ControlNets, then the T2I-Adapter). */
export interface ControlSettings {
  /** (optional, default 1) controlnet_conditioning_scale (adapter_conditioning_scale for the adapter). */
  readonly scale?: number;
  readonly guidanceStart?: number;
  readonly guidanceEnd?: number;
}

export interface GenerateVideoOptions extends LongTaskOptions {
  /** One prompt, or a per-frame schedule (prompt travel). */
  readonly prompt: PromptSchedule;
  readonly negativePrompt?: string;
  /** Instead of prompts: embeddings [1, L, C] (cond) and the unconditional ones. */
  readonly promptEmbeds?: { readonly cond: HostTensor<"float32">; readonly uncond?: HostTensor<"float32"> };
  readonly width: number;
  readonly height: number;
  /** Output frames (default: what the source and the controls method give; required without a source). */
  readonly frames?: number;
  /** (optional, default 20) */
  readonly numInferenceSteps?: number;
  /** (optional, default 7.5) */
  readonly guidanceScale?: number;
  readonly seed?: number | bigint;
  /** (optional, default 0) DDIM eta. */
  readonly eta?: number;
  readonly clipSkip?: number;
  /**
   * (optional, default false) ControlNet guess mode (diffusers `guess_mode`): with guidance the
   * ControlNets see only the conditional half of the batch ([F] frames with the cond embeddings) and
   * the unconditional half gets zero residuals. Load the nets with the guess-mode scales
   * (`ControlNetModel.load(dir, { guessMode: true })`). A net with cross-frame attention then splits
   * its F frames into its `batchSize` videos, as diffusers' processor does; the anchor cache is not
   * used with it.
   */
  readonly guessMode?: boolean;
  /**
   * (optional, default "plain") "a1111": prompts in A1111 syntax (weights, BREAK, 75-token chunks),
   * encoded by `components.encodeWeightedPrompts` (src/pipeline/prompt-weighting.ts).
   */
  readonly promptSyntax?: "plain" | "a1111";
  /** The consistency methods (at most one per role). */
  readonly methods: readonly VideoMethod[];
  /** (optional, default 1) new frames per batch (forced to 1 by sequential methods). */
  readonly batch?: number;
  readonly source?: SourceAccess;
  /** One entry per control: each ControlNet, then the T2I-Adapter (which has no start/end schedule). */
  readonly controls?: readonly ControlSettings[];
  /**
   * (optional) the IP-Adapter's reference images (`reference`, for every batch unless a `reference`
   * method gives its own, e.g. frame 0's output) and ip scale (default 1). Needs components.ipAdapter.
   */
  readonly ipAdapter?: { readonly reference?: readonly Image[]; readonly scale?: number };
  /**
   * (optional) the global (content) adapter's reference images for every batch unless a `reference`
   * method gives its own (e.g. the previous output). Needs components.globalAdapter; none: no content.
   */
  readonly globalReference?: readonly Image[];
  /** Finished frames (and, on resume, the ones already there). */
  readonly store: FrameStore;
  /**
   * (optional) generate only the frames this accepts (a render split into segments, e.g. by the render
   * farm); the others must already be in the store when a later frame needs them (anchors, state).
   */
  readonly only?: (index: number) => boolean;
  /** Called after each finished frame, in the order they finish. */
  readonly onFrame?: (index: number, image: Image) => Promise<void> | void;
  /** Receives named intermediates (`b0.step03.latents_out`, ...). */
  readonly trace?: (name: string, value: HostTensor) => void;
  /**
   * (optional, default min(8 GiB, 40 % of the machine's memory)) memory for the anchor cache, in MiB:
   * the keys/values of anchor frames kept so later batches need not denoise them again
   * (./anchor-cache.ts; at 512x512 with CFG 248 MiB per anchor frame and step for SD-1.5 with a
   * ControlNet). 0 turns it off: anchors are denoised again in every batch (same frames, slower).
   */
  readonly anchorCacheMiB?: number;
}

export interface GenerateVideoResult {
  readonly frames: number;
  /** Frames generated by this call (the rest were already in the store). */
  readonly generated: number;
  /** Seconds per generated frame, by frame index. */
  readonly secondsPerFrame: ReadonlyMap<number, number>;
  readonly info: RenderInfo;
  /** Frames denoised by this call, counted once per batch they were in (fresh frames and anchors). */
  readonly denoisedSlots: number;
  /** The anchor cache at the end, when the render used one. */
  readonly anchorCache?: AnchorCacheStats;
  /** Frames whose keys/values this call wrote to the store (methods with `storedAnchors`). */
  readonly storedKeyValues?: readonly number[];
}

/** The default anchor cache budget: min(8 GiB, 40 % of the machine's memory), in MiB. */
export function defaultAnchorCacheMiB(): number {
  return Math.floor(Math.min(8 * 1024, (0.4 * totalmem()) / 2 ** 20));
}

/** Resolves the render's frame count and checks everything that can be checked before models run. */
export function planRender(
  o: Omit<GenerateVideoOptions, "store">,
  c: Pick<VideoComponents, "vaeScaleFactor" | "latentChannels"> & {
    /** Control maps per frame (one per ControlNet and T2I-Adapter; a Uni-ControlNet reads several). */
    readonly controlNets: number;
    /** (optional, default controlNets) ControlNets and T2I-Adapter: one `controls` entry each. */
    readonly controlUnits?: number;
    /** An IP-Adapter is loaded (default false). */
    readonly ipAdapter?: boolean;
    /** A global (content) adapter is loaded (default false). */
    readonly globalAdapter?: boolean;
  },
): RenderInfo {
  const step = Math.max(8, c.vaeScaleFactor);
  for (const [name, v] of [
    ["width", o.width],
    ["height", o.height],
  ] as const) {
    if (!Number.isInteger(v) || v <= 0 || v % step !== 0)
      throw new InvalidArgumentError(`--size (${name})`, `a positive multiple of ${step}`, v);
  }
  const steps = o.numInferenceSteps ?? 20;
  if (!Number.isInteger(steps) || steps < 1)
    throw new InvalidArgumentError("--steps", "an integer >= 1", steps);
  const batch = o.batch ?? 1;
  if (!Number.isInteger(batch) || batch < 1)
    throw new InvalidArgumentError("--batch", "an integer >= 1", batch);
  const roles = new Map<string, string>();
  for (const m of o.methods) {
    const other = roles.get(m.role);
    if (other !== undefined)
      throw new InvalidArgumentError("methods", `one ${m.role} method`, `${other} and ${m.id}`);
    roles.set(m.role, m.id);
  }
  const sourceFrames = o.source?.frames ?? 0;
  const derived = o.methods.find((m) => m.outputFrames)?.outputFrames?.(sourceFrames) ?? sourceFrames;
  const frames = o.frames ?? (o.source ? derived : undefined);
  if (frames === undefined)
    throw new InvalidArgumentError(
      "--frames",
      "a frame count (there is no source video to take it from)",
      undefined,
    );
  if (!Number.isInteger(frames) || frames < 1)
    throw new InvalidArgumentError("--frames", "an integer >= 1", frames);
  if (o.source && frames > derived) {
    throw new InvalidArgumentError("--frames", `at most ${derived} (what the source video gives)`, frames, {
      hint: "use a longer source or fewer frames",
    });
  }
  const units = c.controlUnits ?? c.controlNets;
  if ((o.controls ?? []).length !== units) {
    throw new InvalidArgumentError(
      "controls",
      `${units} entries (one per ControlNet or T2I-Adapter)`,
      (o.controls ?? []).length,
    );
  }
  const info: RenderInfo = {
    frames,
    width: o.width,
    height: o.height,
    latentShape: [c.latentChannels, o.height / c.vaeScaleFactor, o.width / c.vaeScaleFactor],
    seed: BigInt(o.seed ?? 0),
    numInferenceSteps: steps,
  };
  for (const m of o.methods) {
    m.check?.(info, {
      hasSource: o.source !== undefined,
      sourceFrames,
      controlNets: c.controlNets,
      ipAdapter: c.ipAdapter === true,
      globalAdapter: c.globalAdapter === true,
      methods: o.methods,
      batch,
    });
  }
  if (c.controlNets > 0 && !o.methods.some((m) => m.controlImages)) {
    throw new InvalidArgumentError(
      "--controls-from",
      "a source of control maps for the ControlNets",
      "none",
      {
        hint: "give a source video (controls from its frames) or drop --controlnet",
      },
    );
  }
  return info;
}

/**
 * True when frames must be generated in order by one process: a method reads the previous frame's
 * output, carries state from frame to frame or reads the keys/values a frame left in the store
 * (`storedAnchors`). Otherwise, once the first batch (frame 0 or the key
 * frames) is finished, any subset of the other frames can be generated independently, with the same
 * result (the render farm splits such renders into parallel segments).
 */
export function isChained(methods: readonly VideoMethod[]): boolean {
  return methods.some((m) => m.sequential === true || m.saveState !== undefined || m.storedAnchors === true);
}

/** The order frames are generated in: the key-frame batch first, then the rest in batches. */
export function batchPlan(info: RenderInfo, methods: readonly VideoMethod[], batch: number): number[][] {
  const sequential = methods.some((m) => m.sequential);
  const size = sequential ? 1 : batch;
  const first = methods.find((m) => m.firstBatch)?.firstBatch?.(info) ?? [];
  const plan: number[][] = first.length > 0 ? [[...first]] : [];
  const taken = new Set(first);
  let current: number[] = [];
  for (let i = 0; i < info.frames; i++) {
    if (taken.has(i)) continue;
    current.push(i);
    if (current.length === size) {
      plan.push(current);
      current = [];
    }
  }
  if (current.length > 0) plan.push(current);
  return plan;
}

/** Timesteps of a full (not img2img) schedule of `steps` steps. */
function fullScheduleSteps(c: VideoComponents, steps: number): number {
  const scheduler = c.makeScheduler();
  scheduler.setTimesteps(steps);
  return scheduler.timesteps.length;
}

interface Slot {
  readonly index: number;
  readonly fresh: boolean;
  readonly generator: TorchGenerator;
  readonly noise: HostTensor<"float32">;
  readonly controls: readonly Image[];
  readonly start?: FrameStart;
}

export async function generateVideo(
  c: VideoComponents,
  o: GenerateVideoOptions,
): Promise<GenerateVideoResult> {
  const task = "video frames";
  const trace = o.trace ?? (() => undefined);
  // 1. Check inputs and plan the batches
  // Control maps of a frame: each net's (one, or `maps`), then the T2I-Adapter's.
  const netMaps = c.controlnets.map((n) => n.maps ?? 1);
  const netOffsets = netMaps.map((_, k) => netMaps.slice(0, k).reduce((a, b) => a + b, 0));
  const adapterOffset = netMaps.reduce((a, b) => a + b, 0);
  const units = adapterOffset + (c.adapter ? 1 : 0);
  const info = planRender(o, {
    ...c,
    controlNets: units,
    controlUnits: c.controlnets.length + (c.adapter ? 1 : 0),
    ipAdapter: c.ipAdapter !== undefined,
    globalAdapter: c.globalAdapter !== undefined,
  });
  if (o.ipAdapter !== undefined && c.ipAdapter === undefined)
    throw new InvalidArgumentError("ipAdapter", "components with an IP-Adapter loaded", "none", {
      hint: "load the pipeline with the ipAdapter option (--ip-adapter FILE)",
    });
  const methods = o.methods;
  const guidance = o.guidanceScale ?? 7.5;
  const { cfg, timestepCond } = guidanceMode(c.unet, guidance);
  const [lc, lh, lw] = info.latentShape;
  const plan = batchPlan(info, methods, o.batch ?? 1);
  const noiseMethod = methods.find((m) => m.initialNoise);
  const seedOf = (i: number): bigint => noiseMethod?.frameSeed?.(i, info) ?? info.seed + BigInt(i);
  const sourceIndexOf = (i: number): number | undefined =>
    methods.find((m) => m.sourceIndex)?.sourceIndex?.(i) ?? (o.source ? i : undefined);
  const referenceMethod = methods.find((m) => m.reference);
  // The UNet per reference image set (conditioned once per distinct array).
  const adapted = new Map<readonly Image[], DenoisingUNet>();
  const unetFor = async (own: readonly Image[] | undefined): Promise<DenoisingUNet> => {
    const images = own ?? o.ipAdapter?.reference;
    if (images === undefined || c.ipAdapter === undefined) return c.unet;
    let unet = adapted.get(images);
    if (unet === undefined) {
      unet = await c.ipAdapter.adapt(
        images,
        o.ipAdapter?.scale ?? 1,
        cfg,
        o.signal ? { signal: o.signal } : {},
      );
      adapted.set(images, unet);
    }
    return unet;
  };

  // 2. Prompt embeddings per schedule key (the unconditional one once)
  const embedsOf = await promptEmbeddings(c, o, cfg);

  // 3. Resume: skip finished frames, restore the methods' state from the last finished one
  const done = new Set<number>();
  for (let i = 0; i < info.frames; i++) if (await o.store.has(i)) done.add(i);
  const wanted = o.only ?? (() => true);
  const remaining = plan.map((b) => b.filter((i) => !done.has(i) && wanted(i))).filter((b) => b.length > 0);
  const firstTodo = remaining[0]?.[0];
  if (firstTodo !== undefined && done.size > 0) {
    const last = [...done].filter((i) => i < firstTodo).sort((a, b) => b - a)[0];
    if (last !== undefined) {
      const state = (await o.store.recipe(last)).state;
      for (const m of methods) m.loadState?.(pickState(state, m.id));
    }
  }

  // The anchor cache: when the attention method names cacheable frames and every model can take them
  const attention = methods.find((m) => m.anchors);
  const cacheable = new Set(attention?.anchorCache?.(info) ?? []);
  const budgetMiB = o.anchorCacheMiB ?? defaultAnchorCacheMiB();
  if (!(Number.isFinite(budgetMiB) && budgetMiB >= 0))
    throw new InvalidArgumentError("--anchor-cache", "a number of MiB >= 0 (0 turns it off)", budgetMiB);
  if (o.guessMode === true && c.controlnets.some((n) => n.anchorCache === true))
    throw new InvalidArgumentError("guessMode", "ControlNets loaded without the anchor cache", true, {
      hint: "in guess mode a ControlNet's batch holds the conditional frames only, which the cached anchors do not fit",
    });
  const takesAnchors = c.unet.anchorCache === true && c.controlnets.every((n) => n.anchorCache === true);
  const fullSteps = fullScheduleSteps(c, info.numInferenceSteps);
  const cache =
    cacheable.size > 0 && budgetMiB > 0 && takesAnchors
      ? new AnchorCache(
          budgetMiB * 2 ** 20,
          ["unet", ...c.controlnets.map((_, k) => `controlnet.${k}`)],
          fullSteps,
        )
      : undefined;
  // Stored anchors: the keys/values of every frame a later batch reads, kept in the store
  const stored = attention?.storedAnchors === true && takesAnchors;
  const finishedFrames = new Set(done);
  /** Anchors of the plan's batches that still have unfinished frames (all of them, not only `only`'s). */
  const pendingAnchors = (): Set<number> => {
    const needed = new Set<number>();
    for (const batch of plan) {
      const open = batch.filter((i) => !finishedFrames.has(i));
      if (open.length > 0) for (const a of attention?.anchors?.(open) ?? []) needed.add(a);
    }
    return needed;
  };
  /** Frames whose keys/values are in the store, as far as this call knows (to drop them when done). */
  const storedFrames = new Set<number>();
  const keyValuesWritten = new Set<number>();
  let denoisedSlots = 0;

  const secondsPerFrame = new Map<number, number>();
  const frameContext = (index: number, generator: TorchGenerator): FrameContext => ({
    index,
    info,
    ...(o.source ? { source: o.source } : {}),
    sourceIndex: sourceIndexOf(index),
    output: (i) => o.store.image(i),
    generator,
  });
  let finished = done.size;
  o.onProgress?.({ status: "start", task, total: info.frames });
  if (finished > 0) o.onProgress?.({ status: "progress", task, done: finished, total: info.frames });

  for (const [b, fresh] of remaining.entries()) {
    throwIfAborted(o.signal, task);
    const started = performance.now();
    // 1-2. Per fresh frame: noise, controls, img2img start
    const freshSlots: Slot[] = [];
    for (const index of fresh) {
      const generator = new TorchGenerator(seedOf(index));
      const own = generator.randn([1, lc, lh, lw]);
      const ctx = frameContext(index, generator);
      const noise = noiseMethod ? await noiseMethod.initialNoise!(ctx, own) : own;
      let controls: readonly Image[] = [];
      for (const m of methods) {
        const images = await m.controlImages?.(ctx);
        if (images) controls = images;
      }
      let start: FrameStart | undefined;
      for (const m of methods) start = (await m.start?.(ctx)) ?? start;
      freshSlots.push({ index, fresh: true, generator, noise, controls, ...(start ? { start } : {}) });
    }
    // Anchors first: the cached or stored ones (a prefix) are fed, the others denoised again from
    // their recipes
    const anchors = (attention?.anchors?.(fresh) ?? []).filter((i) => !fresh.includes(i));
    const feeding = (cache !== undefined || stored) && !freshSlots.some((s) => s.start);
    const fromStore = new Set<number>();
    let fed = 0;
    for (; feeding && fed < anchors.length; fed++) {
      const a = anchors[fed]!;
      if (cache?.has(a) === true) continue;
      if (!stored) break;
      if (!(await o.store.hasKeyValues(a, fullSteps)))
        throw new InvalidArgumentError(
          "store",
          `the self-attention keys/values of finished frame ${a} (${attention?.id} reads them)`,
          "none",
          {
            hint: "they are written while the frame is generated; a work folder without them is damaged: delete it to start over",
          },
        );
      fromStore.add(a);
      storedFrames.add(a);
    }
    const cachedAnchors = anchors.slice(0, fed);
    const slots: Slot[] = [];
    for (const index of anchors.slice(fed)) {
      const generator = new TorchGenerator(seedOf(index));
      generator.randn([1, lc, lh, lw]); // the draw the frame's noise came after
      const recipe = await o.store.recipe(index);
      slots.push({ index, fresh: false, generator, noise: recipe.noise, controls: recipe.controls });
    }
    slots.push(...freshSlots);
    denoisedSlots += slots.length;
    // The slots to record: cacheable frames not cached yet; with stored anchors, the fresh frames a
    // later batch reads (written to the store, and kept in the cache while it has room, so the next
    // batch need not read them back)
    const later = stored ? pendingAnchors() : new Set<number>();
    const toStore = (s: Slot): boolean => stored && s.fresh && later.has(s.index);
    const toCache = (s: Slot): boolean =>
      cache !== undefined && cache.recording && (cacheable.has(s.index) || toStore(s)) && !cache.has(s.index);
    const record = feeding ? slots.flatMap((s, k) => (toStore(s) || toCache(s) ? [k] : [])) : [];
    /** Keys/values of the current step recorded for the store: frame -> model -> entry. */
    const storing = new Map<number, Map<string, AnchorEntry>>();
    const writes: Promise<void>[] = [];
    const anchorAttention =
      feeding && (cachedAnchors.length > 0 || record.length > 0)
        ? async (step: number): Promise<(model: string) => AnchorAttentionIO> => {
            const fromDisk = new Map<number, StepKeyValues>();
            for (const f of fromStore) fromDisk.set(f, await o.store.keyValues(f, step));
            const entryOf = (f: number, model: string): AnchorEntry => {
              if (!fromStore.has(f)) return cache!.entry(f, step, model);
              const e = fromDisk.get(f)?.get(model);
              if (e === undefined)
                throw new InvalidArgumentError(
                  `stored keys/values of frame ${f}`,
                  `an entry for ${model}`,
                  "none",
                  {
                    hint: "the work folder was written by another model setup; delete it to start over",
                  },
                );
              return e;
            };
            return (model: string): AnchorAttentionIO => ({
              anchors: cachedAnchors.map((f) => entryOf(f, model)),
              record,
              recorded: (entries) =>
                entries.forEach((e, r) => {
                  const slot = slots[record[r]!]!;
                  if (toCache(slot)) cache!.put(slot.index, step, model, e);
                  if (!toStore(slot)) return;
                  let byModel = storing.get(slot.index);
                  if (byModel === undefined) storing.set(slot.index, (byModel = new Map()));
                  byModel.set(model, e);
                }),
            });
          }
        : undefined;
    checkControls(slots, units, info);
    const withStart = slots.filter((s) => s.start);
    if (withStart.length > 0 && slots.length > 1) {
      throw new InvalidArgumentError(
        "--batch",
        "1 frame per batch with no anchor frames for img2img starts",
        slots.length,
      );
    }

    // 3. Timesteps and initial latents
    const scheduler = c.makeScheduler();
    scheduler.setTimesteps(info.numInferenceSteps);
    const start = withStart[0]?.start;
    const timesteps = start
      ? img2imgTimesteps(scheduler, info.numInferenceSteps, start.strength)
      : scheduler.timesteps;
    let latents: HostTensor<"float32">;
    const first = slots[0];
    if (start && first && timesteps[0] !== undefined) {
      if (!c.encoder)
        throw new InvalidArgumentError("img2img start", "a pipeline with a VAE encoder", "none");
      const clean = await c.encoder.encode(toSignedRange(start.image), first.generator);
      latents = noiseLatentsTo(scheduler, clean, timesteps[0], first.generator);
    } else {
      latents = scale(concatBatch(slots.map((s) => s.noise)), scheduler.initNoiseSigma);
    }
    const stepNoise =
      noiseMethod?.stepNoise?.(slots.map((s) => s.index)) ??
      new SlotNoiseGenerator(slots.map((s) => s.generator));
    const embeds = embedsOf(slots.map((s) => s.index));
    const controls: BatchControl[] = [];
    for (const [k, net] of c.controlnets.entries()) {
      const from = netOffsets[k] ?? 0;
      const mapsOf = (s: Slot): readonly Image[] => s.controls.slice(from, from + (netMaps[k] ?? 1));
      controls.push({
        controlnet: net,
        images: net.condition
          ? await net.condition(slots.map(mapsOf), { width: info.width, height: info.height })
          : concatBatch(slots.map((s) => imageToTensor(toRgb(s.controls[from]!), "0,1"))),
        ...(o.controls?.[k] ?? {}),
      });
    }
    // Reference images of the batch (a `reference` method's, else the render's): IP-Adapter, global adapter
    const own = await referenceMethod?.reference?.(fresh, (i) => o.store.image(i));
    const unet = await unetFor(own);
    const context = c.globalAdapter
      ? await c.globalAdapter.extend(
          embeds,
          own ?? o.globalReference,
          cfg,
          o.signal ? { signal: o.signal } : {},
        )
      : embeds;
    const intrablockResiduals = c.adapter
      ? await adapterResiduals(c.adapter, slots, adapterOffset, c.controlnets.length, info, o)
      : undefined;
    const keep = methods.some((m) => m.keepStepLatents);
    const stepLatents: HostTensor<"float32">[] = [];
    const tag = (i: number) => `b${b}.step${String(i).padStart(2, "0")}`;

    // 4. Denoising loop
    o.onProgress?.({ status: "start", task: "denoising", total: timesteps.length });
    for (const [i, t] of timesteps.entries()) {
      throwIfAborted(o.signal, task);
      trace(`${tag(i)}.latents_in`, latents);
      const { noisePred } = await predictNoise({
        unet,
        scheduler,
        latents,
        t,
        stepIndex: i,
        numSteps: timesteps.length,
        promptEmbeds: context,
        guidanceScale: cfg ? guidance : 1,
        ...(timestepCond ? { timestepCond } : {}),
        controls,
        ...(o.guessMode === true ? { guessMode: true } : {}),
        ...(intrablockResiduals ? { intrablockResiduals } : {}),
        ...(anchorAttention ? { anchorAttention: await anchorAttention(i) } : {}),
        trace,
        tag: tag(i),
      });
      // Written while the next steps run; all of them are on disk before the frame's image.
      for (const [frame, entries] of storing) {
        const write = o.store.putKeyValues(frame, i, entries);
        write.catch(() => undefined); // rejections surface at the await below
        writes.push(write);
        storedFrames.add(frame);
        keyValuesWritten.add(frame);
      }
      storing.clear();
      const out = scheduler.step(noisePred, t, latents, {
        generator: stepNoise,
        ...(o.eta === undefined ? {} : { eta: o.eta }),
      });
      latents = out.prevSample;
      for (const m of methods) {
        const changed = await m.afterStep?.({
          stepIndex: i,
          numSteps: timesteps.length,
          t,
          scheduler,
          slots: slots.map((s) => s.index),
          fresh: slots.map((s) => s.fresh),
          latents,
          ...(out.predOriginalSample ? { predOriginal: out.predOriginalSample } : {}),
        });
        if (changed) latents = changed;
      }
      trace(`${tag(i)}.latents_out`, latents);
      if (keep) stepLatents.push(latents);
      o.onProgress?.({ status: "progress", task: "denoising", done: i + 1, total: timesteps.length });
    }
    o.onProgress?.({ status: "done", task: "denoising" });
    await Promise.all(writes);

    // 5. Decode the new frames, hand them to the methods, store them
    const perSlot = chunkBatch(latents, slots.length);
    const seconds = (performance.now() - started) / 1000 / fresh.length;
    for (const [k, slot] of slots.entries()) {
      if (!slot.fresh) continue;
      throwIfAborted(o.signal, task);
      const z = perSlot[k]!;
      trace(`frame${slot.index}.latents`, z);
      const decoderInput = scale(z, 1 / c.vae.scalingFactor);
      trace(`frame${slot.index}.vae_decode.input`, decoderInput);
      const raw = await c.vae.decode(decoderInput);
      trace(`frame${slot.index}.vae_decode.output`, raw);
      const pixels = denormalize(raw);
      trace(`frame${slot.index}.image`, pixels);
      const image = tensorToImages(pixels)[0]!;
      const own = keep ? stepLatents.map((s) => chunkBatch(s, slots.length)[k]!) : undefined;
      for (const m of methods)
        await m.frameDone?.({ index: slot.index, image, ...(own ? { stepLatents: own } : {}) });
      const state: Record<string, HostTensor<"float32">> = {};
      for (const m of methods) {
        for (const [name, value] of Object.entries(m.saveState?.() ?? {})) state[`${m.id}/${name}`] = value;
      }
      const recipe: FrameRecipe = { noise: slot.noise, controls: slot.controls, state, seconds };
      await o.store.put(slot.index, image, recipe);
      finishedFrames.add(slot.index);
      secondsPerFrame.set(slot.index, seconds);
      await o.onFrame?.(slot.index, image);
      finished++;
      o.onProgress?.({ status: "progress", task, done: finished, total: info.frames });
    }
    // Stored keys/values no unfinished batch reads any more
    if (storedFrames.size > 0) {
      const needed = pendingAnchors();
      for (const f of [...storedFrames].filter((f) => !needed.has(f))) {
        await o.store.dropKeyValues(f);
        if (!cacheable.has(f)) cache?.forget(f); // the cache's own anchors stay to the end
        storedFrames.delete(f);
      }
    }
  }
  o.onProgress?.({ status: "done", task });
  return {
    frames: info.frames,
    generated: secondsPerFrame.size,
    secondsPerFrame,
    info,
    denoisedSlots,
    ...(cache ? { anchorCache: cache.stats() } : {}),
    ...(stored ? { storedKeyValues: [...keyValuesWritten].sort((a, b) => a - b) } : {}),
  };
}

/** Embeddings of a batch's slots: [uncond x S, cond of each slot] with guidance, else [cond...]. */
async function promptEmbeddings(
  c: VideoComponents,
  o: GenerateVideoOptions,
  cfg: boolean,
): Promise<(frames: readonly number[]) => HostTensor<"float32">> {
  let uncond: HostTensor<"float32"> | undefined;
  const byKey = new Map<number, HostTensor<"float32">>();
  const keys = scheduleKeys(o.prompt);
  if (o.promptEmbeds) {
    byKey.set(keys[0]?.frame ?? 0, o.promptEmbeds.cond);
    uncond = o.promptEmbeds.uncond;
    if (cfg && !uncond)
      throw new InvalidArgumentError(
        "promptEmbeds.uncond",
        "unconditional embeddings (guidance > 1)",
        undefined,
      );
  } else if (o.promptSyntax === "a1111") {
    if (!c.encodeWeightedPrompts) {
      throw new InvalidArgumentError("promptSyntax", "components with encodeWeightedPrompts", "a1111");
    }
    const encoded = await c.encodeWeightedPrompts(
      keys.map((k) => k.prompt),
      o.negativePrompt ?? "",
      o.clipSkip,
    );
    uncond = encoded.uncond;
    keys.forEach((k, i) => byKey.set(k.frame, encoded.conds[i]!));
  } else {
    const prompts = [...(cfg ? [o.negativePrompt ?? ""] : []), ...keys.map((k) => k.prompt)];
    const clip = o.clipSkip === undefined ? undefined : { clipSkip: o.clipSkip };
    const all = chunkBatch(await c.textEncoder.encode(c.tokenizer.tokenize(prompts), clip), prompts.length);
    if (cfg) uncond = all.shift();
    keys.forEach((k, i) => byKey.set(k.frame, all[i]!));
  }
  const condOf = (frame: number): HostTensor<"float32"> => {
    if (o.promptEmbeds) return o.promptEmbeds.cond;
    const [a, b, w] = keysAround(keys, frame);
    return lerpTensors(byKey.get(a.frame)!, byKey.get(b.frame)!, w);
  };
  return (frames) => {
    const cond = frames.map(condOf);
    return concatBatch(cfg && uncond ? [...frames.map(() => uncond!), ...cond] : cond);
  };
}

/**
 * The T2I-Adapter's residuals for a batch: its control map of each slot (the one after the
 * ControlNets'), resized to the latent size times the adapter's downscale_factor when that is not
 * the output size, run once and times adapter_conditioning_scale.
 */
async function adapterResiduals(
  adapter: VideoAdapter,
  slots: readonly Slot[],
  k: number,
  unit: number,
  info: RenderInfo,
  o: Pick<GenerateVideoOptions, "controls" | "signal">,
): Promise<HostTensor<"float32">[]> {
  const [, lh, lw] = info.latentShape;
  const width = lw * adapter.downscaleFactor;
  const height = lh * adapter.downscaleFactor;
  const images = await Promise.all(
    slots.map(async (s) => {
      const map = toRgb(s.controls[k]!);
      return map.width === width && map.height === height
        ? map
        : resizeImage(map, { width, height, interpolation: width > map.width ? "linear" : "area" });
    }),
  );
  const features = await adapter.features(
    concatBatch(images.map((img) => imageToTensor(img, "0,1"))),
    o.signal ? { signal: o.signal } : {},
  );
  const scale = o.controls?.[unit]?.scale ?? 1;
  return features.map((f) =>
    tensor(
      "float32",
      f.shape,
      f.data.map((v) => Math.fround(v * scale)),
    ),
  );
}

function pickState(
  state: Readonly<Record<string, HostTensor<"float32">>>,
  id: string,
): Record<string, HostTensor<"float32">> {
  const out: Record<string, HostTensor<"float32">> = {};
  for (const [k, v] of Object.entries(state)) if (k.startsWith(`${id}/`)) out[k.slice(id.length + 1)] = v;
  return out;
}

function checkControls(slots: readonly Slot[], nets: number, info: RenderInfo): void {
  for (const s of slots) {
    if (s.controls.length !== nets) {
      throw new InvalidArgumentError(
        `control maps of frame ${s.index}`,
        `${nets} (one per ControlNet or T2I-Adapter)`,
        s.controls.length,
      );
    }
    for (const [k, img] of s.controls.entries()) {
      if (img.width !== info.width || img.height !== info.height) {
        throw new InvalidArgumentError(
          `control map ${k} of frame ${s.index}`,
          `${info.width}x${info.height} (the output size)`,
          `${img.width}x${img.height}`,
          { hint: "control maps must match --size" },
        );
      }
    }
  }
}

/** Gray and RGBA control maps become RGB (PIL convert("RGB")): gray replicated, alpha dropped. */
export function toRgb(img: Image): Image {
  if (img.channels === 3) return img;
  const out = new Uint8Array(img.width * img.height * 3);
  for (let p = 0; p < img.width * img.height; p++) {
    for (let ch = 0; ch < 3; ch++)
      out[p * 3 + ch] = img.data[p * img.channels + (img.channels === 1 ? 0 : ch)] ?? 0;
  }
  return { width: img.width, height: img.height, channels: 3, data: out };
}
