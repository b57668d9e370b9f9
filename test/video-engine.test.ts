/**
 * The video engine (src/engine) on the tiny pipeline and the bundled car-turn clip:
 * - parity: diffusers' Text2Video-Zero ControlNet recipe through the engine (golden fixture);
 * - anchors are exact: `first`, `keyframes` and `first+previous` attention give the same frames
 *   whatever --batch (`first+previous` through the keys/values each frame left in the store);
 * - the anchor cache: cached anchors are fed instead of denoised again, with the same frames, and a
 *   budget too small for them falls back to denoising them;
 * - `per-frame` noise is the study's seed + i: frame i equals `image --seed <seed + i>`;
 * - kill and resume: a render killed mid-way (SIGKILL) and resumed equals an uninterrupted one;
 * - bad input gets a typed error naming the option, before anything is written.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/cli/main.js";
import { InvalidArgumentError } from "../src/errors.js";
import { runConformance } from "../src/conformance/run.js";
import { MemoryFrameStore } from "../src/engine/frame-store.js";
import { generateVideo, type GenerateVideoResult } from "../src/engine/generate-video.js";
import { cannyAnnotator } from "../src/engine/methods/annotator.js";
import { SourceVideo } from "../src/engine/source.js";
import { strategyMethods, type Strategy } from "../src/engine/strategies.js";
import { WorkFolder } from "../src/engine/work-folder.js";
import type { VideoMethod } from "../src/engine/method.js";
import { TorchGenerator } from "../src/random/torch-generator.js";
import type { Image } from "../src/image.js";
import { maxAbsDiff, type HostTensor } from "../src/tensor.js";
import { StableDiffusionPipeline } from "../src/pipeline/stable-diffusion.js";
import { imageToTensor, tensorToImages } from "../src/pipeline/images.js";
import { captureIO } from "./helpers/cli-io.js";

const GOLDEN = "test/fixtures/golden";
const MODEL = `${GOLDEN}/tiny-sd`;
const CONTROLNET = `${GOLDEN}/tiny-sd/controlnet`;
const CLIP = "test/fixtures/videos/car-turn-9f.mp4";
const SIZE = { width: 64, height: 64 };

const base: Strategy = { controlsFrom: "source", noise: "shared", attention: "first", fusion: "none" };

/** Frames of one engine run with the tiny pipeline (loaded with the strategy's cross-frame setting). */
async function render(
  strategy: Strategy,
  batch: number,
  frames = 5,
  seed = 3n,
  extra: { anchorCacheMiB?: number; only?: (i: number) => boolean } = {},
  store = new MemoryFrameStore(),
): Promise<{ images: Image[]; latents: HostTensor[]; result: GenerateVideoResult; store: MemoryFrameStore }> {
  const source = await SourceVideo.open(CLIP, { ...SIZE, maxFrames: frames });
  const methods = strategyMethods(strategy, { annotators: [cannyAnnotator()], videos: 2, source });
  const crossFrame = methods.find((m) => m.crossFrame)?.crossFrame?.();
  const sd = await StableDiffusionPipeline.load(MODEL, {
    controlnets: [CONTROLNET],
    ...(crossFrame ? { crossFrame } : {}),
  });
  try {
    const latents: HostTensor[] = [];
    const result = await generateVideo(sd.videoComponents("ddim"), {
      ...extra,
      prompt: "a red car on a road",
      ...SIZE,
      frames,
      numInferenceSteps: 3,
      guidanceScale: 7.5,
      seed,
      methods,
      batch,
      source,
      controls: [{ scale: 1 }],
      store,
      trace: (name, value) => {
        const m = /^frame(\d+)\.latents$/.exec(name);
        if (m) latents[Number(m[1])] = value;
      },
    });
    return {
      images: Array.from({ length: frames }, (_, i) => store.images.get(i)!),
      latents,
      result,
      store,
    };
  } finally {
    await sd.release();
    await source.close();
  }
}

function maxPixelDiff(a: Image, b: Image): number {
  expect([a.width, a.height, a.channels]).toEqual([b.width, b.height, b.channels]);
  let m = 0;
  for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs((a.data[i] ?? 0) - (b.data[i] ?? 0)));
  return m;
}

