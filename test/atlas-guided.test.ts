/**
 * Atlas-guided generation (`--fusion atlas`, src/engine/methods/atlas-guided.ts) on the tiny pipeline
 * and the bundled car-turn clip, with tiny atlas nets: every frame renders, the frames differ from
 * the same render without the atlas, two runs are equal, a render stopped after two frames and
 * resumed (from the stored state, and by refitting from the finished frames when the state is gone)
 * equals an uninterrupted one, and combinations that cannot work are refused naming the flag.
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/cli/main.js";
import { MemoryFrameStore } from "../src/engine/frame-store.js";
import { generateVideo } from "../src/engine/generate-video.js";
import type { VideoMethod } from "../src/engine/method.js";
import { cannyAnnotator } from "../src/engine/methods/annotator.js";
import { atlasGuided, atlasWorkingSize } from "../src/engine/methods/atlas-guided.js";
import { sourceControls } from "../src/engine/methods/controls-source.js";
import { sharedNoise } from "../src/engine/methods/noise-shared.js";
import { SourceVideo } from "../src/engine/source.js";
import { FUSION, parseStrategy, strategyMethods, type Strategy } from "../src/engine/strategies.js";
import type { Image } from "../src/image.js";
import { StableDiffusionPipeline } from "../src/pipeline/stable-diffusion.js";
import { captureIO } from "./helpers/cli-io.js";

const MODEL = "test/fixtures/golden/tiny-sd";
const CONTROLNET = `${MODEL}/controlnet`;
const CLIP = "test/fixtures/videos/car-turn-9f.mp4";
const SIZE = { width: 64, height: 64 };
const FRAMES = 4;
const TINY = { width: 8, batch: 256, firstIterations: 6, iterations: 3, pretrainIterations: 1, maxSide: 32 };

describe("atlas-guided generation (--fusion atlas)", () => {
  let sd: StableDiffusionPipeline;
  let source: SourceVideo;
  let dir: string;
  beforeAll(async () => {
    sd = await StableDiffusionPipeline.load(MODEL, { controlnets: [CONTROLNET] });
    source = await SourceVideo.open(CLIP, { ...SIZE, maxFrames: FRAMES });
    dir = await mkdtemp(join(tmpdir(), "sf-atlas-guided-"));
  });
  afterAll(async () => {
    await sd?.release();
    await source?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const methodsOf = (atlas: boolean): VideoMethod[] => [
    sourceControls([cannyAnnotator()]),
    sharedNoise(),
    ...(atlas ? [atlasGuided(source, { strength: 0.7, ...TINY })] : []),
  ];

  const run = async (
    atlas: boolean,
    store = new MemoryFrameStore(),
    only?: (i: number) => boolean,
  ): Promise<MemoryFrameStore> => {
    await generateVideo(sd.videoComponents("ddim"), {
      prompt: "a red car on a road",
      ...SIZE,
      frames: FRAMES,
      numInferenceSteps: 2,
      guidanceScale: 7.5,
      seed: 4n,
      methods: methodsOf(atlas),
      source,
      controls: [{ scale: 1 }],
      store,
      ...(only ? { only } : {}),
    });
    return store;
  };

  const frames = (store: MemoryFrameStore): Image[] =>
    Array.from({ length: FRAMES }, (_, i) => {
      const img = store.images.get(i);
      expect(img, `frame ${i}`).toBeDefined();
      return img!;
    });
  const maxDiff = (a: Image, b: Image): number => {
    let m = 0;
    for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs((a.data[i] ?? 0) - (b.data[i] ?? 0)));
    return m;
  };

  let whole: Image[];

  it("renders every frame, differs from the plain strategy from frame 1 on, and is deterministic", async () => {
    whole = frames(await run(true));
    const plain = frames(await run(false));
    // frame 0 is generated before any atlas exists; later frames start from its rendering
    expect(maxDiff(whole[0]!, plain[0]!)).toBe(0);
    for (let i = 1; i < FRAMES; i++) expect(maxDiff(whole[i]!, plain[i]!), `frame ${i}`).toBeGreaterThan(0);
    const again = frames(await run(true));
    for (let i = 0; i < FRAMES; i++) expect(maxDiff(whole[i]!, again[i]!), `frame ${i}`).toBe(0);
  }, 60_000);

  it("a render stopped after two frames resumes to the same frames (stored state, and refit without it)", async () => {
    const store = await run(true, new MemoryFrameStore(), (i) => i < 2);
    expect([...store.images.keys()].sort()).toEqual([0, 1]);
    expect(Object.keys(store.recipes.get(1)!.state).some((k) => k.startsWith("fusion:atlas/param."))).toBe(
      true,
    );
    // the default atlas is the grid-encoded one: its tables are part of the stored state
    expect(store.recipes.get(1)!.state["fusion:atlas/param.atlas.grid.0"]?.shape).toEqual([256, 2]);
    // without the method's state the weights are refitted from the finished frames
    const stateless = new MemoryFrameStore();
    for (const i of [0, 1]) {
      const recipe = store.recipes.get(i)!;
      const state = Object.fromEntries(
        Object.entries(recipe.state).filter(([k]) => !k.startsWith("fusion:atlas/")),
      );
      await stateless.put(i, store.images.get(i)!, { ...recipe, state });
    }
    for (const resumed of [await run(true, store), await run(true, stateless)]) {
      const got = frames(resumed);
      for (let i = 0; i < FRAMES; i++) expect(maxDiff(got[i]!, whole[i]!), `frame ${i}`).toBe(0);
    }
  }, 60_000);

  it("is a fusion strategy value: parsed for video and study, and built by strategyMethods", () => {
    expect(FUSION).toContain("atlas");
    const defaults: Strategy = {
      controlsFrom: "source",
      noise: "shared",
      attention: "first",
      fusion: "none",
    };
    const s = parseStrategy("source/shared/per-frame/atlas", defaults);
    expect(s.fusion).toBe("atlas");
    const methods = strategyMethods({ ...s, strength: 0.5 }, { annotators: [], videos: 2, source });
    const atlas = methods.find((m) => m.id === "fusion:atlas");
    expect(atlas?.sequential).toBe(true);
    expect(atlas?.settings?.["strength"]).toBe(0.5);
    expect(atlas?.settings?.["encoding"]).toBe("grid");
    expect(atlasGuided(source, { encoding: "pe" }).settings?.["encoding"]).toBeUndefined();
    expect(atlasWorkingSize(512, 288, 128)).toEqual({ width: 128, height: 72 });
    expect(atlasWorkingSize(64, 64, 128)).toEqual({ width: 64, height: 64 });
    expect(() => atlasGuided(source, { width: 0 })).toThrow(/--fusion atlas/);
  });

  it("refuses combinations that cannot work, naming the flag, before writing anything", async () => {
    const cases: [string[], RegExp][] = [
      [["--frames", "3", "--attention", "per-frame"], /source video.*for --fusion atlas/],
      [[CLIP, "--controlnet", CONTROLNET], /per-frame with --fusion atlas for --attention/],
      [[CLIP, "--attention", "per-frame", "--controls-from", "content-flow"], /--controls-from content-flow/],
      [
        [CLIP, "--controlnet", CONTROLNET, "--attention", "per-frame", "--controls-from", "interpolated"],
        /--controls-from interpolated/,
      ],
      [[CLIP, "--controlnet", CONTROLNET, "--attention", "per-frame", "--strength", "0"], /--strength/],
    ];
    for (const [k, [extra, message]] of cases.entries()) {
      const out = join(dir, `bad${k}`);
      const io = captureIO();
      const args = ["video", ...extra, "--model", MODEL, "--prompt", "x", "--size", "64x64"];
      expect(await main([...args, "--fusion", "atlas", "--out", out], io), io.err()).toBe(2);
      expect(io.err()).toMatch(message);
      expect(existsSync(out)).toBe(false);
      expect(existsSync(`${out}.steadyframe-partial`)).toBe(false);
    }
  }, 60_000);
});
