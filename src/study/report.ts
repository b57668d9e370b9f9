/**
 * `writeStudyReport(dir, entries, options)`: turns the finished renders of a study (one PNG folder
 * per strategy, all made from one source clip) into the study's outputs in `dir`:
 *
 * - `grid.mp4`: the input video and every render side by side, each tile captioned with its name;
 * - `table.md`, `metrics.csv`, `metrics-per-frame.csv`, `metrics.json`: warp error (against the
 *   source's flow and occlusion), flicker index, edge F1 (against the source's Canny edges), depth
 *   agreement (with a depth model), CLIP-F and CLIP-T (with a CLIP model, see ./clip-scores.ts) and
 *   seconds per frame, per strategy and per frame;
 * - `plot.svg`: per-frame flicker and warp-error curves per strategy.
 *
 * This is the founding study's comparison (methods.md C/E) made reproducible; the per-pair formulas
 * are those of src/metrics/ (see ./measure.ts). Streaming: the source is decoded once by ffmpeg and
 * each render's PNGs are read one at a time, so memory holds a few frames per strategy plus one
 * number per frame and metric, whatever the clip's length. Renders with more frames per source
 * frame (interpolated strategies) are measured at the source's frames and time-aligned in the grid
 * (see {@link StudyEntry.framesPerSourceFrame}). The six files are published together: built under
 * temporary names in `dir` and renamed only when all are complete, so a failed or cancelled report
 * leaves `dir` as it was.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { InvalidArgumentError, throwIfAborted } from "../errors.js";
import type { Image } from "../image.js";
import type { LongTaskOptions } from "../progress.js";
import { loadCv } from "../control/opencv.js";
import { readImageFile } from "../control/png.js";
import type { WarpDistance } from "../metrics/warp-error.js";
import { withAtomicFiles } from "../util/atomic-write.js";
import { grid, toRgb } from "../video/compose.js";
import { probeVideo, rationalValue } from "../video/probe.js";
import { readFrames, type Frame } from "../video/read.js";
import { resolveSource } from "../video/source.js";
import { writeVideo } from "../video/write.js";
import {
  ClipScoreMeter,
  PromptEmbeddings,
  checkClipOptions,
  clipDefinition,
  type StudyClipOptions,
} from "./clip-scores.js";
import { captionHeight, captioned, renderCaptions } from "./labels.js";
import {
  ClipMeter,
  sourceInstant,
  type DepthModel,
  type MeasureSettings,
  type SourceInstant,
} from "./measure.js";
import { plotSvg } from "./plot-svg.js";
import { markdownTable, perFrameCsv, reportJson, summaryCsv } from "./table.js";
import type { EntryReport, StudyDefinitions, StudyEntry, StudyFiles, StudyReport } from "./types.js";

export type { DepthModel } from "./measure.js";
export type { StudyClipOptions } from "./clip-scores.js";
export type * from "./types.js";

export interface StudyReportOptions extends LongTaskOptions {
  /** The source clip the renders were made from: a video file or a PNG folder / pattern. */
  readonly source: string;
  /** The study's frame size: the source is decoded at it, every render must have it. */
  readonly width: number;
  readonly height: number;
  /**
   * (optional) frame rate of the source frames (the grid plays the input at this rate). Default:
   * the source's own (24 for a PNG folder). The source is never resampled: render frame
   * t · framesPerSourceFrame is compared with source frame t, as the engine made it.
   */
  readonly fps?: number;
  /** (optional) use at most the first N source frames (default: as many as the longest render covers). */
  readonly maxFrames?: number;
  /** (optional, default 100 / 200) Canny thresholds of the edge F1; use the ones of the renders' control. */
  readonly canny?: { readonly threshold1: number; readonly threshold2: number };
  /** (optional) a depth model (e.g. `DepthEstimator`): adds depth agreement to the table. */
  readonly depth?: DepthModel;
  /** (optional, default "l1") per-value distance of the warp error ("l2": Lai et al.'s squares). */
  readonly warpDistance?: WarpDistance;
  /** (optional, default true) caption each grid tile with its name. */
  readonly labels?: boolean;
  /**
   * (optional) a CLIP model (e.g. a loaded `ClipScorer`) and the prompt: adds CLIP-F (and, with a
   * prompt, CLIP-T) of each render and of the input video, measured at the source's frames.
   */
  readonly clip?: StudyClipOptions;
}

