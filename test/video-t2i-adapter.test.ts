/**
 * T2I-Adapter in the video engine, on the tiny pipeline and the bundled car-turn clip:
 * - with `per-frame` noise, frame i equals text-to-image with the adapter on the same control map
 *   (the map resized to the latent size times the adapter's downscale_factor) and seed + i;
 * - `steadyframe video --t2i-adapter`: scale 0 gives the plain video exactly, scale 1 changes it;
 * - a motion pipeline refuses it with the fix.
 */
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/cli/main.js";
import { resizeImage } from "../src/control/resize.js";
import { MemoryFrameStore } from "../src/engine/frame-store.js";
import { generateVideo, toRgb } from "../src/engine/generate-video.js";
import { cannyAnnotator } from "../src/engine/methods/annotator.js";
import { SourceVideo } from "../src/engine/source.js";
import { strategyMethods } from "../src/engine/strategies.js";
import { imageToTensor, tensorToImages } from "../src/pipeline/images.js";
import { StableDiffusionPipeline } from "../src/pipeline/stable-diffusion.js";
import { captureIO } from "./helpers/cli-io.js";

const GOLDEN = "test/fixtures/golden";
const MODEL = `${GOLDEN}/tiny-sd`;
const ADAPTER = `${GOLDEN}/t2i_adapter/adapter`;
const CLIP = "test/fixtures/videos/car-turn-9f.mp4";
const SIZE = { width: 64, height: 64 };

describe("T2I-Adapter in the video engine", () => {
  let dir = "";
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "sf-video-t2i-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("per-frame noise: frame i equals text-to-image with the adapter, its control map and seed + i", async () => {
    const source = await SourceVideo.open(CLIP, { ...SIZE, maxFrames: 2 });
    const sd = await StableDiffusionPipeline.load(MODEL, { t2iAdapter: ADAPTER });
    try {
      const methods = strategyMethods(
        { controlsFrom: "source", noise: "per-frame", attention: "per-frame", fusion: "none" },
        { annotators: [cannyAnnotator()], videos: 2, source },
      );
      const store = new MemoryFrameStore();
      await generateVideo(sd.videoComponents("ddim"), {
        prompt: "a red car on a road",
        ...SIZE,
        frames: 2,
        numInferenceSteps: 2,
        guidanceScale: 7.5,
        seed: 4,
        methods,
        source,
        controls: [{ scale: 0.8 }],
        store,
      });
      for (let i = 0; i < 2; i++) {
        // 64x64 output, VAE factor 2, adapter downscale 8: the adapter sees the map at 256x256
        const map = toRgb(await cannyAnnotator().annotate(await source.frame(i)));
        const big = await resizeImage(map, { width: 256, height: 256, interpolation: "linear" });
        const { image } = await sd.generate({
          prompt: "a red car on a road",
          ...SIZE,
          numInferenceSteps: 2,
          guidanceScale: 7.5,
          seed: 4 + i,
          scheduler: "ddim",
          t2iAdapterControl: { image: imageToTensor(big, "0,1"), scale: 0.8 },
        });
        const expected = tensorToImages(image)[0]!;
        const got = store.images.get(i)!;
        expect(Buffer.compare(Buffer.from(expected.data), Buffer.from(got.data)), `frame ${i}`).toBe(0);
      }
    } finally {
      await sd.release();
      await source.close();
    }
  }, 120_000);

  const run = async (argv: string[]) => {
    const io = captureIO();
    const code = await main(argv, io);
    return { code, out: io.out(), err: io.err() };
  };
  const args = (out: string, extra: string[]): string[] => [
    "video",
    CLIP,
    "--model",
    MODEL,
    "--prompt",
    "a red car on a road",
    "--size",
    "64x64",
    "--frames",
    "3",
    "--steps",
    "2",
    "--scheduler",
    "ddim",
    "--attention",
    "first",
    "--cache-dir",
    join(dir, "cache"),
    "--out",
    out,
    ...extra,
  ];

  it("steadyframe video --t2i-adapter: scale 0 is the plain video exactly, scale 1 changes it", async () => {
    const outs = ["plain", "zero", "one"].map((n) => join(dir, n));
    const extras = [
      [],
      ["--t2i-adapter", ADAPTER, "--control", "canny", "--control-scale", "0"],
      ["--t2i-adapter", ADAPTER, "--control-scale", "1"],
    ];
    for (const [k, out] of outs.entries()) {
      const r = await run(args(out, extras[k] ?? []));
      expect(r.err, r.err).not.toMatch(/error/i);
      expect(r.code).toBe(0);
    }
    const frames = async (d: string) =>
      Promise.all(
        (await readdir(d))
          .filter((f) => f.endsWith(".png"))
          .sort()
          .map((f) => readFile(join(d, f))),
      );
    const [plain, zero, one] = await Promise.all(outs.map(frames));
    expect(plain?.length).toBe(3);
    plain?.forEach((png, i) =>
      expect(Buffer.compare(png, zero?.[i] ?? Buffer.alloc(0)), `frame ${i}`).toBe(0),
    );
    expect(plain?.some((png, i) => Buffer.compare(png, one?.[i] ?? Buffer.alloc(0)) !== 0)).toBe(true);
    const run1 = JSON.parse(await readFile(join(outs[2]!, "run.json"), "utf8")) as {
      settings: { t2iAdapter?: { control: string; scale: number } };
    };
    expect(run1.settings.t2iAdapter).toMatchObject({ control: "canny", scale: 1 });
  }, 180_000);

  it("refuses a second map, and a motion pipeline, naming the flag", async () => {
    const twice = await run(
      args(join(dir, "x"), ["--t2i-adapter", ADAPTER, "--control", "canny", "--control", "depth"]),
    );
    expect(twice.code).not.toBe(0);
    expect(twice.err).toContain("at most one per --controlnet and --t2i-adapter (1)");
    const motion = await run(
      args(join(dir, "y"), [
        "--t2i-adapter",
        ADAPTER,
        "--motion-adapter",
        `${GOLDEN}/unet_motion/motion_adapter`,
      ]).filter((a) => a !== "--attention" && a !== "first"),
    );
    expect(motion.code).not.toBe(0);
    expect(motion.err).toContain("--t2i-adapter");
    expect(motion.err).toContain("per-frame strategies");
    expect((await run(["video", "--help"])).out).toContain("--t2i-adapter DIR");
  });
});
