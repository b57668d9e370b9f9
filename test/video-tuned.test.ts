/**
 * `steadyframe video --tuned DIR` (Tune-A-Video through the render path): a model tuned for one step on
 * the bundled clip (tiny-sd, 4 frames of 32x32) renders the clip from its DDIM inversion with an
 * edited prompt; the published frames equal generateTuneAVideo's exactly; strategy flags are refused.
 */
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/cli/main.js";
import { readImageFile } from "../src/control/png.js";
import { generateTuneAVideo } from "../src/pipeline/tune-a-video.js";
import { tuneAVideo } from "../src/train/tune-a-video.js";
import { captureIO } from "./helpers/cli-io.js";
import { GOLDEN } from "./helpers/golden-fixture.js";

const CLIP = "test/fixtures/videos/car-turn-9f.mp4";
let dir = "";
let tuned = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sf-video-tuned-"));
  tuned = join(dir, "tuned");
  await tuneAVideo({
    model: join(GOLDEN, "tiny-sd"),
    video: CLIP,
    prompt: "a car turning",
    out: tuned,
    maxTrainSteps: 1,
    nSampleFrames: 4,
    sampleFrameRate: 2,
    width: 32,
    height: 32,
    learningRate: 1e-3,
    seed: 5,
  });
}, 180_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const run = async (argv: string[]) => {
  const io = captureIO();
  const code = await main(argv, io);
  return { code, out: io.out(), err: io.err() };
};

describe("steadyframe video --tuned", () => {
  it("renders the tuned clip from its inversion; frames equal generateTuneAVideo's", async () => {
    const out = join(dir, "edited");
    const r = await run(["video", "--tuned", tuned, "--prompt", "a red car", "--steps", "2", "--out", out]);
    expect(r.err, r.err).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    const names = (await readdir(out)).filter((f) => f.endsWith(".png")).sort();
    expect(names.length).toBe(4);
    const reference = await generateTuneAVideo({ tuned, prompt: "a red car", numInferenceSteps: 2 });
    for (const [i, name] of names.entries()) {
      const got = await readImageFile(join(out, name));
      expect([got.width, got.height]).toEqual([32, 32]);
      expect(Buffer.compare(Buffer.from(got.data), Buffer.from(reference.frames[i]!.data)), name).toBe(0);
    }
    const runJson = JSON.parse(await readFile(join(out, "run.json"), "utf8")) as { strategy: string };
    expect(runJson.strategy).toBe("tune-a-video");
  }, 240_000);

  it("refuses per-frame strategy flags and a missing folder, naming them", async () => {
    const strategy = await run([
      "video",
      "--tuned",
      tuned,
      "--prompt",
      "x",
      "--attention",
      "first",
      "--out",
      join(dir, "a"),
    ]);
    expect(strategy.code).not.toBe(0);
    expect(strategy.err).toContain("--attention");
    const missing = await run([
      "video",
      "--tuned",
      join(dir, "nope"),
      "--prompt",
      "x",
      "--out",
      join(dir, "b"),
    ]);
    expect(missing.code).not.toBe(0);
    expect(missing.err).toContain("--tuned");
    expect((await run(["video", "--help"])).out).toContain("--tuned DIR");
  });
});
