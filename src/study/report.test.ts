import { mkdir, readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CancelledError, InvalidArgumentError } from "../errors.js";
import { image, type Image } from "../image.js";
import { canny } from "../control/canny.js";
import type { FloatMap } from "../control/dense-model.js";
import { toGray } from "../control/gray.js";
import { writePngFile } from "../control/png.js";
import { clipEdgeFidelity } from "../metrics/edge-fidelity.js";
import { flickerIndex } from "../metrics/flicker.js";
import { clipWarpError } from "../metrics/warp-error.js";
import { probeVideo } from "../video/probe.js";
import { readAllFrames } from "../video/read.js";
import { texture } from "../../test/helpers/synthetic-images.js";
import { makeTempDir } from "../../test/helpers/video.js";
import { writeStudyReport, type StudyEntry, type StudyReport } from "./report.js";
import { CSV_HEADER } from "./table.js";

const W = 32;
const H = 32;
const N = 5;

/** A moving texture with a bright square on it (edges for Canny, motion for the flow). */
function sourceFrame(t: number): Image {
  const base = texture(W, H, { dx: t, channels: 3 });
  const data = Uint8Array.from(base.data);
  for (let y = 10; y < 20; y++)
    for (let x = 6 + t; x < 16 + t; x++) data.set([250, 240, 230], (y * W + x) * 3);
  return image(W, H, 3, data);
}

const shiftBrightness = (img: Image, by: number): Image =>
  image(
    img.width,
    img.height,
    3,
    Uint8Array.from(img.data, (v) => Math.max(0, Math.min(255, v + by))),
  );

const average = (a: Image, b: Image): Image =>
  image(
    a.width,
    a.height,
    3,
    Uint8Array.from(a.data, (v, k) => Math.round((v + (b.data[k] ?? 0)) / 2)),
  );

async function writeFrames(dir: string, frames: readonly Image[]): Promise<string> {
  await mkdir(dir, { recursive: true });
  for (const [i, f] of frames.entries())
    await writePngFile(join(dir, `frame_${String(i).padStart(6, "0")}.png`), f);
  return dir;
}

/** A stand-in depth model: luma plus a vertical ramp (no ONNX model needed). */
const fakeDepth = {
  estimate: (img: Image): Promise<FloatMap> => {
    const data = new Float32Array(img.width * img.height);
    for (let p = 0; p < data.length; p++)
      data[p] = (img.data[p * 3] ?? 0) / 255 + Math.floor(p / img.width) / img.height;
    return Promise.resolve({ width: img.width, height: img.height, data });
  },
};

const OUTPUTS = ["grid.mp4", "metrics-per-frame.csv", "metrics.csv", "metrics.json", "plot.svg", "table.md"];