/** Where the six outputs go in `dir`. */
export function studyFiles(dir: string): StudyFiles {
  return {
    grid: join(dir, "grid.mp4"),
    table: join(dir, "table.md"),
    csv: join(dir, "metrics.csv"),
    perFrameCsv: join(dir, "metrics-per-frame.csv"),
    json: join(dir, "metrics.json"),
    plot: join(dir, "plot.svg"),
  };
}

/** Pixels between grid tiles. */
const GAP = 2;
const TASK = "study report";

function checkArguments(dir: string, entries: readonly StudyEntry[], o: StudyReportOptions): void {
  if (typeof dir !== "string" || dir.length === 0)
    throw new InvalidArgumentError("dir", "an output folder path", dir);
  if (!Array.isArray(entries) || entries.length === 0)
    throw new InvalidArgumentError("entries", "at least one finished render", entries);
  const positiveInt = (name: string, v: number | undefined): void => {
    if (v !== undefined && (!Number.isInteger(v) || v < 1))
      throw new InvalidArgumentError(name, "a positive integer", v);
  };
  positiveInt("width", o.width);
  positiveInt("height", o.height);
  positiveInt("maxFrames", o.maxFrames);
  if (o.fps !== undefined && (!Number.isFinite(o.fps) || o.fps <= 0))
    throw new InvalidArgumentError("fps", "a positive frame rate", o.fps);
  if (o.canny !== undefined) {
    for (const key of ["threshold1", "threshold2"] as const) {
      const v = o.canny[key];
      if (!Number.isFinite(v) || v < 0) throw new InvalidArgumentError(`canny.${key}`, "a number >= 0", v);
    }
  }
  if (o.warpDistance !== undefined && o.warpDistance !== "l1" && o.warpDistance !== "l2")
    throw new InvalidArgumentError("warpDistance", '"l1" or "l2"', o.warpDistance);
  if (o.clip !== undefined) checkClipOptions(o.clip);
  const seen = new Set<string>();
  for (const [i, e] of entries.entries()) {
    if (typeof e.name !== "string" || e.name.trim().length === 0)
      throw new InvalidArgumentError(`entries[${i}].name`, "a non-empty strategy name", e.name);
    if (seen.has(e.name)) {
      throw new InvalidArgumentError(`entries[${i}].name`, "a name no other entry has", e.name, {
        hint: "give each render its own name (it labels the table row, the tile and the curve)",
      });
    }
    seen.add(e.name);
    if (!Number.isFinite(e.secondsPerFrame) || e.secondsPerFrame < 0)
      throw new InvalidArgumentError(
        `entries[${i}].secondsPerFrame`,
        "a number of seconds >= 0",
        e.secondsPerFrame,
      );
    positiveInt(`entries[${i}].framesPerSourceFrame`, e.framesPerSourceFrame);
  }
}

/** A render's frames, read one at a time; an index past the end gives the last frame (held). */
class RenderFrames {
  private cached: { readonly index: number; readonly image: Image } | undefined;

  private constructor(
    readonly entry: StudyEntry,
    readonly label: string,
    readonly files: readonly string[],
    readonly perSourceFrame: number,
    private readonly size: { readonly width: number; readonly height: number },
  ) {}

  static async open(
    entry: StudyEntry,
    i: number,
    size: { readonly width: number; readonly height: number },
  ): Promise<RenderFrames> {
    const source = await resolveSource(entry.framesDir);
    if (source.kind !== "png-sequence") {
      throw new InvalidArgumentError(`entries[${i}].framesDir`, "a folder of PNG frames", entry.framesDir, {
        hint: "render to a folder (a PNG sequence), not to a video file",
      });
    }
    const render = new RenderFrames(
      entry,
      `entries[${i}] (${entry.name})`,
      source.files,
      entry.framesPerSourceFrame ?? 1,
      size,
    );
    await render.frame(0); // checks the size before any work
    return render;
  }

