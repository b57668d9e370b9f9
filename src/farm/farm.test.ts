/**
 * The render farm's pure parts: how a batch plan is cut into jobs, the job data round trip and its
 * checks, the Redis URL checks, and the content-checked frame store (no Redis needed; the queue
 * itself is tested in test/farm.test.ts).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { InvalidArgumentError, ConfigError } from "../errors.js";
import { batchPlan, isChained } from "../engine/generate-video.js";
import { firstFrameAttention } from "../engine/methods/attention-first.js";
import { sparseCausalAttention } from "../engine/methods/attention-sparse-causal.js";
import type { RenderInfo, VideoMethod } from "../engine/method.js";
import { WorkFolder } from "../engine/work-folder.js";
import { CheckedFrameStore } from "./checked-store.js";
import { parseRedisUrl, describeRedis } from "./connection.js";
import { FarmError } from "./farm-error.js";
import { farmSettings, readSegmentJob, segmentJobData } from "./job.js";
import { farmPlan, segmentLabel } from "./segments.js";

const info = (frames: number): RenderInfo => ({
  frames,
  width: 64,
  height: 64,
  latentShape: [4, 32, 32],
  seed: 0n,
  numInferenceSteps: 2,
});

describe("farmPlan", () => {
  it("first batch alone, then segments of whole batches", () => {
    const plan = batchPlan(info(10), [], 3); // [0,1,2] [3,4,5] [6,7,8] [9]
    const farm = farmPlan(plan, false, 4);
    expect(farm.first).toEqual([0, 1, 2]);
    // 4 frames asked: two batches of 3 (a batch is never split, so frames land in the same UNet call)
    expect(farm.segments).toEqual([[3, 4, 5, 6, 7, 8], [9]]);
  });

  it("segments run one after the other when a frame's stored keys/values feed the next segment", () => {
    // first+previous: a segment's first batch reads the previous segment's last frame as it was made.
    expect(isChained([sparseCausalAttention(2)])).toBe(true);
    // first: frame 0 is denoised again by each segment (it attends only to itself).
    expect(isChained([firstFrameAttention(2)])).toBe(false);
  });

  it("key frames first, the others in order around them", () => {
    const keys: VideoMethod = { id: "attention:keyframes", role: "attention", firstBatch: () => [0, 4, 8] };
    const farm = farmPlan(batchPlan(info(9), [keys], 1), false, 2);
    expect(farm.first).toEqual([0, 4, 8]);
    expect(farm.segments).toEqual([
      [1, 2],
      [3, 5],
      [6, 7],
    ]);
    expect(segmentLabel(farm.first)).toBe("0,4,8");
    expect(segmentLabel([3, 5])).toBe("3,5");
    expect(segmentLabel([6, 7])).toBe("6-7");
  });

  it("refuses a segment size below 1", () => {
    expect(() => farmPlan([[0]], false, 0)).toThrow(InvalidArgumentError);
    expect(() => farmPlan([[0]], false, 0)).toThrow(/--segment/);
  });
});

describe("segment job data", () => {
  it("round-trips the settings with absolute paths, a bigint seed and no machine settings", () => {
    const settings = farmSettings({
      model: "models/sd",
      source: "clip.mp4",
      controlnets: [{ path: "cn", control: "canny" }],
      prompt: { 0: "a", 4: "b" },
      strategy: { controlsFrom: "source", noise: "shared", attention: "first", fusion: "none" },
      seed: 18446744073709551615n,
      out: "out/x.mp4",
      device: ["cpu"],
      cacheDir: "/cache",
      resume: true,
    });
    expect(settings.model).toBe(join(process.cwd(), "models/sd"));
    expect(settings.controlnets?.[0]?.path).toBe(join(process.cwd(), "cn"));
    expect("device" in settings || "cacheDir" in settings || "resume" in settings).toBe(false);
    const data = JSON.parse(JSON.stringify(segmentJobData("0.1.0", "abc", settings, [3, 4]))) as unknown;
    const back = readSegmentJob(data, "job x");
    expect(back.settings.seed).toBe(18446744073709551615n);
    expect(back.settings.prompt).toEqual({ 0: "a", 4: "b" });
    expect(back.frames).toEqual([3, 4]);
  });

  it("refuses data it did not make, naming the field", () => {
    const ok = segmentJobData(
      "0.1.0",
      "abc",
      farmSettings({
        model: "/m",
        prompt: "p",
        out: "/o",
        strategy: { controlsFrom: "source", noise: "shared", attention: "first", fusion: "none" },
      }),
      [1],
    );
    expect(() => readSegmentJob({ ...ok, frames: [] }, "job y")).toThrow(ConfigError);
    expect(() => readSegmentJob({ ...ok, frames: [-1] }, "job y")).toThrow(/frames/);
    expect(() => readSegmentJob({ ...ok, settings: { ...ok.settings, out: "rel" } }, "job y")).toThrow(
      /settings\.out/,
    );
    expect(() => readSegmentJob({ ...ok, settings: { ...ok.settings, seed: "1e9" } }, "job y")).toThrow(
      /settings\.seed/,
    );
    expect(() => readSegmentJob("nope", "job y")).toThrow(/job y/);
  });
});

describe("parseRedisUrl", () => {
  it("takes redis:// and rediss:// URLs and hides passwords in messages", () => {
    expect(parseRedisUrl("--redis", "redis://127.0.0.1:6379").url).toBe("redis://127.0.0.1:6379");
    expect(describeRedis(parseRedisUrl("--redis", "rediss://:secret@host:7000/2"))).toBe(
      "rediss://:***@host:7000/2",
    );
  });

  it("refuses other schemes, bad ports and paths, naming the flag", () => {
    for (const bad of ["127.0.0.1:6379", "http://h:1", "redis://h:99999", "redis://h:1/x/y"])
      expect(() => parseRedisUrl("--queue", bad)).toThrow(/--queue/);
  });
});

describe("CheckedFrameStore", () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it("skips a frame already written with the same pixels, and stops on different pixels", async () => {
    const dir = await mkdtemp(join(tmpdir(), "steadyframe-farm-store-"));
    dirs.push(dir);
    const work = await WorkFolder.open(join(dir, "out"), { a: 1 }, false);
    const store = new CheckedFrameStore(work);
    const image = { width: 2, height: 1, channels: 3 as const, data: Uint8Array.of(1, 2, 3, 4, 5, 6) };
    const recipe = {
      noise: { dtype: "float32" as const, shape: [1, 1], data: Float32Array.of(0.5) },
      controls: [],
      state: {},
      seconds: 1,
    };
    await store.put(0, image, recipe);
    expect(store.duplicates).toEqual([]);
    await store.put(0, image, recipe);
    expect(store.duplicates).toEqual([0]);
    const other = { ...image, data: Uint8Array.of(1, 2, 3, 4, 5, 7) };
    const error = await store.put(0, other, recipe).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FarmError);
    expect((error as FarmError).code).toBe("E_FARM");
    expect((error as FarmError).message).toMatch(/frame 0 .*different pixels/);
    expect(Buffer.from((await work.image(0)).data)).toEqual(Buffer.from(image.data));
  });

  it("keeps a frame's attention keys/values per step in the work folder, for any worker to read", async () => {
    const dir = await mkdtemp(join(tmpdir(), "steadyframe-farm-kv-"));
    dirs.push(dir);
    const work = await WorkFolder.open(join(dir, "out"), { a: 1 }, false);
    const store = new CheckedFrameStore(work);
    const kv = (v: number) => ({
      dtype: "float32" as const,
      shape: [2, 1, 3, 2],
      data: new Float32Array(12).fill(v),
    });
    const step = (v: number) =>
      new Map([
        ["unet", { "anchor_key.a": kv(v), "anchor_value.a": kv(v + 1) }],
        ["controlnet.0", { "anchor_key.b": kv(v + 2) }],
      ]);
    await store.putKeyValues(3, 0, step(1));
    expect(await store.hasKeyValues(3, 2)).toBe(false); // step 1 missing
    await store.putKeyValues(3, 1, step(5));
    expect(await store.hasKeyValues(3, 2)).toBe(true);
    // Another worker opens the same folder and reads exactly what was written.
    const other = await WorkFolder.open(join(dir, "out"), { a: 1 }, true);
    const back = await other.keyValues(3, 1);
    expect([...back.keys()].sort()).toEqual(["controlnet.0", "unet"]);
    expect(back.get("unet")?.["anchor_value.a"]?.shape).toEqual([2, 1, 3, 2]);
    expect([...(back.get("unet")?.["anchor_value.a"]?.data ?? [])]).toEqual(Array(12).fill(6));
    expect([...(back.get("controlnet.0")?.["anchor_key.b"]?.data ?? [])]).toEqual(Array(12).fill(7));
    await store.dropKeyValues(3);
    expect(await other.hasKeyValues(3, 1)).toBe(false);
    await expect(other.keyValues(3, 0)).rejects.toThrow();
  });
});
