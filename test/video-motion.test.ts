/**
 * `steadyframe video` with the whole-video motion pipelines (src/engine/motion-render.ts) on the tiny
 * model: AnimateDiff text-to-video with and without context windows, video-to-video with a
 * ControlNet, Text2Video-Zero's motion field, kill/resume bit-identity, and the typed errors for
 * an adapter that does not fit and for flag combinations that cannot work — all before any model loads.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/cli/main.js";
import { readImageFile } from "../src/control/png.js";
import { CancelledError } from "../src/errors.js";
import { renderVideo, type VideoRenderSettings } from "../src/engine/render.js";
import { workFolderFor } from "../src/engine/work-folder.js";
import { captureIO } from "./helpers/cli-io.js";
import { GOLDEN } from "./helpers/golden-fixture.js";

const MODEL = join(GOLDEN, "tiny-sd");
const ADAPTER = join(GOLDEN, "unet_motion", "motion_adapter");
const CLIP = new URL("fixtures/videos/car-turn-9f.mp4", import.meta.url).pathname;
const BASE = ["--model", MODEL, "--prompt", "a red car", "--size", "32x32", "--steps", "3"];

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sf-video-motion-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface MotionRun {
  readonly strategy: string;
  readonly frames: number;
  readonly motion: {
    readonly kind: string;
    readonly pipeline: string;
    readonly strength: number | null;
    readonly unetCallsThisRun: number;
    readonly resumedAfterStep: number | null;
  };
}

async function runJson(out: string): Promise<MotionRun> {
  return JSON.parse(await readFile(join(out, "run.json"), "utf8")) as MotionRun;
}

async function framesOf(out: string): Promise<Uint8Array[]> {
  const names = (await readdir(out)).filter((n) => /^frame_\d{6}\.png$/.test(n)).sort();
  return Promise.all(names.map(async (n) => (await readImageFile(join(out, n))).data));
}

async function video(args: readonly string[]): Promise<{ code: number; err: string }> {
  const cli = captureIO();
  const code = await main(["video", ...args], cli);
  return { code, err: cli.err() };
}

const exists = async (p: string): Promise<boolean> => (await stat(p).catch(() => null)) !== null;

describe("steadyframe video --motion-adapter (AnimateDiff)", () => {
  it("text-to-video writes N frames, one UNet call per step when the video fits one window", async () => {
    const out = join(dir, "t2v");
    const r = await video([...BASE, "--motion-adapter", ADAPTER, "--frames", "6", "--out", out]);
    expect(r.err).not.toContain("error");
    expect(r.code).toBe(0);
    expect(await framesOf(out)).toHaveLength(6);
    const run = await runJson(out);
    expect(run.motion).toMatchObject({
      kind: "animatediff",
      pipeline: "AnimateDiffPipeline",
      unetCallsThisRun: 3,
    });
  });

  it("a 10-frame video with --context 4 --overlap 2 runs window by window", async () => {
    const windowed = join(dir, "ctx4");
    const whole = join(dir, "ctx16");
    const common = [...BASE, "--motion-adapter", ADAPTER, "--frames", "10", "--seed", "3", "--steps", "2"];
    expect((await video([...common, "--context", "4", "--overlap", "2", "--out", windowed])).code).toBe(0);
    expect((await video([...common, "--context", "16", "--out", whole])).code).toBe(0);
    const [a, b] = [await framesOf(windowed), await framesOf(whole)];
    expect(a).toHaveLength(10);
    expect(b).toHaveLength(10);
    // 10 looped frames in windows of 4 with a hop of 2: 4 windows per step; one window of 10 otherwise.
    expect((await runJson(windowed)).motion.unetCallsThisRun).toBe(2 * 4);
    expect((await runJson(whole)).motion.unetCallsThisRun).toBe(2);
    expect(a.some((f, i) => !Buffer.from(f).equals(Buffer.from(b[i] ?? [])))).toBe(true);
  });

  it("video-to-video from a source with a per-frame ControlNet (strength 0.6 by default)", async () => {
    const out = join(dir, "v2v");
    const r = await video([
      CLIP,
      ...BASE,
      "--motion-adapter",
      ADAPTER,
      "--frames",
      "5",
      "--controlnet",
      join(MODEL, "controlnet"),
      "--out",
      out,
    ]);
    expect(r.err).not.toContain("error");
    expect(r.code).toBe(0);
    expect(await framesOf(out)).toHaveLength(5);
    expect(await readdir(join(out, "controls", "c0"))).toHaveLength(5);
    const run = await runJson(out);
    expect(run.motion).toMatchObject({ pipeline: "AnimateDiffVideoToVideoPipeline", strength: 0.6 });
    // int(3 * 0.6) = 1 step of the schedule runs.
    expect(run.motion.unetCallsThisRun).toBe(1);
  });

  it("an adapter that is not a MotionAdapter fails with a typed error before any work", async () => {
    const out = join(dir, "bad");
    const r = await video([
      ...BASE,
      "--motion-adapter",
      join(MODEL, "controlnet"),
      "--frames",
      "4",
      "--out",
      out,
    ]);
    expect(r.code).toBe(2);
    expect(r.err).toContain("E_INVALID_ARGUMENT");
    expect(r.err).toContain("--motion-adapter");
    expect(r.err).toContain("ControlNetModel");
    expect(await exists(workFolderFor(out))).toBe(false);
  });

  it("an adapter made for other UNet channels names --motion-adapter and block_out_channels", async () => {
    const adapter = join(dir, "wide-adapter");
    await mkdir(adapter, { recursive: true });
    const config = JSON.parse(await readFile(join(ADAPTER, "config.json"), "utf8")) as Record<
      string,
      unknown
    >;
    await writeFile(
      join(adapter, "config.json"),
      JSON.stringify({ ...config, block_out_channels: [320, 640] }),
    );
    const out = join(dir, "bad-wide");
    const r = await video([...BASE, "--motion-adapter", adapter, "--frames", "4", "--out", out]);
    expect(r.code).toBe(2);
    expect(r.err).toContain("--motion-adapter");
    expect(r.err).toContain("block_out_channels");
    expect(await exists(workFolderFor(out))).toBe(false);
  });

  it.each([
    [["--attention", "first"], "--attention"],
    [["--context", "4"], "--context"], // without --motion-adapter (added below for the other cases)
    [["--context", "32"], "--context"], // longer than the adapter's 16 positions
    [["--overlap", "4", "--context", "4"], "--overlap"],
    [["--strength", "0.5"], "--strength"], // no source to start from
    [["--invert"], "--invert"],
  ])("refuses %j naming %s", async (flags, named) => {
    const adapter = named === "--context" && flags[1] === "4" ? [] : ["--motion-adapter", ADAPTER];
    const r = await video([...BASE, ...adapter, ...flags, "--frames", "4", "--out", join(dir, "refused")]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(named);
  });
});

describe("steadyframe video --motion-field (Text2Video-Zero)", () => {
  it("writes the frames of a text-to-video with a motion field", async () => {
    const out = join(dir, "t2vz");
    const r = await video([...BASE, "--motion-field", "8,4", "--frames", "4", "--out", out]);
    expect(r.err).not.toContain("error");
    expect(r.code).toBe(0);
    const frames = await framesOf(out);
    expect(frames).toHaveLength(4);
    expect((await runJson(out)).motion.kind).toBe("t2v-zero");
    expect(frames.some((f) => !Buffer.from(f).equals(Buffer.from(frames[0] ?? [])))).toBe(true);
  });

  it("runs with a multistep scheduler (pass 3 restarts from its state after pass 1)", async () => {
    const out = join(dir, "t2vz-dpm");
    const r = await video([
      ...BASE,
      "--motion-field",
      "8,4",
      "--scheduler",
      "dpmpp_2m",
      "--frames",
      "3",
      "--out",
      out,
    ]);
    expect(r.err).not.toContain("error");
    expect(r.code).toBe(0);
    expect(await framesOf(out)).toHaveLength(3);
  });

  it.each([
    [[CLIP], "[SOURCE]"],
    [["--controlnet", join(MODEL, "controlnet")], "--controlnet"],
    [["--motion-adapter", ADAPTER], "--motion-field"],
    [["--t1", "9"], "--t1"],
    [["--scheduler", "euler"], "--scheduler"],
  ])("refuses %j with --motion-field naming %s", async (flags, named) => {
    const r = await video([
      ...BASE,
      "--motion-field",
      "8,4",
      ...flags,
      "--frames",
      "4",
      "--out",
      join(dir, "no"),
    ]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(named);
  });
});

describe("resume of a motion render", () => {
  it("killed after step 1 of 3 and resumed, it equals an uninterrupted run bit for bit", async () => {
    const settings = (out: string): VideoRenderSettings => ({
      model: MODEL,
      prompt: "a red car",
      width: 32,
      height: 32,
      frames: 6,
      steps: 3,
      seed: 11n,
      eta: 0.5, // DDIM draws noise every step: the replay must draw it again in the same order
      strategy: { controlsFrom: "source", noise: "shared", attention: "per-frame", fusion: "none" },
      motion: { adapter: ADAPTER, context: 4, overlap: 2 },
      out,
    });
    const whole = join(dir, "uninterrupted");
    await renderVideo(settings(whole));

    const killed = join(dir, "killed");
    const controller = new AbortController();
    await expect(
      renderVideo(settings(killed), {
        signal: controller.signal,
        onProgress: (e) => {
          if (e.task === "denoising" && e.status === "progress" && e.done === 1) controller.abort();
        },
      }),
    ).rejects.toBeInstanceOf(CancelledError);
    expect(await exists(killed)).toBe(false);
    expect(await readdir(join(workFolderFor(killed), "motion"))).toEqual(
      expect.arrayContaining(["step_0000.safetensors", "latents.safetensors"]),
    );

    const resumed = await renderVideo({ ...settings(killed), resume: true });
    expect(resumed.frames).toBe(6);
    const run = await runJson(killed);
    expect(run.motion.resumedAfterStep).toBe(0);
    expect(run.motion.unetCallsThisRun).toBe(2 * 2); // steps 2 and 3 only, 2 windows each (6 frames)
    const [a, b] = [await framesOf(whole), await framesOf(killed)];
    expect(b).toHaveLength(6);
    b.forEach((f, i) => expect(Buffer.from(f).equals(Buffer.from(a[i] ?? []))).toBe(true));
    expect(await exists(workFolderFor(killed))).toBe(false);
  });
});

describe("LoRAs with the motion pipelines", () => {
  const LORA = join(GOLDEN, "lora", "lora_kohya.safetensors");
  it.each([
    ["--motion-adapter", ["--motion-adapter", ADAPTER]],
    ["--motion-field", ["--motion-field", "8,4"]],
  ] as const)(
    "%s: a LoRA at scale 0 gives the plain video exactly, at scale 1 another one; run.json records it",
    async (name, flags) => {
      const common = [...BASE, ...flags, "--frames", "4", "--steps", "2", "--seed", "9"];
      const outs = ["plain", "zero", "one"].map((n) => join(dir, `lora${name}-${n}`));
      const extras = [[], ["--lora", `${LORA}:0`], ["--lora", `${LORA}:1`]];
      for (const [k, out] of outs.entries()) {
        const r = await video([...common, ...(extras[k] ?? []), "--out", out]);
        expect(r.err, r.err).not.toMatch(/error/i);
        expect(r.code).toBe(0);
      }
      const [plain, zero, one] = await Promise.all(outs.map(framesOf));
      expect(plain?.length).toBe(4);
      plain?.forEach((f, i) =>
        expect(Buffer.compare(f, zero?.[i] ?? new Uint8Array()), `frame ${i}`).toBe(0),
      );
      expect(plain?.some((f, i) => Buffer.compare(f, one?.[i] ?? new Uint8Array()) !== 0)).toBe(true);
      const run = JSON.parse(await readFile(join(outs[2]!, "run.json"), "utf8")) as {
        settings: { loras?: { scale: number }[] };
      };
      expect(run.settings.loras?.map((l) => l.scale)).toEqual([1]);
    },
    180_000,
  );
});
