/**
 * `steadyframe atlas edit` (src/atlas/pipeline-edit.ts): an exported atlas edited by the image
 * pipeline (img2img + a Canny ControlNet on the atlas's edges, the StableVideo route) with the tiny
 * random-weight model, then re-rendered through the fitted mappings; bad input, cancellation and the
 * --threads / --lr options of fit.
 */
import { access, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ATLAS_BG_FILE, ATLAS_FG_FILE, renderAtlasFrames } from "../src/atlas/edit.js";
import { createAtlasModel, fitAtlas, loadAtlasModel } from "../src/atlas/fit.js";
import { coefficientsAt } from "../src/atlas/losses.js";
import { editAtlasWithPipeline } from "../src/atlas/pipeline-edit.js";
import { main } from "../src/cli/main.js";
import { pairFlows } from "../src/control/flow.js";
import { readImageFile } from "../src/control/png.js";
import { CancelledError, FileNotFoundError, InvalidArgumentError } from "../src/errors.js";
import { readAllFrames } from "../src/video/read.js";
import { captureIO } from "./helpers/cli-io.js";
import { GOLDEN } from "./helpers/golden-fixture.js";

const CLIP = join(import.meta.dirname, "fixtures/videos/car-turn-9f.mp4");
const TINY = join(GOLDEN, "tiny-sd");
const CANNY = join(TINY, "controlnet");

const missing = (path: string): Promise<boolean> =>
  access(path).then(
    () => false,
    () => true,
  );