  get count(): number {
    return this.files.length;
  }

  async frame(index: number): Promise<Image> {
    const j = Math.min(index, this.files.length - 1);
    if (this.cached?.index === j) return this.cached.image;
    const file = this.files[j] ?? "";
    const image = toRgb(await readImageFile(file));
    if (image.width !== this.size.width || image.height !== this.size.height) {
      throw new InvalidArgumentError(
        `${this.label} frame size`,
        `${this.size.width}x${this.size.height} (the study's size)`,
        `${image.width}x${image.height}`,
        {
          hint: `${file} was rendered at another size; render every strategy at the study's width and height`,
        },
      );
    }
    this.cached = { index: j, image };
    return image;
  }
}

/** The source, decoded in order; past its end the last frame is held (`index` says which it is). */
class SourceFrames {
  private readonly iterator: AsyncGenerator<Frame, void, undefined>;
  private last: Frame | undefined;
  private ended = false;

  constructor(path: string, options: StudyReportOptions, maxFrames: number) {
    this.iterator = readFrames(path, {
      resize: { width: options.width, height: options.height, kernel: "area" },
      colorMatrix: "opencv",
      maxFrames,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
  }

  get decoded(): number {
    return this.last === undefined ? 0 : this.last.index + 1;
  }

  async frame(i: number): Promise<Frame> {
    while (!this.ended && (this.last === undefined || this.last.index < i)) {
      const r = await this.iterator.next();
      if (r.done === true) this.ended = true;
      else this.last = r.value;
    }
    if (this.last === undefined) throw new InvalidArgumentError("source", "a clip with frames", undefined);
    return this.last;
  }

  async close(): Promise<void> {
    await this.iterator.return(undefined);
  }
}

function definitions(
  options: StudyReportOptions,
  canny: { threshold1: number; threshold2: number },
): StudyDefinitions {
  const distance = options.warpDistance ?? "l1";
  const flow =
    "Farneback on the source frames (OpenCV: pyr_scale 0.5, levels 3, winsize 15, iterations 3, poly_n 5, poly_sigma 1.2, flags 0)";
  const occlusion =
    "the source's forward-backward test |w + ŵ|² < 0.01 (|w|² + |ŵ|²) + 0.5 AND the match inside the frame (Lai et al. 2018)";
  return {
    warpError: {
      distance,
      flow,
      occlusion,
      text:
        `mean over consecutive source-frame pairs (t-1, t) of the ${distance === "l1" ? "L1 (absolute)" : "L2 (squared)"} ` +
        "difference between render frame t-1 and render frame t warped back onto it (bilinear remap, " +
        `values / 255, mean over RGB), counted only on pixels that pass ${occlusion}; the flow is ${flow}. ` +
        "Flow and mask come from the input video, as in Lai et al. 2018.",
    },
    flicker:
      "mean over consecutive source-frame pairs of |L̄_t − L̄_(t-1)|, L̄ the frame's mean BT.601 luma " +
      "(0.299 R + 0.587 G + 0.114 B) / 255; no flow involved, it catches brightness pumping.",
    edgeF1: {
      canny,
      tolerance: 2,
      text:
        `F1 of Canny(gray(render frame)) against Canny(gray(source frame)) (thresholds ${canny.threshold1}, ` +
        `${canny.threshold2}; an edge pixel matches when the other map has one within 2 px), mean over frames.`,
    },
    depth:
      options.depth === undefined
        ? null
        : "Pearson r between the depth model's maps of the render frame and of the source frame, mean " +
          "over frames (1 = same layout); the aligned MSE after a least-squares scale and shift (lower " +
          "is better) is in metrics.csv and metrics.json.",
    sampling:
      "Metrics are taken at the source's frames: source frame t is compared with render frame t · k, " +
      "k = frames per source frame (1, or n + 1 for an interpolated render with n in-between frames, whose " +
      "in-between frames are shown in the grid but not measured); a render covering fewer source frames is " +
      "measured on those it covers (“n measured”). The grid runs on the finest time base, K = the largest k, " +
      "at fps · K: a render with k < K shows each frame K / k times, and a clip that ends early holds its last frame.",
    ...(options.clip === undefined ? {} : { clip: clipDefinition(options.clip) }),
  };
}

/** Writes the study's six outputs into `dir` (see the module comment) and returns their numbers. */
export async function writeStudyReport(
  dir: string,
  entries: readonly StudyEntry[],
  options: StudyReportOptions,
): Promise<StudyReport> {
  // 1. Check the arguments, the renders (folders, first frame's size) and the source, before any work.
  checkArguments(dir, entries, options);
  const { signal, onProgress } = options;
  const size = { width: options.width, height: options.height };
  const renders: RenderFrames[] = [];
  for (const [i, e] of entries.entries()) renders.push(await RenderFrames.open(e, i, size));
  const probe = await probeVideo(options.source);
  const fps = options.fps ?? rationalValue(probe.fps);
  const canny = {
    threshold1: options.canny?.threshold1 ?? 100,
    threshold2: options.canny?.threshold2 ?? 200,
  };
  const settings: MeasureSettings = { canny, distance: options.warpDistance ?? "l1", depth: options.depth };

  // 2. Time bases: source frames needed, the grid's finest step K and its length.
  const covered = (r: RenderFrames): number => Math.floor((r.count - 1) / r.perSourceFrame) + 1;
  const needed = Math.min(options.maxFrames ?? Infinity, Math.max(...renders.map(covered)));
  const K = Math.max(...renders.map((r) => r.perSourceFrame));
  const gridFrames = Math.max(...renders.map((r) => Math.ceil((r.count * K) / r.perSourceFrame)));

  // 3. Tile captions, drawn once ("input" is the source clip: a strategy may well be named "source").
  const tiles = ["input", ...entries.map((e) => e.name)];
  let captions: Image[] | undefined;
  let labelNote: string | null = null;
  if (options.labels ?? true) {
    captions = await renderCaptions(tiles, size.width, captionHeight(size.height));
    if (captions === undefined)
      labelNote = "the grid's tiles are not labelled: no font could be rendered (install fonts-dejavu-core)";
  } else {
    labelNote = "the grid's tiles are not labelled (labels: false)";
  }
  // One row up to four tiles (input + three strategies), else a near-square grid.
  const columns = tiles.length <= 4 ? tiles.length : Math.ceil(Math.sqrt(tiles.length));
  const gridOptions = { gap: GAP, background: [0, 0, 0] as const, columns };

  // 4. One pass over the grid's frames: encode them, and measure at every source frame.
  const cv = await loadCv();
  const source = new SourceFrames(options.source, options, needed);
  const input = new ClipMeter(settings);
  const meters = renders.map(() => new ClipMeter(settings));
  // CLIP-F / CLIP-T: a few frames per clip are queued and encoded together (see ./clip-scores.ts).
  const clip = options.clip;
  const prompts = clip === undefined ? undefined : new PromptEmbeddings(clip.encoder);
  const clipMeter = (label: string): ClipScoreMeter | undefined =>
    clip === undefined || prompts === undefined
      ? undefined
      : new ClipScoreMeter(clip, prompts, label, signal);
  const inputClip = clipMeter("the input video");
  const renderClips = renders.map((r) => clipMeter(r.label));
  let gridSize = { width: 0, height: 0 };
  async function* frames(): AsyncGenerator<Image, void, undefined> {
    let instant: SourceInstant | undefined;
    for (let g = 0; g < gridFrames; g++) {
      throwIfAborted(signal, TASK);
      const i = Math.floor(g / K);
      const src = await source.frame(i);
      const measure = g % K === 0 && src.index === i;
      if (measure) {
        instant = await sourceInstant(cv, i, src, instant, settings);
        await input.add(cv, src, instant, {
          edges: instant.edges,
          ...(instant.depth ? { depth: instant.depth } : {}),
        });
        await inputClip?.add(src, i);
      }
      const images: Image[] = [src];
      for (const [e, r] of renders.entries()) {
        const image = await r.frame(Math.floor((g * r.perSourceFrame) / K));
        images.push(image);
        // At g = i·K the render shows its frame i·k exactly: the one that belongs to source frame i.
        if (measure && instant !== undefined && i * r.perSourceFrame < r.count) {
          await meters[e]?.add(cv, image, instant);
          await renderClips[e]?.add(image, i * r.perSourceFrame);
        }
      }
      const cells =
        captions === undefined ? images : images.map((im, t) => captioned(captions?.[t] ?? im, im));
      const composed = grid(cells, gridOptions);
      gridSize = { width: composed.width, height: composed.height };
      yield composed;
      onProgress?.({ status: "progress", task: TASK, done: g + 1, total: gridFrames });
    }
  }

  const files = studyFiles(dir);
  onProgress?.({ status: "start", task: TASK, total: gridFrames });
  try {
    return await withAtomicFiles(
      [files.grid, files.table, files.csv, files.perFrameCsv, files.json, files.plot],
      async ([gridTemp, tableTemp, csvTemp, perFrameTemp, jsonTemp, plotTemp]) => {
        await writeVideo(gridTemp ?? "", frames(), {
          fps: fps * K,
          totalFrames: gridFrames,
          ...(signal === undefined ? {} : { signal }),
        });
        // 5. The numbers (the last CLIP batches first), then the text outputs.
        for (const m of [inputClip, ...renderClips]) await m?.flush();
        const clipNumbers = (m: ClipScoreMeter | undefined) =>
          m === undefined ? { numbers: {}, series: {} } : { numbers: m.summary(), series: m.series };
        const entryReports: EntryReport[] = renders.map((r, e) => {
          const meter = meters[e] ?? new ClipMeter(settings);
          const scores = clipNumbers(renderClips[e]);
          return {
            name: r.entry.name,
            framesDir: r.entry.framesDir,
            frames: r.count,
            framesPerSourceFrame: r.perSourceFrame,
            secondsPerFrame: r.entry.secondsPerFrame,
            ...meter.summary(),
            ...scores.numbers,
            perFrame: { ...meter.series, ...scores.series },
          };
        });
        const inputScores = clipNumbers(inputClip);
        const report: StudyReport = {
          dir,
          files,
          source: options.source,
          width: size.width,
          height: size.height,
          fps,
          sourceFrames: source.decoded,
          input: {
            name: "input",
            ...input.summary(),
            ...inputScores.numbers,
            perFrame: { ...input.series, ...inputScores.series },
          },
          entries: entryReports,
          grid: {
            frames: gridFrames,
            fps: fps * K,
            ...gridSize,
            tiles,
            labels: captions !== undefined,
            labelNote,
          },
          definitions: definitions(options, canny),
        };
        const reference = { name: "input video", values: input.series.flicker };
        const plot = plotSvg(
          [
            {
              title: "Flicker: |ΔL̄| between consecutive frames (lower is better)",
              yLabel: "|ΔL̄|",
              series: entryReports.map((e) => ({ name: e.name, values: e.perFrame.flicker })),
              reference,
            },
            {
              title: `Warp error (${settings.distance}, source flow, occlusion-masked; lower is better)`,
              yLabel: "warp error",
              series: entryReports.map((e) => ({ name: e.name, values: e.perFrame.warpError })),
              reference: { name: "input video", values: input.series.warpError },
            },
          ],
          `Study of ${options.source}`,
        );
        const outputs: [string | undefined, string][] = [
          [tableTemp, markdownTable(report)],
          [csvTemp, summaryCsv(report)],
          [perFrameTemp, perFrameCsv(report)],
          [jsonTemp, reportJson(report)],
          [plotTemp, plot],
        ];
        for (const [temp, text] of outputs) await writeFile(temp ?? "", text, { flag: "wx" });
        return report;
      },
      signal === undefined ? {} : { signal },
    );
  } finally {
    await source.close();
    onProgress?.({ status: "done", task: TASK });
  }
}
