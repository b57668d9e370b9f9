/**
 * Fusion `atlas` — atlas-guided generation (issue 11 item 4, the founding study's proposal): a small
 * Neural Layered Atlases model (src/atlas, ykasten/layered-neural-atlases) is fitted to the *generated*
 * frames as they finish, with the source video's optical flows as its flow terms, and each later
 * frame starts from the atlas's rendering of that frame (an img2img start at `strength`, as
 * content-flow's start does).
 *
 * - Geometry: the atlas works at a small size (the output divided by the smallest integer that brings
 *   the larger side to <= `maxSide`), over all N output frames from the start (t = f/(N/2) − 1), so
 *   frames that do not exist yet are simply not sampled. Flows: the source's Farneback pairs, averaged
 *   down to the working grid.
 * - After frame 0: initial weights (torch.nn.Linear's init from a seeded generator), mapping
 *   pre-training to uv ≈ 0.8·(x, y) for every frame, then `firstIterations` steps on frame 0 alone
 *   (a first-frame-initialised atlas). After each frame j: `iterations` more steps on frames 0..j,
 *   warm-started, with a fresh Adam and a random stream seeded by (seed, j). The steps after frame j
 *   run in frame j+1's start hook, so they count in its time (and none follow the last frame).
 * - Frame i (i >= 1) starts from the nets' reconstruction at t_i: its mapping there is constrained by
 *   the flow terms from frame i−1 and the rigidity terms, its colours come from the atlas fitted to
 *   frames 0..i−1, so content seen earlier returns where the flow says it is.
 *
 * Why an img2img start and not a latent blend after each step (fusion-flow's route): the atlas renders
 * pixels, and the start hook is where the engine encodes pixels (with the frame's own generator); a
 * method has no VAE encoder of its own. It also leaves --controls-from free, so ControlNet structure
 * and atlas content combine. Resume: the weights and the last frame whose steps they include are the
 * method's state, stored with every finished frame; frames missing from memory are read back from the
 * finished outputs, and steps not in the loaded weights are run again (the same computation, seeded per
 * frame), so a resumed render equals an uninterrupted one.
 */
import { InvalidArgumentError } from "../../errors.js";
import type { FlowField } from "../../control/flow.js";
import { resizeImage } from "../../control/resize.js";
import { GraphBuilder } from "../../graph/builder.js";
import type { Image } from "../../image.js";
import { imageToTensor } from "../../pipeline/images.js";
import { checkStrength } from "../../pipeline/img2img.js";
import { TorchGenerator } from "../../random/torch-generator.js";
import { type HostTensor, tensor, toFloat32 } from "../../tensor.js";
import { openGraphSession } from "../../train/graph-session.js";
import { Adam } from "../../train/optim/index.js";
import { type AtlasData, TorchRandint, prepareAtlasData } from "../../atlas/data.js";
import { type AtlasLossConfig, RELEASE_LOSS_CONFIG, coefficientsAt } from "../../atlas/losses.js";
import { type AtlasEncoding, atlasAdam, fitNets } from "../../atlas/fit.js";
import { type AtlasNets, initialParameters, modelParameterShapes } from "../../atlas/networks.js";
import { buildPretrainGraph, pretrainXyt } from "../../atlas/pretrain.js";
import { frameXyt, openRenderer } from "../../atlas/render.js";
import { type StepRunner, openStepRunner } from "../../atlas/step.js";
import { latentFlow } from "../latent-warp.js";
import type { RenderInfo, SourceAccess, VideoMethod } from "../method.js";

const f32 = Math.fround;