/** Text-to-image of source frame `i`'s Canny map with `seed` (the engine's per-frame reference). */
async function imageOfFrame(
  sd: StableDiffusionPipeline,
  source: SourceVideo,
  i: number,
  seed: number,
  options: { guessMode?: boolean; scale?: number } = {},
): Promise<Image> {
  const control = await cannyAnnotator().annotate(await source.frame(i));
  const rgb = {
    ...control,
    channels: 3 as const,
    data: new Uint8Array(control.width * control.height * 3).map(
      (_, k) => control.data[Math.floor(k / 3)] ?? 0,
    ),
  };
  const { image } = await sd.generate({
    prompt: "a red car on a road",
    ...SIZE,
    numInferenceSteps: 3,
    guidanceScale: 7.5,
    seed,
    scheduler: "ddim",
    ...(options.guessMode === undefined ? {} : { guessMode: options.guessMode }),
    controls: [
      { image: imageToTensor(rgb, "0,1"), ...(options.scale === undefined ? {} : { scale: options.scale }) },
    ],
  });
  return tensorToImages(image)[0]!;
}

describe("video engine", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "sf-video-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reproduces diffusers' Text2Video-Zero ControlNet video (cross-frame attention, shared latent)", async () => {
    const results = await runConformance([`${GOLDEN}/pipeline_video_controlnet`]);
    const rows = results.flatMap((r) => r.rows);
    expect(rows.length).toBeGreaterThanOrEqual(19);
    expect(rows.filter((r) => !r.pass)).toEqual([]);
  });

  it("a noise method's stepNoise generator draws each step's noise for the whole batch at once", async () => {
    // What a reference pipeline with one `generator` does (DDIM eta > 0): randn([frames, C, h, w]).
    const source = await SourceVideo.open(CLIP, { ...SIZE, maxFrames: 2 });
    const sd = await StableDiffusionPipeline.load(MODEL, { controlnets: [CONTROLNET] });
    try {
      const run = async (shared: TorchGenerator | undefined): Promise<HostTensor[]> => {
        const latents: HostTensor[] = [];
        const strategy: Strategy = { ...base, attention: "per-frame", noise: "per-frame" };
        const methods = strategyMethods(strategy, { annotators: [cannyAnnotator()], videos: 2, source });
        const noise = methods.find((m) => m.initialNoise)!;
        const withStep: VideoMethod = shared
          ? {
              ...noise,
              stepNoise: (slots) => {
                expect(slots).toEqual([0, 1]);
                return {
                  randn: (shape) => {
                    draws.push([...shape]);
                    return shared.randn(shape);
                  },
                };
              },
            }
          : noise;
        await generateVideo(sd.videoComponents("ddim"), {
          prompt: "a red car on a road",
          ...SIZE,
          frames: 2,
          numInferenceSteps: 3,
          guidanceScale: 7.5,
          eta: 0.8,
          seed: 3n,
          methods: methods.map((m) => (m === noise ? withStep : m)),
          batch: 2,
          source,
          controls: [{ scale: 1 }],
          store: new MemoryFrameStore(),
          trace: (name, value) => {
            const m = /^frame(\d+)\.latents$/.exec(name);
            if (m) latents[Number(m[1])] = value;
          },
        });
        return latents;
      };
      const draws: number[][] = [];
      const own = await run(undefined);
      const one = await run(new TorchGenerator(11));
      // 3 DDIM steps; the last one (t = 1 -> previous alpha of step 0) draws too when eta > 0.
      expect(draws.length).toBeGreaterThanOrEqual(2);
      for (const d of draws) expect(d).toEqual([2, 4, 32, 32]);
      expect(maxAbsDiff(own[0]!, one[0]!)).toBeGreaterThan(1e-3);
      // The same generator again gives the same frames: the draws are the only change.
      const again = await run(new TorchGenerator(11));
      expect(maxAbsDiff(one[1]!, again[1]!)).toBe(0);
    } finally {
      await sd.release();
      await source.close();
    }
  });

  it("anchor frames are exact: `first`, `keyframes` and `first+previous` give the same video with --batch 1 and larger batches", async () => {
    for (const [strategy, big] of [
      [base, 5],
      [{ ...base, attention: "keyframes", keyframes: 3 } as Strategy, 2],
    ] as const) {
      const one = (await render(strategy, 1)).latents;
      const many = (await render(strategy, big)).latents;
      // The same numbers up to the kernels' batch-size rounding.
      for (let i = 0; i < one.length; i++) expect(maxAbsDiff(one[i]!, many[i]!)).toBeLessThan(2e-5);
    }
    // The previous frame's keys/values from the store: every batch size gives the whole-video batch.
    const causal: Strategy = { ...base, attention: "first+previous" };
    const whole = await render(causal, 5);
    expect(whole.result.denoisedSlots).toBe(5);
    expect(whole.result.storedKeyValues).toEqual([]);
    for (const batch of [1, 2]) {
      const split = await render(causal, batch);
      // Each frame denoised once; the frames later batches read were stored, and dropped when done.
      expect(split.result.denoisedSlots).toBe(5);
      expect(split.result.storedKeyValues).toEqual(batch === 1 ? [0, 1, 2, 3] : [0, 1, 3]);
      expect(split.store.attention.size).toBe(0);
      for (let i = 0; i < 5; i++) expect(maxAbsDiff(split.latents[i]!, whole.latents[i]!)).toBeLessThan(2e-5);
    }
    // Sparse-causal differs from `first` from frame 2 on (frame 1 reads frame 0 twice: the same
    // attention up to rounding).
    const first = (await render(base, 5)).latents;
    expect(maxAbsDiff(whole.latents[1]!, first[1]!)).toBeLessThan(1e-4);
    expect(maxAbsDiff(whole.latents[3]!, first[3]!)).toBeGreaterThan(1e-3);
    // And the method matters: per-frame attention gives other frames (frame 0 attends to itself in both).
    const perFrame = (await render({ ...base, attention: "per-frame" }, 1)).latents;
    const firstOne = (await render(base, 1)).latents;
    expect(maxAbsDiff(perFrame[0]!, firstOne[0]!)).toBeLessThan(2e-5);
    expect(maxAbsDiff(perFrame[3]!, firstOne[3]!)).toBeGreaterThan(1e-2);
  }, 240_000);

  it("the anchor cache feeds frame 0 / the key frames to later batches instead of denoising them again", async () => {
    const cases = [
      // [strategy, batch, slots with the cache, slots without, cached frames]
      [base, 2, 5, 7, [0]],
      [{ ...base, attention: "keyframes", keyframes: 2 } as Strategy, 2, 5, 9, [0, 4]],
      [{ ...base, attention: "first+previous" } as Strategy, 2, 5, 5, [0]],
    ] as const;
    for (const [strategy, batch, cachedSlots, plainSlots, frames] of cases) {
      const cached = await render(strategy, batch);
      const plain = await render(strategy, batch, 5, 3n, { anchorCacheMiB: 0 });
      expect(cached.result.denoisedSlots, strategy.attention).toBe(cachedSlots);
      expect(plain.result.denoisedSlots, strategy.attention).toBe(plainSlots);
      expect(cached.result.anchorCache?.frames).toEqual(frames);
      expect(cached.result.anchorCache?.stopped).toBeUndefined();
      expect(plain.result.anchorCache).toBeUndefined();
      for (let i = 0; i < 5; i++)
        expect(maxAbsDiff(cached.latents[i]!, plain.latents[i]!)).toBeLessThan(2e-5);
    }
    // A budget too small for one frame's keys/values: recording stops, anchors are denoised again.
    const small = await render(base, 2, 5, 3n, { anchorCacheMiB: 0.01 });
    expect(small.result.anchorCache?.stopped).toMatch(/budget/);
    expect(small.result.anchorCache?.frames).toEqual([]);
    expect(small.result.anchorCache?.bytes).toBe(0);
    expect(small.result.denoisedSlots).toBe(7);
  }, 240_000);

  it("first+previous refuses to go on when a finished frame's stored keys/values are gone", async () => {
    const causal: Strategy = { ...base, attention: "first+previous" };
    const store = new MemoryFrameStore();
    const part = await render(causal, 1, 4, 3n, { only: (i) => i < 2 }, store);
    expect(part.result.storedKeyValues).toEqual([0, 1]);
    expect([...store.attention.keys()].sort()).toEqual([0, 1]); // both still read by frames 2 and 3
    store.attention.delete(1);
    const error = await render(causal, 1, 4, 3n, {}, store).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(String(error)).toMatch(/keys\/values of finished frame 1 .*attention:first\+previous.*delete it/);
    expect(store.images.has(2)).toBe(false);
  }, 120_000);

  it("`per-frame` noise is the study's seed + i: frame i equals text-to-image with seed + i", async () => {
    const video = (await render({ ...base, noise: "per-frame", attention: "per-frame" }, 1, 3, 11n)).images;
    const source = await SourceVideo.open(CLIP, SIZE);
    const sd = await StableDiffusionPipeline.load(MODEL, { controlnets: [CONTROLNET] });
    try {
      for (let i = 0; i < 3; i++)
        expect(maxPixelDiff(await imageOfFrame(sd, source, i, 11 + i), video[i]!)).toBe(0);
    } finally {
      await sd.release();
      await source.close();
    }
  }, 120_000);

  it("guess mode: frame i equals text-to-image in guess mode with seed + i (the nets see the cond half)", async () => {
    const source = await SourceVideo.open(CLIP, { ...SIZE, maxFrames: 2 });
    const strategy: Strategy = { ...base, noise: "per-frame", attention: "per-frame" };
    const methods = strategyMethods(strategy, { annotators: [cannyAnnotator()], videos: 2, source });
    const sd = await StableDiffusionPipeline.load(MODEL, { controlnets: [CONTROLNET], guessMode: true });
    try {
      const videoOf = async (guessMode: boolean): Promise<Image[]> => {
        const store = new MemoryFrameStore();
        await generateVideo(sd.videoComponents("ddim"), {
          prompt: "a red car on a road",
          ...SIZE,
          frames: 2,
          numInferenceSteps: 3,
          guidanceScale: 7.5,
          seed: 11n,
          methods,
          batch: 2,
          source,
          controls: [{ scale: 0.8 }],
          store,
          guessMode,
        });
        return [0, 1].map((i) => store.images.get(i)!);
      };
      const video = await videoOf(true);
      for (let i = 0; i < 2; i++)
        expect(
          maxPixelDiff(await imageOfFrame(sd, source, i, 11 + i, { guessMode: true, scale: 0.8 }), video[i]!),
        ).toBe(0);
      // the option is read: the same nets without guess mode give other frames
      const plain = await videoOf(false);
      expect(maxPixelDiff(plain[0]!, video[0]!)).toBeGreaterThan(0);
    } finally {
      await sd.release();
      await source.close();
    }
  }, 120_000);

  const videoArgs = (out: string, extra: string[] = []): string[] => [
    "video",
    CLIP,
    "--model",
    MODEL,
    "--controlnet",
    CONTROLNET,
    "--prompt",
    "a red car on a road",
    "--size",
    "64x64",
    "--frames",
    "6",
    "--steps",
    "3",
    "--scheduler",
    "ddim",
    "--noise",
    "flow-warped",
    "--attention",
    "first+previous",
    "--fusion",
    "flow",
    "--seed",
    "5",
    "--out",
    out,
    ...extra,
  ];

  it("a render killed mid-way resumes with --resume and equals an uninterrupted one, frame for frame", async () => {
    const whole = join(dir, "whole");
    const io = captureIO();
    expect(await main(videoArgs(whole), io)).toBe(0);

    const killed = join(dir, "killed");
    const partial = `${killed}.steadyframe-partial`;
    const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...videoArgs(killed)], {
      stdio: "ignore",
    });
    const exited = new Promise((resolve) => child.on("exit", resolve));
    // Kill it (no chance to clean up) once two frames are finished.
    for (let t = 0; t < 1200; t++) {
      const done = await readdir(join(partial, "frames")).catch(() => [] as string[]);
      if (done.filter((n) => n.endsWith(".png")).length >= 2) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    child.kill("SIGKILL");
    await exited;
    const before = (await readdir(join(partial, "frames"))).filter((n) => n.endsWith(".png"));
    expect(before.length).toBeGreaterThanOrEqual(2);
    expect(before.length).toBeLessThan(6);
    expect(existsSync(killed)).toBe(false);
    // first+previous: frame 0's and the last finished frame's attention keys/values are on disk.
    const kept = await readdir(join(partial, "keyvalues"));
    const last = `frame_${String(before.length - 1).padStart(6, "0")}`;
    expect(kept).toEqual(expect.arrayContaining(["frame_000000", last]));
    expect((await readdir(join(partial, "keyvalues", last))).sort()).toEqual([
      "step_00.safetensors",
      "step_01.safetensors",
      "step_02.safetensors",
    ]);

    // Without --resume it refuses to start over the unfinished render.
    const refused = captureIO();
    expect(await main(videoArgs(killed), refused)).toBe(2);
    expect(refused.err()).toMatch(/--resume/);

    const resumed = captureIO();
    expect(await main(videoArgs(killed, ["--resume", "--json"]), resumed)).toBe(0);
    const summary = JSON.parse(resumed.out()) as { generated: number; frames: number };
    expect(summary.frames).toBe(6);
    expect(summary.generated).toBe(6 - before.length);
    expect(existsSync(partial)).toBe(false);
    for (let i = 0; i < 6; i++) {
      const name = `frame_${String(i).padStart(6, "0")}.png`;
      expect(Buffer.compare(await readFile(join(whole, name)), await readFile(join(killed, name)))).toBe(0);
    }
    const run = JSON.parse(await readFile(join(killed, "run.json"), "utf8")) as { secondsPerFrame: number[] };
    expect(run.secondsPerFrame).toHaveLength(6);
    expect(existsSync(join(killed, "metrics.json"))).toBe(true);
  }, 300_000);

  it("refuses what cannot work, naming the option, before writing anything", async () => {
    const cases: [string[], RegExp][] = [
      [["--controls-from", "previous-output", "--out", join(dir, "a")], /--controls-from previous-output/],
      [["--controls-from", "content-flow", "--out", join(dir, "b")], /--controls-from content-flow/],
      [["--frames", "40", "--out", join(dir, "c")], /--frames/],
      [["--resume", "--out", join(dir, "d")], /--resume/],
      [["--noise", "sideways", "--out", join(dir, "e")], /--noise/],
      [["--attention", "keyframes", "--fusion", "flow", "--out", join(dir, "f")], /--fusion flow/],
    ];
    for (const [extra, message] of cases) {
      const io = captureIO();
      const args = [
        "video",
        CLIP,
        "--model",
        MODEL,
        "--prompt",
        "x",
        "--size",
        "64x64",
        ...(extra.includes("previous-output") ? [] : ["--controlnet", CONTROLNET]),
        ...extra,
      ];
      expect(await main(args, io), io.err()).toBe(2);
      expect(io.err()).toMatch(message);
      const out = extra[extra.indexOf("--out") + 1]!;
      expect(existsSync(out)).toBe(false);
      expect(existsSync(`${out}.steadyframe-partial`)).toBe(false);
    }
    // Resuming with other settings names the ones that differ.
    const out = join(dir, "other");
    await WorkFolder.open(out, { steps: 3, seed: "5" }, false);
    await expect(WorkFolder.open(out, { steps: 4, seed: "5" }, true)).rejects.toThrow(
      /other values of: steps/,
    );
    await expect(WorkFolder.open(out, { steps: 3, seed: "5" }, false)).rejects.toThrow(/--resume/);
    expect((await WorkFolder.open(out, { steps: 3, seed: "5" }, true)).dir).toBe(
      `${out}.steadyframe-partial`,
    );
  }, 120_000);
});
