/**
 * The study report's inputs and results: what `writeStudyReport` is given (finished renders as PNG
 * folders) and what it returns and writes to metrics.json.
 */
import type { ClipScoreSeries } from "./clip-scores.js";
import type { ClipSummary, FrameSeries } from "./measure.js";
import type { WarpDistance } from "../metrics/warp-error.js";

/** One finished render of the study. */
export interface StudyEntry {
  /** The strategy's name: the table row, the CSV row, the tile label and the plot legend. Unique. */
  readonly name: string;
  /** PNG sequence folder of the render (frame_000000.png ...), frames at the study's size. */
  readonly framesDir: string;
  /** Generation time per output frame, as the renderer measured it. */
  readonly secondsPerFrame: number;
  /**
   * (optional, default 1) render frames per source frame: a render with n in-between frames per
   * source pair (`--controls-from interpolated`) has n + 1, its frame j shows source time j / (n + 1).
   */
  readonly framesPerSourceFrame?: number;
}

/** The numbers of one strategy (or of the input video itself). */
export interface ClipReport extends ClipSummary {
  readonly name: string;
  /** Mean CLIP-F (consecutive-frame cosine); only with the `clip` option. */
  readonly clipF?: number | null;
  /** Mean CLIP-T (frame-prompt cosine); only with the `clip` option (null without a prompt). */
  readonly clipT?: number | null;
  /** Per source frame: see {@link FrameSeries} (and {@link ClipScoreSeries} with the `clip` option). */
  readonly perFrame: FrameSeries & Partial<ClipScoreSeries>;
}

export interface EntryReport extends ClipReport {
  readonly framesDir: string;
  /** Frames in the render. */
  readonly frames: number;
  readonly framesPerSourceFrame: number;
  readonly secondsPerFrame: number;
}

/** How the report measured and composed, recorded in metrics.json and stated in table.md. */
export interface StudyDefinitions {
  readonly warpError: {
    readonly distance: WarpDistance;
    readonly flow: string;
    readonly occlusion: string;
    readonly text: string;
  };
  readonly flicker: string;
  readonly edgeF1: {
    readonly canny: { readonly threshold1: number; readonly threshold2: number };
    readonly tolerance: number;
    readonly text: string;
  };
  readonly depth: string | null;
  readonly sampling: string;
  /** CLIP-F / CLIP-T: the model, the prompt (null: CLIP-F only) and the text; only with the `clip` option. */
  readonly clip?: { readonly model: string; readonly prompt: string | null; readonly text: string };
}

export interface StudyFiles {
  readonly grid: string;
  readonly table: string;
  readonly csv: string;
  readonly perFrameCsv: string;
  readonly json: string;
  readonly plot: string;
}

export interface StudyGrid {
  readonly frames: number;
  readonly fps: number;
  readonly width: number;
  readonly height: number;
  /** Tile order: "input" then the entries. */
  readonly tiles: readonly string[];
  readonly labels: boolean;
  /** Why tiles are unlabelled, when they are. */
  readonly labelNote: string | null;
}

export interface StudyReport {
  readonly dir: string;
  readonly files: StudyFiles;
  readonly source: string;
  readonly width: number;
  readonly height: number;
  /** Frame rate of the source frames (the time base of framesPerSourceFrame). */
  readonly fps: number;
  /** Source frames decoded and measured against. */
  readonly sourceFrames: number;
  /** The input video measured against itself: the floor a perfectly consistent render reaches. */
  readonly input: ClipReport;
  readonly entries: readonly EntryReport[];
  readonly grid: StudyGrid;
  readonly definitions: StudyDefinitions;
}