export interface AtlasGuidedOptions {
  /** (optional, default 0.6) img2img strength of each later frame's start from the atlas rendering. */
  readonly strength?: number;
  /** (optional, default 128) the atlas's working size: output / k with the larger side <= this. */
  readonly maxSide?: number;
  /** (optional, default 32) hidden width of the mapping and alpha nets (and of the atlas net with "pe"). */
  readonly width?: number;
  /** (optional, default 1024) pixels per step. */
  readonly batch?: number;
  /** (optional, default 150) steps on frame 0 (the first-frame atlas). */
  readonly firstIterations?: number;
  /** (optional, default 40) steps after each later frame. */
  readonly iterations?: number;
  /** (optional, default 10) mapping pre-training iterations (one step per frame per net each). */
  readonly pretrainIterations?: number;
  /** (optional, default 1e-3) Adam learning rate (the release's 1e-4 is for 400 000 steps). */
  readonly lr?: number;
  /** (optional, default 0) seed of the initial weights and the batches. */
  readonly seed?: number;
  /**
   * (optional, default "grid") the atlas net: "grid" is `atlas fit --encoding grid`'s grid-encoded
   * atlas (its tables updated by a lazy Adam), "pe" the release's MLP. On car-turn at 128² the grid's
   * starts are 3.4 dB closer to the source frames at the same cost (docs/atlas.md).
   */
  readonly encoding?: AtlasEncoding;
}

/** The release's losses without global rigidity (a long-run regulariser) and bootstrapping (no masks). */
const LOSS: AtlasLossConfig = { ...RELEASE_LOSS_CONFIG, stopGlobalRigidity: -1, stopBootstrapping: -1 };
const PRETRAIN_SAMPLES = 1000;
const FLAG = "--fusion atlas";

function positiveInt(name: string, v: number, min = 1): number {
  if (!Number.isInteger(v) || v < min)
    throw new InvalidArgumentError(`${FLAG} (${name})`, `an integer >= ${min}`, v);
  return v;
}

/** The working size: the output divided by the smallest integer k with max(w, h) / k <= maxSide. */
export function atlasWorkingSize(
  width: number,
  height: number,
  maxSide: number,
): { width: number; height: number } {
  const k = Math.max(1, Math.ceil(Math.max(width, height) / maxSide));
  return { width: Math.max(1, Math.floor(width / k)), height: Math.max(1, Math.floor(height / k)) };
}

