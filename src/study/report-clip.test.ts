/**
 * writeStudyReport's `clip` option (CLIP-F / CLIP-T, issue 9 item 4): the columns appear in table.md,
 * metrics.csv, metrics-per-frame.csv and metrics.json only when given; the streamed, batched numbers
 * equal src/metrics/clip-score.ts's whole-clip `clipScores` on the same frames; identical frames give
 * CLIP-F = 1 (with a stand-in encoder and with a tiny real CLIPModel); without the option every text
 * output is what it was.
 */
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../errors.js";
import { image, type Image } from "../image.js";
import { writePngFile } from "../control/png.js";
import { ClipScorer, clipScores, cosineSimilarity } from "../metrics/clip-score.js";
import { tensor, type HostTensor } from "../tensor.js";
import { texture } from "../../test/helpers/synthetic-images.js";
import { writeTinyClipModel } from "../../test/helpers/tiny-clip-model.js";
import { makeTempDir } from "../../test/helpers/video.js";
import { writeStudyReport, type StudyEntry, type StudyReport } from "./report.js";
import { CLIP_CSV_COLUMNS, CSV_HEADER, PER_FRAME_CSV_HEADER } from "./table.js";

const W = 32;
const H = 32;
const N = 5;

function sourceFrame(t: number): Image {
  const base = texture(W, H, { dx: 2 * t, channels: 3 });
  const data = Uint8Array.from(base.data);
  for (let y = 8; y < 20; y++)
    for (let x = 4 + 3 * t; x < 14 + 3 * t; x++) data.set([250, 40 * t, 230 - 40 * t], (y * W + x) * 3);
  return image(W, H, 3, data);
}

async function writeFrames(dir: string, frames: readonly Image[]): Promise<string> {
  await mkdir(dir, { recursive: true });
  for (const [i, f] of frames.entries())
    await writePngFile(join(dir, `frame_${String(i).padStart(6, "0")}.png`), f);
  return dir;
}

/** A stand-in CLIP: 6 image features (channel means of the whole frame and of its left half), 6 text ones. */
class FakeClip {
  readonly batches: number[] = [];

  encodeImages(images: readonly Image[]): Promise<{ imageEmbeds: HostTensor<"float32"> }> {
    this.batches.push(images.length);
    const data = new Float32Array(images.length * 6);
    for (const [k, im] of images.entries()) {
      for (let p = 0; p < im.width * im.height; p++) {
        const left = p % im.width < im.width / 2;
        for (let c = 0; c < 3; c++) {
          const v = (im.data[p * 3 + c] ?? 0) / 255 - 0.4;
          data[k * 6 + c] = (data[k * 6 + c] ?? 0) + v / (im.width * im.height);
          if (left) data[k * 6 + 3 + c] = (data[k * 6 + 3 + c] ?? 0) + v / (im.width * im.height);
        }
      }
    }
    return Promise.resolve({ imageEmbeds: tensor("float32", [images.length, 6], data) });
  }

  encodePrompt(prompt: string): Promise<HostTensor<"float32">> {
    const v = Float32Array.from({ length: 6 }, (_, i) =>
      Math.sin((prompt.charCodeAt(i % prompt.length) + i) * 0.7),
    );
    return Promise.resolve(tensor("float32", [1, 6], v));
  }
}

/** table.md of a CLIP report with the CLIP-F / CLIP-T columns and legend line taken out. */
function withoutClip(table: string, columns: number): string {
  return table
    .split("\n")
    .filter((l) => !l.startsWith("- **CLIP-F, CLIP-T**"))
    .map((l) => {
      if (l.startsWith("|---")) return l.replace("---:|".repeat(columns), "");
      if (!l.startsWith("|")) return l;
      const cells = l.split(" |");
      // cells: "| name", frames, warp, flicker, edge, depth, [CLIP...], s/frame, ""
      cells.splice(6, columns);
      return cells.join(" |");
    })
    .join("\n");
}

