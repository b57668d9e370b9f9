/**
 * `steadyframe study <clip> --model M --prompt P [--strategies ...] --out DIR`: the founding study's
 * experiment made reproducible. Renders one clip with a matrix of strategies (each with
 * `renderVideo`, src/engine/render.ts, into `DIR/renders/<name>/`, a PNG folder with its run.json)
 * and writes the comparison with `writeStudyReport` (src/study/report.ts): grid.mp4, table.md,
 * metrics.csv, metrics-per-frame.csv, metrics.json and plot.svg in DIR (methods.md C/E).
 *
 * Every flag of `steadyframe video` works here and applies to every strategy; `--strategies` lists
 * "controls/noise/attention/fusion" entries whose missing trailing parts come from those flags
 * (content-flow entries run without the ControlNets, which their content replaces). All cheap checks
 * run before the first model loads: flags, entries, source, DIR, and each strategy through the
 * engine's own planRender and method checks, so a combination that cannot work fails in a second, not
 * after the renders before it. `--resume` keeps the finished renders (their run.json is there, made
 * with the same options) and resumes a partial one through renderVideo's resume. `--clip DIR` (a
 * transformers CLIPModel folder) adds CLIP-F and CLIP-T to the report (src/study/clip-scores.ts).
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { InvalidArgumentError, SteadyframeError, throwIfAborted } from "../../errors.js";
import { DepthEstimator } from "../../control/depth.js";
import { keysAround, scheduleKeys, type PromptSchedule } from "../../engine/prompt-schedule.js";
import { planRender } from "../../engine/generate-video.js";
import { cannyAnnotator } from "../../engine/methods/annotator.js";
import { renderVideo } from "../../engine/render.js";
import { SourceVideo } from "../../engine/source.js";
import { parseStrategy, strategyMethods, strategyName, type Strategy } from "../../engine/strategies.js";
import { settingsDiff, workFolderFor } from "../../engine/work-folder.js";
import { ClipScorer } from "../../metrics/clip-score.js";
import { StableDiffusionPipeline } from "../../pipeline/stable-diffusion.js";
import { studyFiles, writeStudyReport, type StudyClipOptions, type StudyEntry } from "../../study/report.js";
import type { CliCommand, CliIO } from "../command.js";
import { checkOutputPath } from "../output-path.js";
import { videoProgress } from "../video-progress.js";
import { parseCommandArgs } from "./cli-options.js";
import { VIDEO_FLAGS, VIDEO_STRATEGY_HELP, commonSettings, strategyFromFlags } from "./video.js";

const STUDY_FLAGS = { ...VIDEO_FLAGS, strategies: { type: "string" }, clip: { type: "string" } } as const;

/**
 * The default matrix: the study's baseline (per-frame everything), its strategies 2–4, and the
 * fixes (shared noise + cross-frame attention, flow-warped noise + sparse-causal attention + fusion,
 * key-frame attention).
 */
export const DEFAULT_STRATEGIES = [
  "source/per-frame/per-frame/none",
  "source/fixed/per-frame/none",
  "previous-output/shared/first/none",
  "interpolated/shared/first/none",
  "content-flow/shared/per-frame/none",
  "source/shared/first/none",
  "source/flow-warped/first+previous/flow",
  "source/shared/keyframes/none",
] as const;

const USAGE = `Usage: steadyframe study CLIP --model DIR|FILE --prompt TEXT --out DIR [--strategies LIST] [options]

Renders CLIP with each strategy of LIST and compares them, as the founding study did. DIR receives:
  renders/<name>/         each strategy's frames (PNG), run.json (settings, seeds, timings), metrics.json
  grid.mp4                the input and every render side by side, each tile captioned with its name
  table.md, metrics.csv   warp error, flicker index, edge F1 against the source's Canny edges, depth
                          agreement (with --depth), CLIP-F and CLIP-T (with --clip), seconds per
                          frame: one row per strategy
  metrics-per-frame.csv, metrics.json   the same per source frame, and every definition
  plot.svg                per-frame flicker and warp-error curves per strategy

Strategies:
  --strategies LIST         comma-separated "controls/noise/attention/fusion" entries; missing trailing
                            parts come from --controls-from, --noise, --attention, --fusion (e.g.
                            "source/per-frame/per-frame/none,interpolated,content-flow/shared").
                            Default: ${DEFAULT_STRATEGIES.join(",\n                            ")}
                            entries that cannot run with the other options are dropped with a
                            warning (a listed entry that cannot run is an error); without
                            --controlnet only content-flow runs. content-flow entries always run
                            without the ControlNets (the warped previous output replaces them)
  --resume                  continue a stopped study in DIR: finished renders are kept, an unfinished
                            one resumes where it stopped (same options)
  --out DIR                 the study's folder (new, empty, or an earlier study's)
  --clip DIR                a transformers CLIPModel folder (e.g. openai/clip-vit-large-patch14):
                            adds CLIP-F (consecutive-frame cosine) and CLIP-T (frame-prompt cosine;
                            with --prompt-schedule each frame against the prompt of the nearest key)

Every option of 'steadyframe video' applies to every strategy (see steadyframe video --help): --model,
--config, --controlnet, --control, --control-scale, --canny (also the edge F1's thresholds), --depth
(also adds depth agreement), --prompt, --prompt-schedule, --negative-prompt, --frames, --size, --steps,
--scheduler, --guidance, --seed, --eta, --clip-skip, --batch, --device, --cache-dir, and the strategy
knobs (--interpolate, --interpolate-mode, --strength, --noise-ratio, --keyframes, --fusion-strength,
--fusion-end). --fps sets the input's frame rate in grid.mp4 (default: the clip's). --json prints a
summary as JSON on stdout.

${VIDEO_STRATEGY_HELP}`;