export function atlasGuided(source: SourceAccess | undefined, options: AtlasGuidedOptions = {}): VideoMethod {
  const strength = options.strength ?? 0.6;
  checkStrength(strength, "--strength");
  if (strength === 0) throw new InvalidArgumentError("--strength", "a number in (0, 1]", strength);
  const maxSide = positiveInt("maxSide", options.maxSide ?? 128, 8);
  const width = positiveInt("width", options.width ?? 32);
  const batch = positiveInt("batch", options.batch ?? 1024);
  const firstIterations = positiveInt("firstIterations", options.firstIterations ?? 150, 0);
  const iterations = positiveInt("iterations", options.iterations ?? 40, 0);
  const pretrainIterations = positiveInt("pretrainIterations", options.pretrainIterations ?? 10, 0);
  const lr = options.lr ?? 1e-3;
  if (!(lr > 0 && lr < 1)) throw new InvalidArgumentError(`${FLAG} (lr)`, "a number in (0, 1)", lr);
  const seed = positiveInt("seed", options.seed ?? 0, 0);
  const encoding = options.encoding ?? "grid";
  const nets: AtlasNets = fitNets({ width, encoding });
  const newAdam = (): Adam => (encoding === "grid" ? atlasAdam(lr) : new Adam({ lr }));

  let info: RenderInfo | undefined;
  let data: AtlasData | undefined;
  /** Frames whose colours are in `data`. */
  const known = new Set<number>();
  let params: Map<string, Float32Array> | undefined;
  /** The last frame whose fitting steps the weights include (−1: none yet). */
  let fittedThrough = -1;
  let runner: StepRunner | undefined;

  const geometry = () => {
    if (!info) throw new Error("internal: atlas fusion used before check()");
    return { ...atlasWorkingSize(info.width, info.height, maxSide), frames: info.frames };
  };

  /** Frames start all black; the source's flows of every consecutive pair, on the working grid. */
  const openData = async (): Promise<AtlasData> => {
    if (data) return data;
    if (!source) throw new InvalidArgumentError(FLAG, "a source video (the flows come from it)", "none");
    const { width: w, height: h, frames: n } = geometry();
    const flowFw: FlowField[] = [];
    const flowBw: FlowField[] = [];
    for (let i = 1; i < n; i++) {
      const pair = await source.flow(i);
      flowFw.push(latentFlow(pair.forward, h, w));
      flowBw.push(latentFlow(pair.backward, h, w));
    }
    data = await prepareAtlasData({
      width: w,
      height: h,
      count: n,
      frames: new Uint8Array(n * w * h * 3),
      flowFw,
      flowBw,
    });
    return data;
  };

  /** Writes frame f's colours and +1 px differences into the data (as prepareAtlasData computes them). */
  const addFrame = async (f: number, image: Image): Promise<void> => {
    const d = await openData();
    const { width: w, height: h } = d;
    const small =
      image.width === w && image.height === h
        ? image
        : await resizeImage(image, { width: w, height: h, interpolation: "area" });
    const base = f * w * h * 3;
    for (let k = 0; k < w * h * 3; k++) d.rgb[base + k] = f32((small.data[k] ?? 0) / 255);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let c = 0; c < 3; c++) {
          const k = base + (y * w + x) * 3 + c;
          if (x + 1 < w) d.dx[k] = f32((d.rgb[k + 3] ?? 0) - (d.rgb[k] ?? 0));
          if (y + 1 < h) d.dy[k] = f32((d.rgb[k + 3 * w] ?? 0) - (d.rgb[k] ?? 0));
        }
    known.add(f);
  };

  /** Initial weights and mapping pre-training (fit.ts's order: mapping1, then mapping2). */
  const initialise = async (): Promise<Map<string, Float32Array>> => {
    const { width: w, height: h, frames: n } = geometry();
    const gen = new TorchGenerator(seed);
    const p = new Map(
      [...initialParameters(nets, (count) => gen.rand([count]).data)].map(([k, v]) => [k, v.data]),
    );
    const shapes = new Map(modelParameterShapes(nets));
    const rng = new TorchRandint(seed);
    for (const net of ["mapping1", "mapping2"] as const) {
      if (pretrainIterations === 0) break;
      const g = new GraphBuilder({ name: `atlas_guided_pretrain_${net}` });
      const names = buildPretrainGraph(g, nets[net], net, PRETRAIN_SAMPLES, LOSS.uvMappingScale);
      const session = await openGraphSession(g);
      try {
        const adam = new Adam({ lr });
        const own = new Map(names.map((name) => [name, p.get(name) as Float32Array]));
        for (let i = 0; i < pretrainIterations; i++)
          for (let f = 0; f < n; f++) {
            const rows = rng.next(h, PRETRAIN_SAMPLES);
            const cols = rng.next(w, PRETRAIN_SAMPLES);
            const feeds: Record<string, HostTensor> = {
              xyt: pretrainXyt(rows, cols, f, n, Math.max(w, h)),
            };
            for (const name of names)
              feeds[name] = tensor("float32", shapes.get(name) ?? [], own.get(name) as Float32Array);
            const out = await session.run(feeds);
            adam.step(
              own,
              new Map(names.map((name) => [name, toFloat32(out[`grad.${name}`] as HostTensor).data])),
            );
          }
      } finally {
        await session.release();
      }
    }
    return p;
  };

  /** Releases the step graph (after the last fit; a render stopped earlier leaves it to GC). */
  const release = async (): Promise<void> => {
    const open = runner;
    runner = undefined;
    await open?.release();
  };

  /** The steps after frame j: batches drawn from frames 0..j (seeded by (seed, j)), a fresh Adam. */
  const fit = async (j: number): Promise<void> => {
    const d = await openData();
    params ??= await initialise();
    const steps = j === 0 ? firstIterations : iterations;
    const last = j + 2 >= d.frames;
    try {
      if (steps > 0) {
        // one step graph for every fit (its data is updated in place); released after the last fit
        runner ??= await openStepRunner(nets, LOSS, d, batch, { globalRigidity: false });
        const adam = newAdam();
        const rng = new TorchRandint((seed + 7919 * (j + 1)) >>> 0);
        const coefficients = coefficientsAt(LOSS, 0, { bootstrapping: false });
        for (let s = 0; s < steps; s++) {
          const indices = rng.next((j + 1) * d.width * d.height, batch);
          const { grads } = await runner.run(params, indices, coefficients);
          adam.step(params, grads);
        }
      }
    } catch (error) {
      await release();
      throw error;
    }
    if (last) await release();
    fittedThrough = j;
  };

  /** Frames 0..i−1 in the data (read back after a resume) and the weights fitted through frame i−1. */
  const catchUp = async (i: number, output: (k: number) => Promise<Image>): Promise<void> => {
    for (let k = 0; k < i; k++) if (!known.has(k)) await addFrame(k, await output(k));
    for (let k = fittedThrough + 1; k < i; k++) await fit(k);
  };

  /** The nets' reconstruction of frame i at the output size, [1, 3, H, W] in [0, 1]. */
  const renderFrame = async (i: number): Promise<HostTensor<"float32">> => {
    const { width: w, height: h, frames: n } = geometry();
    const renderer = await openRenderer(nets, params as Map<string, Float32Array>);
    let rgb: Float32Array;
    try {
      rgb = (await renderer.points(frameXyt(w, h, i, n))).rgb ?? new Float32Array(w * h * 3);
    } finally {
      await renderer.release();
    }
    const pixels = new Uint8Array(w * h * 3);
    for (let k = 0; k < pixels.length; k++)
      pixels[k] = Math.round(Math.min(1, Math.max(0, rgb[k] ?? 0)) * 255);
    const small: Image = { width: w, height: h, channels: 3, data: pixels };
    const { width: W, height: H } = info as RenderInfo;
    const full =
      W === w && H === h ? small : await resizeImage(small, { width: W, height: H, interpolation: "linear" });
    return imageToTensor(full, "0,1");
  };

  return {
    id: "fusion:atlas",
    role: "fusion",
    sequential: true,
    settings: {
      strength,
      maxSide,
      width,
      batch,
      firstIterations,
      iterations,
      pretrainIterations,
      lr,
      seed,
      // absent in the settings of renders made before the grid existed (the release's atlas then)
      ...(encoding === "pe" ? {} : { encoding }),
    },
    check(renderInfo, ctx) {
      if (!ctx.hasSource || !source)
        throw new InvalidArgumentError(FLAG, "a source video (the atlas's flow terms come from it)", "none", {
          hint: "give a source video, or use another --fusion",
        });
      const anchored = ctx.methods.find((m) => m.anchors);
      if (anchored)
        throw new InvalidArgumentError("--attention", `per-frame with ${FLAG}`, anchored.id, {
          hint: "each later frame starts part-way from its atlas rendering (img2img), which cannot share a batch with anchor frames that start from noise",
        });
      const starter = ctx.methods.find((m) => m.start && m.id !== "fusion:atlas");
      if (starter)
        throw new InvalidArgumentError(
          `--controls-from ${starter.id.replace(/^controls:/, "")}`,
          `a controls method without its own img2img start (${FLAG} gives the start)`,
          starter.id,
          { hint: "use --controls-from source or previous-output with --fusion atlas" },
        );
      const mapper = ctx.methods.find((m) => m.sourceIndex || m.outputFrames);
      if (mapper)
        throw new InvalidArgumentError(
          `--controls-from ${mapper.id.replace(/^controls:/, "")}`,
          `one output frame per source frame with ${FLAG} (the atlas's flows are the source's pairs)`,
          mapper.id,
        );
      info = renderInfo;
    },
    async start(ctx) {
      if (ctx.index === 0) return undefined;
      await catchUp(ctx.index, (k) => ctx.output(k));
      return { image: await renderFrame(ctx.index), strength };
    },
    async frameDone(frame) {
      // the steps on it run in the next frame's start (counted in that frame's time; none after the last)
      await addFrame(frame.index, frame.image);
    },
    saveState() {
      if (!params) return {};
      const out: Record<string, HostTensor<"float32">> = {
        fitted_through: tensor("float32", [1], Float32Array.of(fittedThrough)),
      };
      for (const [name, shape] of modelParameterShapes(nets))
        out[`param.${name}`] = tensor("float32", shape, Float32Array.from(params.get(name) ?? []));
      return out;
    },
    loadState(state) {
      const through = state["fitted_through"]?.data[0];
      if (through === undefined) return;
      const loaded = new Map<string, Float32Array>();
      for (const [name, shape] of modelParameterShapes(nets)) {
        const t = state[`param.${name}`];
        const count = shape.reduce((a, b) => a * b, 1);
        // weights of other settings: refit from the finished frames instead
        if (!t || t.data.length !== count) return;
        loaded.set(name, Float32Array.from(t.data));
      }
      params = loaded;
      fittedThrough = through;
    },
  };
}