describe("writeStudyReport", () => {
  let root: string;
  let cleanup: () => Promise<void>;
  let source: Image[];
  let flickering: Image[];
  let entries: StudyEntry[];
  let report: StudyReport;
  let out: string;

  beforeAll(async () => {
    ({ dir: root, cleanup } = await makeTempDir("steadyframe-study-"));
    source = Array.from({ length: N }, (_, t) => sourceFrame(t));
    flickering = source.map((f, t) => shiftBrightness(f, t % 2 === 0 ? 40 : -40));
    const interpolated: Image[] = [];
    for (const [t, f] of source.entries()) {
      const next = source[t + 1];
      interpolated.push(f);
      if (next) interpolated.push(average(f, next));
    }
    await writeFrames(join(root, "source"), source);
    entries = [
      { name: "copy", framesDir: await writeFrames(join(root, "copy"), source), secondsPerFrame: 0.5 },
      {
        name: "flicker",
        framesDir: await writeFrames(join(root, "flicker"), flickering),
        secondsPerFrame: 1.25,
      },
      {
        name: "interpolated, 1 in-between",
        framesDir: await writeFrames(join(root, "interp"), interpolated),
        secondsPerFrame: 0.25,
        framesPerSourceFrame: 2,
      },
    ];
    out = join(root, "study");
    report = await writeStudyReport(out, entries, {
      source: join(root, "source"),
      width: W,
      height: H,
      depth: fakeDepth,
    });
  });
  afterAll(async () => cleanup());

  it("writes exactly the six outputs (no temporary files left)", async () => {
    expect((await readdir(out)).sort()).toEqual(OUTPUTS);
  });

  it("reads the PNG source back unchanged (the comparisons below rely on it)", async () => {
    const decoded = await readAllFrames(join(root, "source"), {
      resize: { width: W, height: H },
      colorMatrix: "opencv",
    });
    expect(decoded.map((f) => Buffer.from(f.data).equals(Buffer.from(source[f.index]?.data ?? [])))).toEqual(
      Array(N).fill(true),
    );
  });

  it("scores the copy of the source like the source itself", () => {
    const copy = report.entries[0];
    expect(copy?.name).toBe("copy");
    expect(copy?.measuredFrames).toBe(N);
    expect(copy?.edgeF1).toBe(1);
    expect(copy?.warpError).not.toBeNull();
    expect(copy?.warpError).toBe(report.input.warpError);
    expect(copy?.perFrame.warpError).toEqual(report.input.perFrame.warpError);
    expect(copy?.flickerIndex).toBe(report.input.flickerIndex);
    expect(copy?.depthPearson).toBeCloseTo(1, 12);
    expect(report.sourceFrames).toBe(N);
  });

  it("ranks the flickering render worse on flicker, warp error and edges", () => {
    const [copy, flicker] = report.entries;
    expect(flicker?.flickerIndex).toBeGreaterThan((copy?.flickerIndex ?? 1) + 0.2);
    expect(flicker?.warpError).toBeGreaterThan((copy?.warpError ?? 1) + 0.1);
    expect(flicker?.perFrame.flicker[0]).toBeNull();
    expect(flicker?.perFrame.flicker.slice(1).every((v) => v !== null && v > 0.2)).toBe(true);
  });

  it("streams the same numbers as the whole-clip metrics of src/metrics", async () => {
    const flicker = report.entries[1];
    const warp = await clipWarpError(flickering, { reference: source });
    expect(flicker?.warpError).toBeCloseTo(warp.mean, 12);
    expect(flicker?.perFrame.warpError.slice(1)).toEqual(warp.pairs.map((p) => p.error));
    expect(flicker?.flickerIndex).toBeCloseTo(flickerIndex(flickering), 12);
    const maps = await Promise.all(
      source.map(async (f) => canny(await toGray(f), { threshold1: 100, threshold2: 200 })),
    );
    const edges = await clipEdgeFidelity(flickering, maps, { canny: { threshold1: 100, threshold2: 200 } });
    expect(flicker?.edgeF1).toBeCloseTo(edges.meanF1, 12);
    expect(maps.some((m) => m.data.some((v) => v === 255))).toBe(true);
  });

  it("measures an interpolated render at the source's frames and time-aligns the grid", async () => {
    const interp = report.entries[2];
    expect(interp?.frames).toBe(2 * N - 1);
    expect(interp?.measuredFrames).toBe(N);
    expect(interp?.warpError).toBe(report.input.warpError);
    expect(report.grid.frames).toBe(2 * N); // the 1x clips hold each frame twice
    expect(report.grid.fps).toBe(48); // PNG sources play at 24 fps, times 2
    const info = await probeVideo(join(out, "grid.mp4"), { countFrames: true });
    expect([info.width, info.height]).toEqual([4 * W + 3 * 2, H + 12]);
    expect(info.frameCount).toBe(2 * N);
  });

  it("labels the grid tiles and shows the renders in them", async () => {
    expect(report.grid.labels).toBe(true);
    expect(report.grid.tiles).toEqual(["input", "copy", "flicker", "interpolated, 1 in-between"]);
    const frames = await readAllFrames(join(out, "grid.mp4"), { colorMatrix: "opencv" });
    const g = frames[2]; // source frame 1 (grid frame 2)
    if (!g) throw new Error("no grid frame 2");
    const at = (x: number, y: number, c: number): number => g.data[(y * g.width + x) * 3 + c] ?? 0;
    const luma = (r: number, gr: number, b: number): number => 0.299 * r + 0.587 * gr + 0.114 * b;
    // Mean |Δ luma| between a grid tile (below its 12 px caption) and a frame: H.264 is lossy.
    const tileDiff = (column: number, frame: Image): number => {
      let sum = 0;
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const u = column * (W + 2) + x;
          const k = (y * W + x) * 3;
          const d = frame.data;
          sum += Math.abs(
            luma(at(u, 12 + y, 0), at(u, 12 + y, 1), at(u, 12 + y, 2)) -
              luma(d[k] ?? 0, d[k + 1] ?? 0, d[k + 2] ?? 0),
          );
        }
      }
      return sum / (W * H);
    };
    const [s0, s1, s2] = [source[0], source[1], source[2]];
    const f1 = flickering[1];
    if (!s0 || !s1 || !s2 || !f1) throw new Error("missing test frames");
    expect(tileDiff(0, s1)).toBeLessThan(6);
    expect(tileDiff(0, s1)).toBeLessThan(Math.min(tileDiff(0, s0), tileDiff(0, s2)));
    expect(tileDiff(2, f1)).toBeLessThan(6);
    expect(tileDiff(3, s1)).toBeLessThan(6); // interpolated frame 2 = source frame 1
    let white = 0;
    for (let y = 0; y < 12; y++) for (let x = 0; x < W; x++) if (at(x, y, 0) > 150) white++;
    expect(white).toBeGreaterThan(5);
  });

  it("plots one polyline per strategy and panel in valid SVG", async () => {
    const svg = await readFile(join(out, "plot.svg"), "utf8");
    await expect(sharp(Buffer.from(svg)).metadata()).resolves.toMatchObject({ format: "svg" });
    const series = [...svg.matchAll(/<polyline class="series"[^>]*data-name="([^"]*)"/g)].map((m) => m[1]);
    expect(series).toEqual([
      "copy",
      "flicker",
      "interpolated, 1 in-between",
      "copy",
      "flicker",
      "interpolated, 1 in-between",
    ]);
    expect(svg.match(/<polyline class="reference"/g)).toHaveLength(2);
    const points = [...svg.matchAll(/class="series"[^>]*points="([^"]*)"/g)].map(
      (m) => m[1]?.split(" ").length,
    );
    expect(points).toEqual([N - 1, N - 1, N - 1, N - 1, N - 1, N - 1]);
  });

  it("writes a CSV row per strategy, a per-frame CSV, a JSON and a table", async () => {
    const csv = (await readFile(join(out, "metrics.csv"), "utf8")).trimEnd().split("\n");
    expect(csv[0]).toBe(CSV_HEADER.join(","));
    expect(csv).toHaveLength(1 + entries.length);
    expect(csv.slice(1).map((l) => l.split(",")[0])).toEqual(["copy", "flicker", '"interpolated']);
    expect(csv[2]?.split(",").at(-1)).toBe("1.25");
    const perFrame = (await readFile(join(out, "metrics-per-frame.csv"), "utf8")).trimEnd().split("\n");
    expect(perFrame).toHaveLength(1 + 3 * N);
    const json = JSON.parse(await readFile(join(out, "metrics.json"), "utf8")) as Record<string, unknown>;
    expect(json["schema"]).toBe("steadyframe-study/1");
    expect(
      (json["entries"] as { perFrame: { warpError: unknown[] } }[])[1]?.perFrame.warpError[0],
    ).toBeNull();
    const table = await readFile(join(out, "table.md"), "utf8");
    expect(table).toMatch(/\| flicker \| 5 \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| 1\.25 \|/);
    expect(table).toContain("| interpolated, 1 in-between | 9 (5 measured) |");
    expect(table).toContain("lower is better");
  });

  it("leaves depth out without a model, and can skip labels", async () => {
    const dir = join(root, "no-depth");
    const r = await writeStudyReport(dir, entries.slice(0, 2), {
      source: join(root, "source"),
      width: W,
      height: H,
      labels: false,
    });
    expect(r.entries[0]?.depthPearson).toBeNull();
    expect(r.grid.labels).toBe(false);
    expect(r.grid.frames).toBe(N);
    const table = await readFile(join(dir, "table.md"), "utf8");
    expect(table).toContain("| copy | 5 | ");
    expect(table).toMatch(/\| copy \| 5 \| [^|]+ \| [^|]+ \| 1 \| – \| 0\.5 \|/);
    const info = await probeVideo(join(dir, "grid.mp4"));
    expect([info.width, info.height]).toEqual([3 * W + 2 * 2, H]);
  });

  it("refuses bad entries before writing anything", async () => {
    const dir = join(root, "refused");
    const options = { source: join(root, "source"), width: W, height: H };
    await expect(
      writeStudyReport(dir, [entries[0]!, { ...entries[1]!, name: "copy" }], options),
    ).rejects.toThrow(InvalidArgumentError);
    await expect(writeStudyReport(dir, entries, { ...options, width: 16 })).rejects.toThrow(
      /entries\[0\] \(copy\) frame size/,
    );
    await expect(writeStudyReport(dir, [], options)).rejects.toThrow(InvalidArgumentError);
    await expect(readdir(dir)).rejects.toThrow();
  });

  it("a cancelled report leaves the folder as it was", async () => {
    const controller = new AbortController();
    const run = writeStudyReport(out, entries, {
      source: join(root, "source"),
      width: W,
      height: H,
      signal: controller.signal,
      onProgress: (e) => {
        if (e.status === "progress" && e.done === 3) controller.abort();
      },
    });
    const before = await readFile(join(out, "metrics.json"));
    await expect(run).rejects.toThrow(CancelledError);
    expect((await readdir(out)).sort()).toEqual(OUTPUTS);
    expect((await readFile(join(out, "metrics.json"))).equals(before)).toBe(true);
  });
});