/** The folder name of a strategy: its name with "/" as "_" (no part contains "_", so names stay distinct). */
export function rendersFolderName(name: string): string {
  return name.split("/").join("_");
}

interface Planned {
  readonly strategy: Strategy;
  readonly name: string;
  readonly out: string;
  /** What to do: keep a finished render, resume an unfinished one, or start one. */
  readonly action: "keep" | "resume" | "render";
  /** Seconds per frame of a kept render (its run.json). */
  readonly seconds?: readonly number[];
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null)) !== null;
}

/** An entry of the matrix: from --strategies (refused when it cannot run) or the default (dropped then). */
interface Candidate {
  readonly strategy: Strategy;
  readonly listed: boolean;
}

/** content-flow replaces the control maps (it runs without the ControlNets); every other entry needs one. */
const needsControlNet = (s: Strategy): boolean => s.controlsFrom !== "content-flow";

/** The entries of --strategies, or the default matrix less what cannot run without a ControlNet. */
function strategiesOf(
  text: string | undefined,
  defaults: Strategy,
  hasControlNet: boolean,
  drop: (name: string, why: string) => void,
): Candidate[] {
  if (text === undefined) {
    const all = DEFAULT_STRATEGIES.map((e) => parseStrategy(e, defaults));
    for (const s of all)
      if (!hasControlNet && needsControlNet(s))
        drop(strategyName(s), "their control maps need a ControlNet (add --controlnet DIR to run them)");
    return all
      .filter((s) => hasControlNet || !needsControlNet(s))
      .map((strategy) => ({ strategy, listed: false }));
  }
  const entries = text.split(",").map((e) => e.trim());
  if (entries.some((e) => e === ""))
    throw new InvalidArgumentError(
      "--strategies",
      "comma-separated entries like source/shared/first/none",
      text,
    );
  const strategies = entries.map((e) => parseStrategy(e, defaults));
  const seen = new Set<string>();
  for (const s of strategies) {
    const name = strategyName(s);
    if (seen.has(name))
      throw new InvalidArgumentError("--strategies", "each strategy once", text, {
        hint: `${name} is listed twice`,
      });
    seen.add(name);
    if (!hasControlNet && needsControlNet(s)) {
      throw new InvalidArgumentError("--strategies", "strategies that can run without a ControlNet", name, {
        hint: `${s.controlsFrom} control maps need a ControlNet: add --controlnet DIR, or use content-flow`,
      });
    }
  }
  return strategies.map((strategy) => ({ strategy, listed: true }));
}

type CommonSettings = Awaited<ReturnType<typeof commonSettings>>;

/** The render settings of one strategy: the common ones, without the ControlNets for content-flow. */
function renderSettings(common: CommonSettings, strategy: Strategy, out: string) {
  return {
    ...common,
    ...(needsControlNet(strategy) ? {} : { controlnets: [] }),
    strategy,
    out,
  };
}

/**
 * renderVideo's checks of a strategy (methods, their combination, the frame count), run before any
 * model loads: the same planRender, with Canny stand-ins for the annotators (checks count them only).
 */