describe("writeStudyReport with a CLIP model", () => {
  let root: string;
  let cleanup: () => Promise<void>;
  let source: Image[];
  let entries: StudyEntry[];
  let plain: StudyReport;
  let scored: StudyReport;
  let fake: FakeClip;
  const options = (): { source: string; width: number; height: number } => ({
    source: join(root, "source"),
    width: W,
    height: H,
  });

  beforeAll(async () => {
    ({ dir: root, cleanup } = await makeTempDir("steadyframe-study-clip-"));
    source = Array.from({ length: N }, (_, t) => sourceFrame(t));
    const interpolated: Image[] = [];
    for (const [t, f] of source.entries()) {
      interpolated.push(f);
      if (t + 1 < N) interpolated.push(sourceFrame(0)); // in-between frames are not measured
    }
    await writeFrames(join(root, "source"), source);
    entries = [
      { name: "copy", framesDir: await writeFrames(join(root, "copy"), source), secondsPerFrame: 0.5 },
      {
        name: "still",
        framesDir: await writeFrames(
          join(root, "still"),
          source.map(() => source[2] as Image),
        ),
        secondsPerFrame: 1,
      },
      {
        name: "interpolated",
        framesDir: await writeFrames(join(root, "interp"), interpolated),
        secondsPerFrame: 0.25,
        framesPerSourceFrame: 2,
      },
    ];
    plain = await writeStudyReport(join(root, "plain"), entries, options());
    fake = new FakeClip();
    scored = await writeStudyReport(join(root, "scored"), entries, {
      ...options(),
      clip: { encoder: fake, model: "fake-clip", prompt: "a red car", batchSize: 2 },
    });
  });
  afterAll(async () => cleanup());

  it("streams the whole-clip CLIP-F / CLIP-T of src/metrics in batches of at most batchSize", async () => {
    expect(Math.max(...fake.batches)).toBe(2);
    expect(fake.batches.reduce((a, b) => a + b, 0)).toBe(4 * N); // input + 3 renders, 5 measured frames each
    const whole = await clipScores(new FakeClip(), source, { prompt: "a red car", text: new FakeClip() });
    const [copy, still, interp] = scored.entries;
    expect(copy?.clipF).toBeCloseTo(whole.clipF ?? NaN, 12);
    expect(copy?.clipT).toBeCloseTo(whole.clipT ?? NaN, 12);
    expect(copy?.perFrame.clipF?.slice(1)).toEqual(whole.consecutive);
    expect(copy?.perFrame.clipF?.[0]).toBeNull();
    expect(scored.input.clipF).toBe(copy?.clipF);
    expect(scored.input.clipT).toBe(copy?.clipT);
    // The interpolated render is measured at the source's frames: its in-between frames do not count.
    expect(interp?.perFrame.clipF).toEqual(copy?.perFrame.clipF);
    expect(whole.clipF).toBeLessThan(0.999); // the moving clip is not scored as frozen
    // Identical frames: CLIP-F = 1.
    expect(Math.abs((still?.clipF ?? 0) - 1)).toBeLessThan(1e-9);
    expect(still?.perFrame.clipF?.slice(1).every((c) => Math.abs((c ?? 0) - 1) < 1e-9)).toBe(true);
  });

  it("adds the columns to table.md, both CSVs and metrics.json", async () => {
    const dir = join(root, "scored");
    const table = await readFile(join(dir, "table.md"), "utf8");
    expect(table).toContain("| depth agreement ↑ | CLIP-F ↑ | CLIP-T ↑ | s/frame ↓ |");
    expect(table).toContain("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    expect(table).toMatch(/\| still \| 5 \| [^|]+ \| [^|]+ \| [^|]+ \| – \| 1 \| -?[0-9.]+ \| 1 \|/);
    expect(table).toMatch(/- \*\*CLIP-F, CLIP-T\*\* \(higher is better\): .*model fake-clip.*“a red car”/);
    const csv = (await readFile(join(dir, "metrics.csv"), "utf8")).trimEnd().split("\n");
    expect(csv[0]).toBe([...CSV_HEADER.slice(0, -1), "clip_f", "clip_t", "seconds_per_frame"].join(","));
    expect(csv[2]?.split(",").slice(-3)).toEqual([
      String(scored.entries[1]?.clipF),
      String(scored.entries[1]?.clipT),
      "1",
    ]);
    const perFrame = (await readFile(join(dir, "metrics-per-frame.csv"), "utf8")).trimEnd().split("\n");
    expect(perFrame[0]).toBe([...PER_FRAME_CSV_HEADER, ...CLIP_CSV_COLUMNS].join(","));
    expect(perFrame[1]?.split(",").slice(-2)[0]).toBe(""); // CLIP-F of frame 0: no pair
    const json = JSON.parse(await readFile(join(dir, "metrics.json"), "utf8")) as {
      input: { clipF: number };
      entries: { clipT: number; perFrame: { clipT: number[] } }[];
      definitions: { clip: { model: string; prompt: string } };
    };
    expect(json.definitions.clip).toMatchObject({ model: "fake-clip", prompt: "a red car" });
    expect(json.input.clipF).toBe(scored.input.clipF);
    expect(json.entries[0]?.perFrame.clipT).toHaveLength(N);
  });

  it("without the option the outputs are as before: no CLIP column, key or line", async () => {
    const dir = join(root, "plain");
    const table = await readFile(join(dir, "table.md"), "utf8");
    expect(table).not.toContain("CLIP");
    expect(withoutClip(await readFile(join(root, "scored", "table.md"), "utf8"), 2)).toBe(table);
    const csv = await readFile(join(dir, "metrics.csv"), "utf8");
    expect(csv.split("\n")[0]).toBe(CSV_HEADER.join(","));
    const perFrame = await readFile(join(dir, "metrics-per-frame.csv"), "utf8");
    expect(perFrame.split("\n")[0]).toBe(PER_FRAME_CSV_HEADER.join(","));
    const json = await readFile(join(dir, "metrics.json"), "utf8");
    expect(json).not.toMatch(/"clip[FT]?"|CLIP/);
    expect(plain.entries[0]).not.toHaveProperty("clipF");
    expect(Object.keys(plain.definitions)).toEqual(["warpError", "flicker", "edgeF1", "depth", "sampling"]);
    // Same numbers either way.
    expect(scored.entries.map((e) => e.warpError)).toEqual(plain.entries.map((e) => e.warpError));
  });

  it("scores each frame against its own prompt (a function of the render frame); CLIP-F only without a prompt", async () => {
    const schedule = (j: number): string => (j >= 4 ? "a car in winter" : "a car in summer");
    const r = await writeStudyReport(join(root, "schedule"), [entries[0]!, entries[2]!], {
      ...options(),
      clip: {
        encoder: new FakeClip(),
        model: "fake-clip",
        prompt: schedule,
        promptNote: "summer, then winter",
      },
    });
    const embeds = (await new FakeClip().encodeImages(source)).imageEmbeds;
    const row = (t: number): Float32Array => embeds.data.subarray(t * 6, t * 6 + 6);
    const text = async (p: string): Promise<Float32Array> => (await new FakeClip().encodePrompt(p)).data;
    const expected = async (prompts: readonly string[]): Promise<number[]> =>
      Promise.all(prompts.map(async (p, t) => cosineSimilarity(row(t), await text(p))));
    const [s, w] = ["a car in summer", "a car in winter"];
    // copy: render frame t; interpolated: render frame 2t.
    expect(r.entries[0]?.perFrame.clipT).toEqual(await expected([s, s, s, s, w]));
    expect(r.entries[1]?.perFrame.clipT).toEqual(await expected([s, s, w, w, w]));
    expect(r.definitions.clip?.prompt).toBe("summer, then winter");

    const imageOnly = { encodeImages: (im: readonly Image[]) => new FakeClip().encodeImages(im) };
    const f = await writeStudyReport(join(root, "clip-f"), [entries[1]!], {
      ...options(),
      clip: { encoder: imageOnly, model: "fake-clip" },
    });
    expect(f.entries[0]?.clipT).toBeNull();
    expect(f.entries[0]?.perFrame.clipT).toBeUndefined();
    const table = await readFile(join(root, "clip-f", "table.md"), "utf8");
    expect(table).toContain("| CLIP-F ↑ | s/frame ↓ |");
    expect(table).toContain("CLIP-T: not measured");
    expect(withoutClip(table, 1)).not.toContain("CLIP");
    expect(
      (await readFile(join(root, "clip-f", "metrics.csv"), "utf8")).split("\n")[1]?.split(",").at(-2),
    ).toBe("");
    await expect(
      writeStudyReport(join(root, "refused"), [entries[1]!], {
        ...options(),
        clip: { encoder: imageOnly, model: "fake-clip", prompt: "a red car" },
      }),
    ).rejects.toThrow(InvalidArgumentError);
  });

  it("a tiny real CLIPModel (ClipScorer) gives CLIP-F = 1 for identical frames and cosines in [-1, 1]", async () => {
    const model = join(root, "tiny-clip");
    await writeTinyClipModel(model);
    const scorer = await ClipScorer.load(model);
    try {
      const r = await writeStudyReport(join(root, "real"), entries.slice(0, 2), {
        ...options(),
        clip: { encoder: scorer, model, prompt: "a red car" },
      });
      const [copy, still] = r.entries;
      expect(Math.abs((still?.clipF ?? 0) - 1)).toBeLessThan(1e-6);
      const whole = await scorer.score(source, "a red car");
      expect(copy?.clipF).toBeCloseTo(whole.clipF ?? NaN, 5);
      expect(copy?.clipT).toBeCloseTo(whole.clipT ?? NaN, 5);
      expect(Math.abs(copy?.clipF ?? 2)).toBeLessThanOrEqual(1);
    } finally {
      await scorer.release();
    }
  });
});
