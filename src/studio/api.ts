/**
 * The studio's HTTP API as JSON shapes: what the server (./server.ts) sends and what the web app
 * (studio/src/) reads. Types only, no imports, so the browser build can share this file. Paths in the
 * API are always relative to their root (the models folder, the clips folder, the outputs folder);
 * the server resolves and checks them (./paths.ts).
 */

/** An error as the studio shows it: the typed error's message and hint, never a stack trace. */
export interface ApiError {
  readonly code: string;
  readonly message: string;
  readonly hint: string | null;
}

/** The four strategy options of the engine (src/engine/strategies.ts) and their knobs. */
export interface ApiStrategy {
  readonly controlsFrom: string;
  readonly noise: string;
  readonly attention: string;
  readonly fusion: string;
  readonly interpolate?: number;
  readonly interpolateMode?: "blend" | "flow";
  readonly strength?: number;
  readonly noiseRatio?: number;
  readonly keyframes?: number;
  readonly fusionStrength?: number;
  readonly fusionEnd?: number;
}

export interface ApiLimits {
  readonly maxUploadBytes: number;
  /** Frames of an uploaded clip and of a render. */
  readonly maxFrames: number;
  /** Largest side of a preview or a render, in pixels. */
  readonly maxSide: number;
  readonly maxSteps: number;
}

export interface ApiState {
  readonly version: string;
  /** Diffusers pipeline folders (model_index.json) under the models folder. */
  readonly models: readonly string[];
  /** ControlNet folders (config.json of a ControlNetModel) under the models folder. */
  readonly controlnets: readonly string[];
  /** Video files in the clips folder. */
  readonly clips: readonly string[];
  /** True when a depth model is configured (--depth): depth previews and depth ControlNets. */
  readonly depth: boolean;
  readonly choices: {
    readonly controlsFrom: readonly string[];
    readonly noise: readonly string[];
    readonly attention: readonly string[];
    readonly fusion: readonly string[];
  };
  readonly limits: ApiLimits;
}

export interface ApiClipInfo {
  readonly clip: string;
  readonly width: number;
  readonly height: number;
  readonly fps: number;
  readonly frames: number | null;
  readonly codec: string;
  readonly bytes: number;
}

export interface PreviewRequest {
  readonly clip: string;
  readonly frame: number;
  readonly width: number;
  readonly height: number;
  readonly canny: { readonly threshold1: number; readonly threshold2: number };
  /** Flow magnitude (pixels) shown at full brightness. */
  readonly flowScale: number;
}

export interface PreviewMap {
  /** "source", "canny", "flow", "occlusion", "depth". */
  readonly name: string;
  readonly label: string;
  /** The parameters the map was made with, in words. */
  readonly params: string;
  /** data:image/png;base64,... */
  readonly png: string;
}

export interface PreviewResponse {
  readonly clip: string;
  readonly frame: number;
  readonly frames: number;
  readonly width: number;
  readonly height: number;
  readonly maps: readonly PreviewMap[];
}

export interface RenderRequest {
  readonly clip: string;
  readonly model: string;
  /** A ControlNet folder under the models folder, or null for none. */
  readonly controlnet: string | null;
  readonly control: "canny" | "depth";
  readonly canny?: { readonly threshold1: number; readonly threshold2: number };
  readonly prompt: string;
  readonly negativePrompt?: string;
  readonly width: number;
  readonly height: number;
  readonly frames: number;
  readonly steps: number;
  readonly seed: string;
  readonly guidanceScale: number;
  /** One render per strategy, run one after another. */
  readonly strategies: readonly ApiStrategy[];
}

export type JobState = "queued" | "running" | "done" | "failed" | "cancelled";

/** A render or a comparison, as the live view follows it. */
export interface ApiJob {
  readonly id: string;
  readonly kind: "render" | "compare";
  readonly state: JobState;
  /** The strategy name ("source/shared/first/none") or the compared runs. */
  readonly title: string;
  /** The current task ("loading models", "video frames", "denoising", "study report") and its count. */
  readonly task: string | null;
  readonly done: number;
  readonly total: number | null;
  readonly frames: { readonly done: number; readonly total: number | null };
  readonly steps: { readonly done: number; readonly total: number | null };
  /** Frame indices finished so far (render). */
  readonly finished: readonly number[];
  readonly error: ApiError | null;
  readonly started: string;
}

/** One finished render, read from its run.json. */
export interface ApiRun {
  readonly id: string;
  readonly strategy: string;
  readonly frames: number;
  readonly width: number;
  readonly height: number;
  readonly created: string;
  readonly prompt: string;
  /** The clip's file name. */
  readonly source: string | null;
  readonly model: string;
  readonly secondsPerFrame: number | null;
  readonly fps: number;
}

export interface ApiCompareEntry {
  readonly run: string;
  readonly name: string;
  readonly frames: number;
  readonly warpError: number | null;
  readonly flickerIndex: number | null;
  readonly edgeF1: number | null;
  readonly depthPearson: number | null;
  readonly secondsPerFrame: number;
}

export interface ApiComparison {
  readonly id: string;
  readonly runs: readonly string[];
  readonly width: number;
  readonly height: number;
  readonly fps: number;
  readonly input: { readonly warpError: number | null; readonly flickerIndex: number | null };
  readonly entries: readonly ApiCompareEntry[];
}

/** Server-sent events of /api/events (one JSON object per `data:` line). */
export type ApiEvent =
  | { readonly type: "jobs"; readonly jobs: readonly ApiJob[] }
  | { readonly type: "job"; readonly job: ApiJob }
  | { readonly type: "frame"; readonly id: string; readonly index: number };