async function checkStrategy(
  common: CommonSettings,
  strategy: Strategy,
  model: { vaeScaleFactor: number; latentChannels: number },
): Promise<void> {
  const settings = renderSettings(common, strategy, "");
  const nets = settings.controlnets;
  const source = await SourceVideo.open(common.source ?? "", {
    width: common.width ?? 0,
    height: common.height ?? 0,
    ...(common.frames !== undefined && strategy.controlsFrom !== "interpolated"
      ? { maxFrames: common.frames }
      : {}),
  });
  try {
    const methods = strategyMethods(strategy, {
      annotators: nets.map(() => cannyAnnotator()),
      videos: common.guidanceScale > 1 ? 2 : 1,
      source,
    });
    planRender(
      {
        prompt: common.prompt,
        width: common.width ?? 0,
        height: common.height ?? 0,
        ...(common.frames === undefined ? {} : { frames: common.frames }),
        numInferenceSteps: common.steps,
        methods,
        batch: common.batch,
        source,
        controls: nets.map(() => ({})),
      },
      { ...model, controlNets: nets.length },
    );
  } finally {
    await source.close();
  }
}

/** DIR must be new, empty, or an earlier study's folder (never a folder of other files). */
async function checkStudyFolder(dir: string, resume: boolean): Promise<void> {
  const existing = (await checkOutputPath("--out", dir, "folder")).existing;
  const names = existing === "folder" ? await readdir(dir) : [];
  const isStudy = names.includes("renders") || names.includes("metrics.json");
  if (names.length > 0 && !isStudy) {
    throw new InvalidArgumentError("--out", "a new folder, an empty one or an earlier study's", dir, {
      hint: "the folder holds other files; choose another --out",
    });
  }
  if (resume && !names.includes("renders")) {
    throw new InvalidArgumentError("--resume", "a stopped study to continue", dir, {
      hint: `${join(dir, "renders")} does not exist; run without --resume to start the study`,
    });
  }
}

/** Decides per strategy whether to keep, resume or start its render (and refuses what would clash). */
async function plan(
  dir: string,
  strategies: readonly Strategy[],
  resume: boolean,
  common: CommonSettings,
): Promise<Planned[]> {
  const planned: Planned[] = [];
  for (const strategy of strategies) {
    const name = strategyName(strategy);
    const out = join(dir, "renders", rendersFolderName(name));
    const partial = await exists(workFolderFor(out));
    const finished = await exists(join(out, "run.json"));
    if (partial && !resume) {
      throw new InvalidArgumentError("--out", "a study folder without unfinished renders", dir, {
        hint: `${workFolderFor(out)} holds the unfinished render of ${name}: add --resume to continue the study, or delete it to start over`,
      });
    }
    const action = resume && partial ? "resume" : resume && finished ? "keep" : "render";
    const p: Planned = { strategy, name, out, action };
    planned.push(action === "keep" ? { ...p, seconds: await finishedRender(p, common) } : p);
  }
  return planned;
}

/** A path as renderVideo records it in run.json: "absolute path" or "absolute path:size:mtime". */
const samePath = (recorded: unknown, path: string | undefined): boolean =>
  path === undefined
    ? recorded === null
    : typeof recorded === "string" &&
      (recorded === resolve(path) || recorded.startsWith(`${resolve(path)}:`));

/**
 * secondsPerFrame of a finished render, from its run.json. The render is kept only when it was made
 * with this study's options (the ones run.json records that the command line sets).
 */
async function finishedRender(p: Planned, common: CommonSettings): Promise<number[]> {
  const file = join(p.out, "run.json");
  let run: { strategy?: unknown; secondsPerFrame?: unknown; settings?: Record<string, unknown> };
  try {
    run = JSON.parse(await readFile(file, "utf8")) as typeof run;
  } catch {
    run = {};
  }
  const seconds = run.secondsPerFrame;
  const saved = run.settings;
  if (
    run.strategy !== p.name ||
    saved === undefined ||
    !Array.isArray(seconds) ||
    !seconds.every((s): s is number => typeof s === "number")
  ) {
    throw new InvalidArgumentError("--resume", `the finished render of ${p.name}`, file, {
      hint: `${file} is not a run.json of that strategy; delete ${p.out} to render it again`,
    });
  }
  const settings = renderSettings(common, p.strategy, p.out);
  const expected: Record<string, unknown> = {
    prompt: settings.prompt,
    negativePrompt: settings.negativePrompt ?? "",
    width: settings.width,
    height: settings.height,
    steps: settings.steps,
    scheduler: settings.scheduler ?? null,
    guidanceScale: settings.guidanceScale,
    seed: String(settings.seed),
    eta: settings.eta ?? 0,
    clipSkip: settings.clipSkip ?? null,
    canny: settings.canny ?? null,
    strategy: settings.strategy,
    batch: settings.batch,
    controlnets: settings.controlnets.length,
    ...(settings.frames === undefined ? {} : { frames: settings.frames }),
  };
  const recorded = {
    ...Object.fromEntries(Object.keys(expected).map((k) => [k, saved[k]])),
    controlnets: Array.isArray(saved.controlnets) ? saved.controlnets.length : null,
  };
  const differ = settingsDiff(recorded, expected);
  if (!samePath(saved.model, settings.model)) differ.unshift("model");
  if (!samePath(saved.source, settings.source)) differ.unshift("source");
  if (differ.length > 0) {
    throw new InvalidArgumentError("--resume", `the options the study was started with`, differ.join(", "), {
      hint: `${p.out} was rendered with other values of: ${differ.join(", ")}; use the same options, or run without --resume to render the study again`,
    });
  }
  return seconds;
}