describe("atlas edit with the image pipeline (tiny-sd) on car-turn at 32x32", () => {
  let tmp = "";
  let dir = "";
  let original: Float32Array;

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), "steadyframe-atlas-edit-"));
    const size = { width: 32, height: 32 };
    const decoded = await readAllFrames(CLIP, { maxFrames: 3, resize: { ...size, kernel: "area" } });
    const frames = new Uint8Array(decoded.length * 32 * 32 * 3);
    decoded.forEach((f, i) => frames.set(f.data, i * f.data.length));
    original = Float32Array.from(frames, (v) => v / 255);
    const flows = await pairFlows(decoded);
    dir = join(tmp, "model");
    // fitted but not exported: the first edit exports the atlases itself
    await createAtlasModel(
      dir,
      { ...size, count: 3, frames, flowFw: flows.forward, flowBw: flows.backward },
      { width: 8, batch: 128, pretrainIterations: 1, pretrainSamples: 200, seed: 1, lr: 1e-3 },
      { threads: 1 },
    );
    await fitAtlas(await loadAtlasModel(dir), { iterations: 2, threads: 1 });
  }, 60_000);
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it("edits the background atlas (img2img + Canny ControlNet) and the render changes", async () => {
    const out = join(tmp, "edited-bg.png");
    const io = captureIO();
    const code = await main(
      [
        "atlas",
        "edit",
        dir,
        "--model",
        TINY,
        "--controlnet",
        CANNY,
        "--prompt",
        "a red car on a snowy road",
        "--strength",
        "0.8",
        "--steps",
        "2",
        "--size",
        "64",
        "--seed",
        "7",
        "--threads",
        "1",
        "--out",
        out,
      ],
      io,
    );
    expect(code, io.err()).toBe(0);
    expect(io.err()).toMatch(/exported the atlases/);
    expect(io.out()).toMatch(/background atlas 256x256 edited at 64x64/);
    expect(io.out()).toMatch(/--atlas .*edited-bg\.png/);
    const atlas = await readImageFile(join(dir, ATLAS_BG_FILE));
    const edited = await readImageFile(out);
    expect([edited.width, edited.height, edited.channels]).toEqual([atlas.width, atlas.height, 4]);
    let change = 0;
    for (let k = 0; k < atlas.width * atlas.height; k++) {
      expect(edited.data[k * 4 + 3]).toBe(255);
      for (let c = 0; c < 3; c++)
        change += Math.abs((edited.data[k * 4 + c] ?? 0) - (atlas.data[k * 3 + c] ?? 0));
    }
    expect(change / (atlas.width * atlas.height * 3)).toBeGreaterThan(5);
    // no stray temporary files next to the output
    expect((await readdir(tmp)).filter((n) => n.startsWith("."))).toEqual([]);

    // re-rendered through the fitted mappings: the frames change (the unedited render is the clip)
    const rendered = await renderAtlasFrames(dir, { background: out, threads: 1 });
    let diff = 0;
    for (let i = 0; i < original.length; i++)
      diff = Math.max(diff, Math.abs((rendered.frames[i] ?? 0) - (original[i] ?? 0)));
    expect(diff).toBeGreaterThan(0.1);
    const video = join(tmp, "edited.mp4");
    const rio = captureIO();
    expect(await main(["atlas", "render", dir, "--atlas", out, "--out", video, "--threads", "1"], rio)).toBe(
      0,
    );
    expect(rio.out()).toMatch(/3 frames 32x32/);
  }, 120_000);

  it("edits the foreground atlas without a ControlNet; the seed decides the result", async () => {
    const common = {
      model: TINY,
      prompt: "a red car",
      layer: "foreground" as const,
      steps: 2,
      size: 32,
      threads: 1,
    };
    const a = join(tmp, "fg-a.png");
    const b = join(tmp, "fg-b.png");
    const c = join(tmp, "fg-c.png");
    const ra = await editAtlasWithPipeline(dir, a, { ...common, seed: 1 });
    expect(ra).toMatchObject({ layer: "foreground", resolution: 256, size: 32, exported: false });
    await editAtlasWithPipeline(dir, b, { ...common, seed: 1 });
    await editAtlasWithPipeline(dir, c, { ...common, seed: 2 });
    const [ia, ib, ic, fg] = await Promise.all(
      [a, b, c, join(dir, ATLAS_FG_FILE)].map((p) => readImageFile(p)),
    );
    expect(Array.from(ib?.data ?? [])).toEqual(Array.from(ia?.data ?? []));
    expect(Array.from(ic?.data ?? [])).not.toEqual(Array.from(ia?.data ?? []));
    expect([ia?.width, fg?.width]).toEqual([256, 256]);
    const rendered = await renderAtlasFrames(dir, { foreground: a, threads: 1 });
    expect(rendered.frames.length).toBe(original.length);
  }, 120_000);

  it("refuses bad input with typed errors before loading a model, and writes nothing", async () => {
    const out = join(tmp, "bad.png");
    const base = { model: TINY, prompt: "a car", steps: 1, size: 32, threads: 1 };
    await expect(editAtlasWithPipeline(join(tmp, "no-such-model"), out, base)).rejects.toBeInstanceOf(
      FileNotFoundError,
    );
    await expect(editAtlasWithPipeline(join(tmp, "no-such-model"), out, base)).rejects.toThrow(/atlas fit/);
    await expect(
      editAtlasWithPipeline(dir, out, { ...base, layer: "middle" as "background" }),
    ).rejects.toThrow(/--layer/);
    await expect(editAtlasWithPipeline(dir, out, { ...base, strength: 1.5 })).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
    await expect(editAtlasWithPipeline(dir, out, { ...base, size: 60 })).rejects.toThrow(
      /multiple of 8.*--size/,
    );
    await expect(
      editAtlasWithPipeline(dir, out, { ...base, model: join(tmp, "no-such-sd") }),
    ).rejects.toThrow(/--model.*not found/);
    await expect(
      editAtlasWithPipeline(dir, out, { ...base, controlnet: join(tmp, "no-such-cn") }),
    ).rejects.toThrow(/--controlnet.*not found/);
    await expect(editAtlasWithPipeline(dir, join(tmp, "bad.jpg"), base)).rejects.toThrow(/--out/);
    await expect(editAtlasWithPipeline(dir, out, { ...base, scheduler: "fastest" })).rejects.toThrow(
      /--scheduler/,
    );

    const cli = async (...args: string[]): Promise<string> => {
      const io = captureIO();
      expect(await main(["atlas", "edit", ...args], io)).not.toBe(0);
      return io.err();
    };
    expect(await cli(join(tmp, "nothing"), "--model", TINY, "--prompt", "x", "--out", out)).toMatch(
      /E_FILE_NOT_FOUND.*model\.json/,
    );
    expect(await cli(dir, "--model", TINY, "--prompt", "x", "--layer", "fg", "--out", out)).toMatch(
      /--layer/,
    );
    expect(await cli(dir, "--model", join(tmp, "none"), "--prompt", "x", "--out", out)).toMatch(
      /E_FILE_NOT_FOUND.*--model/,
    );
    expect(await cli(dir, "--model", TINY, "--prompt", "x", "--canny", "50,100", "--out", out)).toMatch(
      /--controlnet to go with it for --canny/,
    );
    expect(await cli(dir, "--model", TINY, "--out", out)).toMatch(/--prompt/);
    expect(await missing(out)).toBe(true);
  }, 60_000);

  it("cancels while denoising and leaves no output", async () => {
    const out = join(tmp, "cancelled.png");
    const controller = new AbortController();
    await expect(
      editAtlasWithPipeline(dir, out, {
        model: TINY,
        prompt: "a car",
        steps: 3,
        size: 32,
        threads: 1,
        signal: controller.signal,
        onProgress: (e) => {
          if (e.status === "progress" && e.task.startsWith("denois")) controller.abort();
        },
      }),
    ).rejects.toBeInstanceOf(CancelledError);
    expect(await missing(out)).toBe(true);
    expect((await readdir(tmp)).filter((n) => n.startsWith("."))).toEqual([]);
  }, 60_000);

  it("fit refuses a bad --lr, --lr with --resume and a bad --lr-decay-from / --lr-final", async () => {
    const io = captureIO();
    expect(await main(["atlas", "fit", CLIP, "--out", join(tmp, "lr"), "--lr", "-1"], io)).not.toBe(0);
    expect(io.err()).toMatch(/--lr/);
    const resumed = captureIO();
    expect(await main(["atlas", "fit", "--out", dir, "--resume", "--lr", "1e-3"], resumed)).not.toBe(0);
    expect(resumed.err()).toMatch(/--lr.*--resume/);
    expect(await missing(join(tmp, "lr"))).toBe(true);
    expect((await loadAtlasModel(dir)).info.lr).toBe(1e-3);
    for (const [extra, said] of [
      [["--lr-final", "0.5"], /--lr-decay-from N as well for --lr-final/],
      [["--lr-decay-from", "10", "--lr-final", "2"], /a factor in \(0, 1\] for --lr-final/],
      [["--lr-decay-from", "2000"], /before --iterations \(2000\) for --lr-decay-from/],
      [["--lr-decay-from", "-1"], /--lr-decay-from/],
    ] as const) {
      const refused = captureIO();
      expect(await main(["atlas", "fit", CLIP, "--out", join(tmp, "lr"), ...extra], refused)).not.toBe(0);
      expect(refused.err()).toMatch(said);
    }
    expect(await missing(join(tmp, "lr"))).toBe(true);
  });

  it("fit without masks bootstraps alpha towards 0 (one background layer)", async () => {
    const model = await loadAtlasModel(dir);
    const seen: Record<string, number>[] = [];
    await fitAtlas(model, {
      iterations: model.iteration + 1,
      threads: 1,
      onIteration: (p) => seen.push({ ...p.losses }),
    });
    const l = seen[0] ?? {};
    const get = (name: string): number => l[name] ?? NaN;
    const [rig, gfg, gbg, rgb, flow, boot, alphaFlow, sparsity, gradient] = coefficientsAt(
      model.info.loss,
      model.iteration,
    );
    const withoutBoot =
      (rig ?? 0) * (get("rigidity1") + get("rigidity2")) +
      (gfg ?? 0) * get("global_rigidity1") +
      (gbg ?? 0) * get("global_rigidity2") +
      (rgb ?? 0) * get("rgb") +
      (flow ?? 0) * (get("flow1") + get("flow2")) +
      (alphaFlow ?? 0) * get("flow_alpha") +
      (sparsity ?? 0) * get("sparsity") +
      (gradient ?? 0) * get("gradient");
    const bootTerm = (boot ?? 0) * get("alpha_bootstrapping");
    expect(bootTerm).toBeGreaterThan(1);
    expect(Math.abs(get("total") - (withoutBoot + bootTerm))).toBeLessThan(1e-3 * get("total"));
  }, 60_000);
});
