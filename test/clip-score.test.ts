/**
 * CLIP-T / CLIP-F (issue 9 item 4) by construction: identical frames give CLIP-F = 1, a tiny CLIPModel
 * folder assembled from the golden fixtures' towers (tiny-sd text encoder + clip_vision/model + a
 * random text_projection) gives text_embeds = pooler_output W^T and image_embeds equal to the vision
 * runner's, and the scores are the means of those cosines. (The golden clip.* values are checked by
 * the clip_vision conformance kind, test/clip-vision.test.ts.)
 */
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { metricsCommand } from "../src/cli/commands/metrics.js";
import { InvalidArgumentError } from "../src/errors.js";
import { image } from "../src/image.js";
import {
  ClipScorer,
  clipF,
  clipT,
  consecutiveCosines,
  cosineSimilarity,
  torchmetricsClipScore,
} from "../src/metrics/clip-score.js";
import { CLIPTextModel } from "../src/models/clip/clip-text-model.js";
import { ClipVisionRunner } from "../src/models/clip-vision/clip-vision-model.js";
import { type HostTensor, maxAbsDiff, tensor } from "../src/tensor.js";
import { CLIPTokenizer } from "../src/tokenizer/clip-tokenizer.js";
import { readSafetensors, writeSafetensors } from "../src/weights/safetensors.js";
import { captureIO } from "./helpers/cli-io.js";
import { GOLDEN } from "./helpers/golden-fixture.js";

const frame = (w: number, h: number, k: number) =>
  image(
    w,
    h,
    3,
    Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * k + 11) % 256),
  );

describe("CLIP-T / CLIP-F maths", () => {
  it("identical frames give CLIP-F = 1; opposite embeddings give -1; the CLIPScore clamp is after the mean", () => {
    const same = tensor("float32", [3, 4], Float32Array.of(1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4));
    expect(Math.abs(clipF(same) - 1)).toBeLessThan(1e-12);
    expect(cosineSimilarity([1, 0], [-2, 0])).toBe(-1);
    expect(consecutiveCosines(same)).toHaveLength(2);
    expect(clipT(same, tensor("float32", [1, 4], Float32Array.of(2, 4, 6, 8)))).toBeCloseTo(1, 12);
    expect(torchmetricsClipScore([0.5, -0.6])).toBe(0);
    expect(torchmetricsClipScore([0.5, -0.1])).toBeCloseTo(20, 10);
    expect(() => clipF(tensor("float32", [1, 4]))).toThrow(InvalidArgumentError);
    expect(() => clipT(same, tensor("float32", [1, 3]))).toThrow(/embedding width/);
  });
});

describe("ClipScorer on a tiny CLIPModel folder", () => {
  let dir = "";
  let projection: HostTensor;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "sf-clip-"));
    const text = await readSafetensors(join(GOLDEN, "tiny-sd/text_encoder/model.safetensors"));
    const vision = await readSafetensors(join(GOLDEN, "clip_vision/model/model.safetensors"));
    projection = tensor(
      "float32",
      [32, 32],
      Float32Array.from({ length: 1024 }, (_, i) => Math.sin(i * 0.37) * 0.3),
    );
    const all = new Map<string, HostTensor>([...text, ...vision]);
    all.set("text_projection.weight", projection);
    all.set("logit_scale", tensor("float32", [], Float32Array.of(4.6)));
    await writeSafetensors(join(dir, "model.safetensors"), all);
    const textConfig = JSON.parse(
      await readFile(join(GOLDEN, "tiny-sd/text_encoder/config.json"), "utf8"),
    ) as Record<string, unknown>;
    const visionConfig = JSON.parse(
      await readFile(join(GOLDEN, "clip_vision/model/config.json"), "utf8"),
    ) as Record<string, unknown>;
    delete textConfig.architectures;
    delete visionConfig.architectures;
    await writeFile(
      join(dir, "config.json"),
      JSON.stringify({
        architectures: ["CLIPModel"],
        projection_dim: 32,
        text_config: textConfig,
        vision_config: visionConfig,
      }),
    );
    for (const f of ["merges.txt", "special_tokens_map.json", "tokenizer_config.json", "vocab.json"])
      await copyFile(join(GOLDEN, "tiny-sd/tokenizer", f), join(dir, f));
    await copyFile(
      join(GOLDEN, "clip_vision/model/preprocessor_config.json"),
      join(dir, "preprocessor_config.json"),
    );
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("text_embeds = pooler_output W^T, image_embeds = the vision runner's, scores = mean cosines", async () => {
    const scorer = await ClipScorer.load(dir);
    const text = await CLIPTextModel.load(join(GOLDEN, "tiny-sd/text_encoder"));
    const vision = await ClipVisionRunner.load(join(GOLDEN, "clip_vision/model"));
    try {
      const prompt = "a red car turning";
      const tokenizer = await CLIPTokenizer.fromPretrained(join(GOLDEN, "tiny-sd/tokenizer"));
      const pooled = (
        await text.encode(
          tokenizer.encodeBatch([prompt], { padding: "max_length", truncation: true, maxLength: 77 }),
        )
      ).poolerOutput;
      const expected = new Float32Array(32);
      for (let o = 0; o < 32; o++) {
        let sum = 0;
        for (let i = 0; i < 32; i++) sum += (pooled.data[i] ?? 0) * (projection.data[o * 32 + i] as number);
        expected[o] = sum;
      }
      const textEmbeds = await scorer.encodePrompt(prompt);
      expect(maxAbsDiff(textEmbeds, tensor("float32", [1, 32], expected))).toBeLessThan(1e-5);

      const frames = [frame(40, 30, 3), frame(40, 30, 5), frame(40, 30, 5)];
      const mine = (await scorer.encodeImages(frames)).imageEmbeds;
      expect(maxAbsDiff(mine, (await vision.encodeImages(frames)).imageEmbeds)).toBe(0);

      const scores = await scorer.score(frames, prompt);
      expect(scores.clipT).toBeCloseTo(clipT(mine, textEmbeds), 12);
      expect(scores.consecutive?.[1]).toBeCloseTo(1, 6); // frames 1 and 2 are identical
      expect(scores.clipF).toBeCloseTo(clipF(mine), 12);
      const still = await scorer.score([
        frames[0] as ReturnType<typeof frame>,
        frames[0] as ReturnType<typeof frame>,
      ]);
      expect(Math.abs((still.clipF ?? 0) - 1)).toBeLessThan(1e-6);
      expect(still.clipT).toBeUndefined();
    } finally {
      await Promise.all([scorer.release(), text.release(), vision.release()]);
    }
  });

  it("steadyframe metrics --clip --prompt writes CLIP-F and CLIP-T; --prompt needs --clip", async () => {
    const car = new URL("fixtures/videos/car-turn-9f.mp4", import.meta.url).pathname;
    const out = join(dir, "car.metrics.json");
    const io = captureIO();
    const argv = [car, "--frames", "3", "--size", "64", "--clip", dir, "--prompt", "a red car", "--out", out];
    expect(await metricsCommand.run(argv, io)).toBe(0);
    const json = JSON.parse(await readFile(out, "utf8")) as { clip: Record<string, unknown> };
    expect(json.clip.consecutive).toHaveLength(2);
    expect(json.clip.frameText).toHaveLength(3);
    expect(Math.abs(json.clip.clipF as number)).toBeLessThanOrEqual(1);
    expect(io.out()).toMatch(/CLIP-F .* CLIP-T /);
    await expect(metricsCommand.run([car, "--prompt", "x", "--out", out], captureIO())).rejects.toThrow(
      InvalidArgumentError,
    );
  });
});