/**
 * CLIP-T's prompt: --prompt itself, or for a --prompt-schedule the prompt of the key nearest to the
 * frame (the engine blends the two keys around a frame; the nearer one dominates it).
 */
export function clipPrompt(schedule: PromptSchedule): Pick<StudyClipOptions, "prompt" | "promptNote"> {
  if (typeof schedule === "string") return { prompt: schedule };
  const keys = scheduleKeys(schedule);
  return {
    prompt: (frame) => {
      const [a, b, w] = keysAround(keys, frame);
      return (w < 0.5 ? a : b).prompt;
    },
    promptNote: `each frame against the --prompt-schedule key nearest to it (${keys.map((k) => `${k.frame}: ${k.prompt}`).join(" | ")})`,
  };
}

const mean = (xs: readonly number[]): number =>
  xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length;

async function run(args: readonly string[], io: CliIO): Promise<number> {
  const { values: v, positionals } = parseCommandArgs(args, STUDY_FLAGS);
  // The study compares the per-frame engine's strategies; the whole-video motion pipelines are not among them.
  for (const flag of [
    "motion-adapter",
    "motion-field",
    "context",
    "overlap",
    "context-schedule",
    "context-fuse",
    "invert",
    "t0",
    "t1",
  ] as const) {
    if (v[flag] !== undefined)
      throw new InvalidArgumentError(
        `--${flag}`,
        "no motion-pipeline option in a study (it compares --strategies of the per-frame engine)",
        v[flag],
        {
          hint: "render AnimateDiff / Text2Video-Zero with 'steadyframe video' and compare with 'steadyframe metrics'",
        },
      );
  }
  const [clip, ...more] = positionals;
  if (clip === undefined || more.length > 0)
    throw new InvalidArgumentError(
      "CLIP",
      "exactly one source clip (a video file or a PNG folder)",
      positionals,
    );
  if (v.out === undefined) throw new InvalidArgumentError("--out", "the study's output folder", undefined);
  const dir = v.out;
  const resume = v.resume === true;

  // 1. Everything cheap, before any model loads.
  const defaults = strategyFromFlags(v);
  const dropped: { name: string; why: string }[] = [];
  const drop = (name: string, why: string): void => void dropped.push({ name, why });
  const candidates = strategiesOf(v.strategies, defaults, (v.controlnet ?? []).length > 0, drop);
  const common = await commonSettings(v, clip);
  const fps = v.fps === undefined ? undefined : Number(v.fps);
  if (fps !== undefined && !(Number.isFinite(fps) && fps > 0))
    throw new InvalidArgumentError("--fps", "a frame rate > 0", v.fps);
  if (v.depth !== undefined && !(await stat(v.depth).catch(() => null))?.isFile())
    throw new InvalidArgumentError("--depth", "an ONNX depth model file", v.depth);
  if (v.clip !== undefined && !(await stat(join(v.clip, "config.json")).catch(() => null))?.isFile())
    throw new InvalidArgumentError("--clip", "a CLIPModel folder with a config.json", v.clip, {
      hint: "give a transformers CLIPModel folder (config.json, model.safetensors, tokenizer files)",
    });
  if (common.width === undefined || common.height === undefined)
    throw new InvalidArgumentError("--size", "a frame size", v.size);
  const size = { width: common.width, height: common.height };
  await checkStudyFolder(dir, resume);
  const inspected = await StableDiffusionPipeline.inspect(
    common.model,
    common.config === undefined ? {} : { configDir: common.config },
  );
  const model = {
    vaeScaleFactor: inspected.vaeScaleFactor,
    latentChannels: inspected.unetConfig.in_channels,
  };
  const strategies: Strategy[] = [];
  for (const { strategy, listed } of candidates) {
    try {
      await checkStrategy(common, strategy, model);
      strategies.push(strategy);
    } catch (error) {
      if (!(error instanceof SteadyframeError)) throw error;
      const name = strategyName(strategy);
      if (listed && error instanceof InvalidArgumentError)
        throw new InvalidArgumentError(
          `${error.argument} (strategy ${name} of --strategies)`,
          error.expected,
          error.received,
          { hint: error.hint ?? `drop ${name} from --strategies, or change ${error.argument}`, cause: error },
        );
      if (listed)
        throw new InvalidArgumentError("--strategies", "strategies that can run with these options", name, {
          hint: error.message,
          cause: error,
        });
      drop(name, error.message);
    }
  }
  const reasons = new Map<string, string[]>();
  for (const d of dropped) reasons.set(d.why, [...(reasons.get(d.why) ?? []), d.name]);
  for (const [why, names] of reasons) io.stderr.write(`warning: dropped ${names.join(", ")}: ${why}\n`);
  if (strategies.length === 0)
    throw new InvalidArgumentError("--strategies", "at least one strategy that can run", v.strategies, {
      hint: "every default strategy was dropped (see the warnings); list the ones to run with --strategies",
    });
  const planned = await plan(dir, strategies, resume, common);

  // 2. The renders, one after another.
  const entries: StudyEntry[] = [];
  for (const [k, p] of planned.entries()) {
    throwIfAborted(io.signal, "study");
    const note = p.action === "keep" ? " (finished, kept)" : p.action === "resume" ? " (resuming)" : "";
    io.stderr.write(`strategy ${k + 1}/${planned.length}: ${p.name}${note}\n`);
    const seconds =
      p.seconds ??
      (
        await renderVideo(
          { ...renderSettings(common, p.strategy, p.out), resume: p.action === "resume" },
          { onProgress: videoProgress(io.stderr, io.interactive), signal: io.signal },
        )
      ).secondsPerFrame;
    entries.push({
      name: p.name,
      framesDir: p.out,
      secondsPerFrame: mean(seconds),
      ...(p.strategy.controlsFrom === "interpolated"
        ? { framesPerSourceFrame: (p.strategy.interpolate ?? 1) + 1 }
        : {}),
    });
  }

  // 3. The report.
  throwIfAborted(io.signal, "study");
  io.stderr.write(`report: ${studyFiles(dir).grid} and the tables\n`);
  const depth = v.depth === undefined ? undefined : await DepthEstimator.create(v.depth);
  let report;
  let scorer: ClipScorer | undefined;
  try {
    scorer = v.clip === undefined ? undefined : await ClipScorer.load(v.clip, { signal: io.signal });
    report = await writeStudyReport(dir, entries, {
      source: clip,
      ...size,
      ...(fps === undefined ? {} : { fps }),
      ...(common.canny === undefined ? {} : { canny: common.canny }),
      ...(depth === undefined ? {} : { depth }),
      ...(scorer === undefined || v.clip === undefined
        ? {}
        : { clip: { encoder: scorer, model: v.clip, ...clipPrompt(common.prompt) } }),
      onProgress: videoProgress(io.stderr, io.interactive),
      signal: io.signal,
    });
  } finally {
    await depth?.release();
    await scorer?.release();
  }

  if (v.json === true) {
    const summary = {
      dir,
      files: report.files,
      dropped: dropped.map((d) => ({ strategy: d.name, why: d.why })),
      strategies: report.entries.map((e, k) => ({
        name: e.name,
        framesDir: e.framesDir,
        frames: e.frames,
        rendered:
          planned[k]?.action === "keep" ? "kept" : planned[k]?.action === "resume" ? "resumed" : "now",
        secondsPerFrame: e.secondsPerFrame,
        warpError: e.warpError,
        flickerIndex: e.flickerIndex,
        edgeF1: e.edgeF1,
        depthPearson: e.depthPearson,
        ...(e.clipF === undefined ? {} : { clipF: e.clipF, clipT: e.clipT ?? null }),
      })),
      input: {
        warpError: report.input.warpError,
        flickerIndex: report.input.flickerIndex,
        ...(report.input.clipF === undefined
          ? {}
          : { clipF: report.input.clipF, clipT: report.input.clipT ?? null }),
      },
    };
    io.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  } else {
    io.stdout.write(
      `wrote ${dir}: grid.mp4, table.md, metrics.csv, metrics.json, plot.svg (${report.entries.length} ${report.entries.length === 1 ? "strategy" : "strategies"}, ${report.sourceFrames} source frames ${size.width}x${size.height})\n`,
    );
  }
  return 0;
}

export const studyCommand: CliCommand = {
  name: "study",
  summary: "render one clip with a matrix of strategies: grid video, metrics table and plot",
  usage: USAGE,
  run,
};
