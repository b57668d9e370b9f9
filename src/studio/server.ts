/**
 * `startStudio(options)`: the local web studio's server (node:http, no framework). It serves the web
 * app built by Vite (studio/ -> dist/studio-web/) and a JSON API over the library:
 *
 *   GET  /api/state                 models, ControlNets, clips, strategy choices, limits
 *   POST /api/clips                 upload a clip (raw body, X-Filename header; size, type and frame caps)
 *   GET  /api/clips/info?clip=      ffprobe's view of a clip (src/video/probe.ts)
 *   POST /api/preview               control maps of one frame (./preview.ts)
 *   POST /api/renders               one render per strategy (renderVideo, src/engine/render.ts), queued
 *   POST /api/jobs/:id/cancel       cancel a queued or running render or comparison
 *   GET  /api/jobs, /api/events     the jobs, and their changes as server-sent events
 *   GET  /api/runs                  the history, read from each run's run.json
 *   GET  /api/runs/:id/frames/:n    a frame of a run (finished, or still in its work folder)
 *   POST /api/compare               writeStudyReport over finished runs (src/study/report.ts)
 *   GET  /api/compare/:id[/plot.svg] the comparison's numbers and its metric plot
 *
 * It listens on 127.0.0.1 unless told otherwise; every request passes the checks of ./security.ts
 * (Host, Origin, session token), and every path from a request stays inside its root (./paths.ts).
 * Errors reach the page as the typed errors' messages and hints (./http.ts).
 */
import { createWriteStream, existsSync } from "node:fs";
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join } from "node:path";
import { finished } from "node:stream/promises";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { FileNotFoundError, InvalidArgumentError, VideoError } from "../errors.js";
import { renderVideo, type VideoRenderSettings } from "../engine/render.js";
import {
  ATTENTION,
  CONTROLS_FROM,
  FUSION,
  NOISE,
  checkChoice,
  strategyName,
  type Strategy,
} from "../engine/strategies.js";
import { workFolderFor } from "../engine/work-folder.js";
import type { ExecutionProvider } from "../runtime/session.js";
import { writeStudyReport, type StudyEntry } from "../study/report.js";
import { probeVideo, rationalValue, type VideoInfo } from "../video/probe.js";
import { parseSeed } from "../cli/commands/image.js";
import { renderMetrics } from "../cli/commands/video-metrics.js";
import type {
  ApiClipInfo,
  ApiComparison,
  ApiEvent,
  ApiState,
  ApiStrategy,
  PreviewRequest,
  RenderRequest,
} from "./api.js";
import {
  CLIP_EXTENSIONS,
  checkTreeInside,
  listClips,
  listModels,
  listRuns,
  readRun,
  recordedPath,
  runJson,
} from "./catalog.js";
import { HttpError, readJson, send, sendError, sendJson, sendRefusal, serveStatic } from "./http.js";
import { JobQueue } from "./jobs.js";
import { isInside, openRoot, resolveInside, safeName } from "./paths.js";
import { Previewer } from "./preview.js";
import {
  checkSite,
  checkToken,
  hasTokenCookie,
  isToken,
  makeGate,
  newToken,
  tokenCookie,
  type Gate,
} from "./security.js";

export interface StudioOptions {
  /** Folder of model folders (diffusers pipelines and ControlNets). */
  readonly models: string;
  /** Folder the studio writes into: runs/, compare/, and clips/ unless `clips` says otherwise. */
  readonly outputs: string;
  /** (optional, default `<outputs>/clips`) folder of clips to open; uploads are stored there. */
  readonly clips?: string;
  /** (optional, default 0: any free port) */
  readonly port?: number;
  /** (optional, default "127.0.0.1") address to listen on. */
  readonly host?: string;
  /** (optional) ONNX depth model: depth previews and depth ControlNets. */
  readonly depthModel?: string;
  /** (optional) the web build (default: dist/studio-web of this package). */
  readonly webRoot?: string;
  /** (optional) the session token (default: random). */
  readonly token?: string;
  /** (optional, default 500 MB) largest upload in bytes. */
  readonly maxUploadBytes?: number;
  /** (optional, default 1000) most frames of an uploaded clip and of a render. */
  readonly maxFrames?: number;
  readonly cacheDir?: string;
  readonly device?: readonly ExecutionProvider[];
}

export interface StudioServer {
  /** The address to open, with the token: http://127.0.0.1:PORT/?token=... */
  readonly url: string;
  /** http://127.0.0.1:PORT */
  readonly origin: string;
  readonly port: number;
  readonly token: string;
  close(): Promise<void>;
}

const MAX_SIDE = 2048;
const MAX_STEPS = 200;
const MAX_STRATEGIES = 8;

/** The web build: dist/studio-web next to the compiled server, or of the repository when run from source. */
export function defaultWebRoot(): string {
  const candidates = [
    new URL("../studio-web/", import.meta.url),
    new URL("../../dist/studio-web/", import.meta.url),
  ];
  for (const c of candidates) {
    const dir = fileURLToPath(c);
    if (existsSync(join(dir, "index.html"))) return dir;
  }
  throw new FileNotFoundError(fileURLToPath(candidates[1] ?? candidates[0]!), "the studio's web build", {
    hint: "build it first: npm run build (Vite builds studio/ into dist/studio-web)",
  });
}

function randomId(prefix: string): string {
  const now = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").replace(/\..*$/, "");
  return `${prefix}${now}-${randomBytes(3).toString("hex")}`;
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

function body(value: unknown): Record<string, unknown> {
  if (!isRecord(value)) throw new InvalidArgumentError("request body", "a JSON object", value);
  return value;
}

function integer(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max)
    throw new InvalidArgumentError(name, `an integer from ${min} to ${max}`, v);
  return v;
}

function number(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max)
    throw new InvalidArgumentError(name, `a number from ${min} to ${max}`, v);
  return v;
}

function side(name: string, v: unknown): number {
  const n = integer(name, v, 8, MAX_SIDE);
  if (n % 8 !== 0) throw new InvalidArgumentError(name, "a multiple of 8 (what the VAE needs)", n);
  return n;
}

function cannyOf(v: unknown): { threshold1: number; threshold2: number } {
  if (v === undefined) return { threshold1: 100, threshold2: 200 };
  const c = body(v);
  return {
    threshold1: number("canny.threshold1", c["threshold1"], 0, 1000),
    threshold2: number("canny.threshold2", c["threshold2"], 0, 1000),
  };
}

/** A strategy from the page, checked like the CLI's flags (src/cli/commands/video.ts). */
export function strategyOf(v: unknown, k: number): Strategy {
  const s = body(v) as Partial<Record<keyof ApiStrategy, unknown>>;
  const at = (name: string): string => `strategies[${k}].${name}`;
  const opt = <T>(value: unknown, parse: (x: unknown) => T): T | undefined =>
    value === undefined || value === null ? undefined : parse(value);
  const interpolate = opt(s.interpolate, (x) => integer(at("interpolate"), x, 0, 8));
  const interpolateMode = opt(s.interpolateMode, (x) =>
    checkChoice(at("interpolateMode"), String(x), ["blend", "flow"] as const),
  );
  const strength = opt(s.strength, (x) => number(at("strength"), x, 0.01, 1));
  const noiseRatio = opt(s.noiseRatio, (x) => number(at("noiseRatio"), x, 0, 1));
  const keyframes = opt(s.keyframes, (x) => integer(at("keyframes"), x, 1, 64));
  const fusionStrength = opt(s.fusionStrength, (x) => number(at("fusionStrength"), x, 0, 1));
  const fusionEnd = opt(s.fusionEnd, (x) => number(at("fusionEnd"), x, 0.01, 1));
  return {
    controlsFrom: checkChoice(at("controlsFrom"), String(s.controlsFrom ?? "source"), CONTROLS_FROM),
    noise: checkChoice(at("noise"), String(s.noise ?? "shared"), NOISE),
    attention: checkChoice(at("attention"), String(s.attention ?? "first"), ATTENTION),
    fusion: checkChoice(at("fusion"), String(s.fusion ?? "none"), FUSION),
    ...(interpolate === undefined ? {} : { interpolate }),
    ...(interpolateMode === undefined ? {} : { interpolateMode }),
    ...(strength === undefined ? {} : { strength }),
    ...(noiseRatio === undefined ? {} : { noiseRatio }),
    ...(keyframes === undefined ? {} : { keyframes }),
    ...(fusionStrength === undefined ? {} : { fusionStrength }),
    ...(fusionEnd === undefined ? {} : { fusionEnd }),
  };
}

function clipInfo(clip: string, info: VideoInfo, bytes: number): ApiClipInfo {
  return {
    clip,
    width: info.width,
    height: info.height,
    fps: rationalValue(info.fps),
    frames: info.frameCount ?? null,
    codec: info.codec,
    bytes,
  };
}

/** An uploaded file name made safe: its last part, unusual characters as "-", a video extension. */
export function uploadName(raw: string | undefined): string {
  let decoded = raw ?? "";
  try {
    decoded = decodeURIComponent(decoded);
  } catch {
    // keep it as sent
  }
  const base = decoded.split(/[/\\]/).pop() ?? "";
  const name = base
    .replace(/[^A-Za-z0-9._-]+/g, "-")
    .replace(/^[-.]+/, "")
    .slice(-100);
  const ext = extname(name).toLowerCase();
  if (!CLIP_EXTENSIONS.includes(ext))
    throw new InvalidArgumentError("file name", `a video file (${CLIP_EXTENSIONS.join(", ")})`, base, {
      hint: "choose a video clip",
    });
  if (name.length <= ext.length) throw new InvalidArgumentError("file name", "a file name", base);
  return name;
}

export async function startStudio(options: StudioOptions): Promise<StudioServer> {
  const host = options.host ?? "127.0.0.1";
  const maxUploadBytes = options.maxUploadBytes ?? 500 * 1024 * 1024;
  const maxFrames = options.maxFrames ?? 1000;
  const webRoot = options.webRoot ?? defaultWebRoot();
  if (!existsSync(join(webRoot, "index.html")))
    throw new FileNotFoundError(join(webRoot, "index.html"), "the studio's web build", {
      hint: "build it first: npm run build",
    });
  if (options.depthModel !== undefined && !(await stat(options.depthModel).catch(() => null))?.isFile())
    throw new FileNotFoundError(options.depthModel, "--depth model file");
  const models = await openRoot("models folder", options.models, false);
  const outputs = await openRoot("outputs folder", options.outputs, true);
  const clips = await openRoot("clips folder", options.clips ?? join(outputs.dir, "clips"), true);
  const runs = await openRoot("runs folder", join(outputs.dir, "runs"), true);
  const comparisons = await openRoot("comparisons folder", join(outputs.dir, "compare"), true);
  const version = await readFile(new URL("../../package.json", import.meta.url), "utf8")
    .then((t) => String((JSON.parse(t) as { version?: unknown }).version ?? "unknown"))
    .catch(() => "unknown");

  // Task names carry model paths ("loading /models/x/controlnet"): shown relative to their folder.
  const jobs = new JobQueue((task) => task.split(`${models.dir}/`).join("").split(`${clips.dir}/`).join(""));
  const previewer = new Previewer(options.depthModel);
  const streams = new Set<ServerResponse>();
  /** Set once the port is known. */
  const site: { gate?: Gate } = {};

  const state = async (): Promise<ApiState> => ({
    version,
    ...(await listModels(models)),
    clips: await listClips(clips),
    depth: options.depthModel !== undefined,
    choices: { controlsFrom: CONTROLS_FROM, noise: NOISE, attention: ATTENTION, fusion: FUSION },
    limits: { maxUploadBytes, maxFrames, maxSide: MAX_SIDE, maxSteps: MAX_STEPS },
  });

  /** A clip of the clips folder, probed: a video stream of 2 to maxFrames frames. */
  const probeClip = async (clip: string, path: string): Promise<ApiClipInfo> => {
    let info = await probeVideo(path);
    if (info.kind !== "file") throw new VideoError(clip, "is not a video file");
    if (info.frameCount === undefined) info = await probeVideo(path, { countFrames: true });
    const frames = info.frameCount ?? 0;
    if (frames < 2)
      throw new VideoError(clip, `has ${frames} frame(s); the studio needs a video of at least 2 frames`);
    if (frames > maxFrames)
      throw new HttpError(
        413,
        new InvalidArgumentError("clip", `a video of at most ${maxFrames} frames`, `${frames} frames`, {
          hint: "cut the clip shorter, or start the studio with a larger --max-frames",
        }),
      );
    return clipInfo(clip, info, (await stat(path)).size);
  };

  const upload = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const header = req.headers["x-filename"];
    const name = uploadName(typeof header === "string" ? header : undefined);
    const tooBig = (size: string): HttpError =>
      new HttpError(
        413,
        new InvalidArgumentError("upload", `a file of at most ${maxUploadBytes} bytes`, size, {
          hint: "the studio's upload limit; start it with a larger --max-upload-mb for bigger clips",
        }),
      );
    const declared = Number(req.headers["content-length"] ?? Number.NaN);
    if (Number.isFinite(declared) && declared > maxUploadBytes) {
      req.resume(); // drained, so that the client reads the answer
      throw tooBig(`${declared} bytes`);
    }
    const temp = join(clips.dir, `.upload-${randomBytes(6).toString("hex")}${extname(name)}`);
    const file = createWriteStream(temp, { flags: "wx" });
    let size = 0;
    try {
      for await (const chunk of req as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > maxUploadBytes) continue; // read to the end (not kept), so that the client reads the answer
        if (!file.write(chunk)) await once(file, "drain");
      }
      file.end();
      await finished(file);
      if (size > maxUploadBytes) throw tooBig(`more than ${maxUploadBytes} bytes`);
      const info = await probeClip(name, temp);
      let final = name;
      for (let k = 1; existsSync(join(clips.dir, final)); k++)
        final = `${name.slice(0, -extname(name).length)}-${k}${extname(name)}`;
      await rename(temp, join(clips.dir, final));
      sendJson(res, 200, { ...info, clip: final });
    } catch (error) {
      file.destroy();
      await rm(temp, { force: true });
      throw error;
    }
  };

  const model = async (what: string, rel: unknown): Promise<string> => {
    const path = await resolveInside(what, models, rel);
    await checkTreeInside(what, models, path);
    return path;
  };

  const startRenders = async (raw: unknown): Promise<{ jobs: string[] }> => {
    const r = body(raw) as Partial<Record<keyof RenderRequest, unknown>>;
    const clip = await resolveInside("clip", clips, r.clip);
    await probeClip(String(r.clip), clip);
    const modelPath = await model("model", r.model);
    const controlnet =
      r.controlnet === null || r.controlnet === undefined
        ? undefined
        : await model("controlnet", r.controlnet);
    const control = checkChoice("control", String(r.control ?? "canny"), ["canny", "depth"] as const);
    if (control === "depth" && options.depthModel === undefined)
      throw new InvalidArgumentError("control", "canny (no depth model is configured)", control, {
        hint: "start the studio with --depth MODEL.onnx to use depth ControlNets",
      });
    if (typeof r.prompt !== "string" || r.prompt.trim() === "" || r.prompt.length > 2000)
      throw new InvalidArgumentError("prompt", "a prompt of 1 to 2000 characters", r.prompt);
    const negative = r.negativePrompt ?? "";
    if (typeof negative !== "string" || negative.length > 2000)
      throw new InvalidArgumentError("negativePrompt", "text of at most 2000 characters", negative);
    const width = side("width", r.width);
    const height = side("height", r.height);
    const frames = integer("frames", r.frames, 1, maxFrames);
    const steps = integer("steps", r.steps, 1, MAX_STEPS);
    const guidanceScale = number("guidanceScale", r.guidanceScale, 0, 50);
    const seed = parseSeed(typeof r.seed === "string" ? r.seed : String(r.seed ?? "0"));
    const canny = cannyOf(r.canny);
    if (!Array.isArray(r.strategies) || r.strategies.length === 0 || r.strategies.length > MAX_STRATEGIES)
      throw new InvalidArgumentError("strategies", `1 to ${MAX_STRATEGIES} strategies`, r.strategies);
    const strategies = r.strategies.map((s, k) => strategyOf(s, k));
    const ids: string[] = [];
    for (const strategy of strategies) {
      const name = strategyName(strategy);
      const id = safeName("run id", randomId(`${name.split("/").join("_").replace(/\+/g, "-")}-`));
      const out = join(runs.dir, id);
      // content-flow replaces the control maps (as in `steadyframe study`): no ControlNet.
      const nets =
        controlnet === undefined || strategy.controlsFrom === "content-flow"
          ? []
          : [{ path: controlnet, control }];
      const settings: VideoRenderSettings = {
        source: clip,
        model: modelPath,
        controlnets: nets,
        ...(options.depthModel === undefined ? {} : { depthModel: options.depthModel }),
        canny,
        prompt: r.prompt,
        ...(negative === "" ? {} : { negativePrompt: negative }),
        width,
        height,
        frames,
        steps,
        guidanceScale,
        seed,
        strategy,
        out,
        ...(options.cacheDir === undefined ? {} : { cacheDir: options.cacheDir }),
        ...(options.device === undefined ? {} : { device: options.device }),
      };
      jobs.add(
        id,
        "render",
        name,
        async (ctx) => {
          ctx.progress({ status: "start", task: "loading models" });
          await renderVideo(settings, {
            onProgress: ctx.progress,
            onFrame: (index) => ctx.frame(index),
            signal: ctx.signal,
            metrics: (dir, info) => renderMetrics(dir, info, { source: clip, canny }),
          });
        },
        async (end) => {
          if (end !== "done") await rm(workFolderFor(out), { recursive: true, force: true });
        },
      );
      ids.push(id);
    }
    return { jobs: ids };
  };

  const startComparison = async (raw: unknown): Promise<{ id: string }> => {
    const r = body(raw);
    const ids = r["runs"];
    if (
      !Array.isArray(ids) ||
      ids.length < 2 ||
      ids.length > MAX_STRATEGIES ||
      new Set(ids).size !== ids.length
    )
      throw new InvalidArgumentError("runs", `2 to ${MAX_STRATEGIES} different runs`, ids);
    const entries: StudyEntry[] = [];
    let common: { source: string; width: number; height: number; canny: unknown } | undefined;
    for (const idValue of ids) {
      const id = safeName("run", idValue);
      const dir = await resolveInside("run", runs, id);
      const run = await runJson(runs, id);
      const summary = await readRun(runs, id);
      if (run === undefined || summary === undefined)
        throw new FileNotFoundError(id, "finished run (run.json)", { hint: "pick runs from the history" });
      const settings = isRecord(run["settings"]) ? run["settings"] : {};
      const source = recordedPath(settings["source"]);
      if (source === null)
        throw new InvalidArgumentError("runs", "renders of a source clip", id, {
          hint: "a text-only render has nothing to compare against",
        });
      const me = { source, width: summary.width, height: summary.height, canny: settings["canny"] ?? null };
      common ??= me;
      if (me.source !== common.source || me.width !== common.width || me.height !== common.height)
        throw new InvalidArgumentError("runs", "renders of one clip at one size", id, {
          hint: `${id} is ${summary.source ?? "?"} at ${me.width}x${me.height}; the first is ${common.width}x${common.height} of another clip or size`,
        });
      const strategy = isRecord(settings["strategy"]) ? settings["strategy"] : {};
      const perSource =
        strategy["controlsFrom"] === "interpolated"
          ? (typeof strategy["interpolate"] === "number" ? strategy["interpolate"] : 1) + 1
          : 1;
      const taken = entries.some((e) => e.name === summary.strategy);
      entries.push({
        name: taken ? `${summary.strategy} (${id.slice(-6)})` : summary.strategy,
        framesDir: dir,
        secondsPerFrame: summary.secondsPerFrame ?? 0,
        ...(perSource > 1 ? { framesPerSourceFrame: perSource } : {}),
      });
    }
    if (common === undefined) throw new InvalidArgumentError("runs", "at least two runs", ids);
    const source = common.source;
    if (!isInside(clips.dir, source) || !existsSync(source))
      throw new InvalidArgumentError("runs", "renders of a clip in the clips folder", source, {
        hint: "the runs' source clip is no longer in the clips folder",
      });
    const id = safeName("comparison", randomId("compare-"));
    const dir = join(comparisons.dir, id);
    const size = { width: common.width, height: common.height };
    const canny = isRecord(common.canny) ? cannyOf(common.canny) : undefined;
    jobs.add(
      id,
      "compare",
      entries.map((e) => e.name).join(" vs "),
      async (ctx) => {
        await mkdir(dir);
        const report = await writeStudyReport(dir, entries, {
          source,
          ...size,
          ...(canny ? { canny } : {}),
          onProgress: ctx.progress,
          signal: ctx.signal,
        });
        const summary: ApiComparison = {
          id,
          runs: ids.map(String),
          ...size,
          fps: report.fps,
          input: { warpError: report.input.warpError, flickerIndex: report.input.flickerIndex },
          entries: report.entries.map((e, k) => ({
            run: String(ids[k]),
            name: e.name,
            frames: e.frames,
            warpError: e.warpError,
            flickerIndex: e.flickerIndex,
            edgeF1: e.edgeF1,
            depthPearson: e.depthPearson,
            secondsPerFrame: e.secondsPerFrame,
          })),
        };
        await writeFile(join(dir, "studio.json"), `${JSON.stringify(summary, null, 2)}\n`);
      },
      async (end) => {
        if (end !== "done") await rm(dir, { recursive: true, force: true });
      },
    );
    return { id };
  };

  /** A frame PNG of a run: the published folder, else the work folder of a render in progress. */
  const frameFile = async (id: string, n: string): Promise<string> => {
    const runId = safeName("run", id);
    if (!/^\d{1,6}$/.test(n)) throw new InvalidArgumentError("frame", "a frame number", n);
    const name = `frame_${n.padStart(6, "0")}.png`;
    for (const rel of [`${runId}/${name}`, `${runId}.steadyframe-partial/frames/${name}`]) {
      const found = await resolveInside("frame", runs, rel).catch(() => undefined);
      if (found !== undefined) return found;
    }
    throw new FileNotFoundError(`${runId}/${name}`, "frame");
  };

  const events = (req: IncomingMessage, res: ServerResponse): void => {
    res.writeHead(200, {
      "Content-Type": "text/event-stream; charset=utf-8",
      "Cache-Control": "no-store",
      Connection: "keep-alive",
      "X-Content-Type-Options": "nosniff",
    });
    const write = (e: ApiEvent): void => void res.write(`data: ${JSON.stringify(e)}\n\n`);
    write({ type: "jobs", jobs: jobs.list() });
    const stop = jobs.listen(write);
    const beat = setInterval(() => res.write(": keep-alive\n\n"), 15_000);
    streams.add(res);
    req.on("close", () => {
      clearInterval(beat);
      stop();
      streams.delete(res);
    });
  };

  const api = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    const path = url.pathname;
    const method = req.method ?? "GET";
    const parts = path.split("/").slice(2); // ["runs", id, "frames", n]
    const route = `${method} /${parts[0] ?? ""}`;
    if (route === "GET /state") return sendJson(res, 200, await state());
    if (route === "GET /events") return events(req, res);
    if (route === "GET /jobs") return sendJson(res, 200, { jobs: jobs.list() });
    if (method === "POST" && parts[0] === "jobs" && parts[2] === "cancel" && parts.length === 3) {
      const id = safeName("job", parts[1]);
      if (!jobs.cancel(id)) throw new FileNotFoundError(id, "queued or running job");
      return sendJson(res, 200, { cancelled: id });
    }
    if (route === "POST /clips" && parts.length === 1) return upload(req, res);
    if (route === "GET /clips" && parts[1] === "info") {
      const clip = url.searchParams.get("clip");
      return sendJson(res, 200, await probeClip(String(clip), await resolveInside("clip", clips, clip)));
    }
    if (route === "POST /preview") {
      const r = body(await readJson(req));
      const clip = await resolveInside("clip", clips, r["clip"]);
      const request: PreviewRequest = {
        clip: String(r["clip"]),
        frame: integer("frame", r["frame"], 0, maxFrames),
        width: side("width", r["width"]),
        height: side("height", r["height"]),
        canny: cannyOf(r["canny"]),
        flowScale: number("flowScale", r["flowScale"] ?? 2, 0.1, 1000),
      };
      const abort = new AbortController();
      res.on("close", () => abort.abort());
      const preview = await previewer.preview(clip, request, abort.signal);
      return sendJson(res, 200, { ...preview, clip: request.clip });
    }
    if (route === "POST /renders") return sendJson(res, 200, await startRenders(await readJson(req)));
    if (route === "GET /runs" && parts.length === 1)
      return sendJson(res, 200, { runs: await listRuns(runs) });
    if (route === "GET /runs" && parts[2] === "frames" && parts.length === 4) {
      const file = await frameFile(parts[1] ?? "", (parts[3] ?? "").replace(/\.png$/, ""));
      return send(res, 200, "image/png", await readFile(file));
    }
    if (route === "POST /compare") return sendJson(res, 200, await startComparison(await readJson(req)));
    if (route === "GET /compare" && parts.length >= 2) {
      const id = safeName("comparison", parts[1]);
      if (parts.length === 2)
        return send(
          res,
          200,
          "application/json; charset=utf-8",
          await readFile(await resolveInside("comparison", comparisons, `${id}/studio.json`)),
        );
      if (parts.length === 3 && parts[2] === "plot.svg")
        return send(
          res,
          200,
          "image/svg+xml",
          await readFile(await resolveInside("comparison", comparisons, `${id}/plot.svg`)),
          {
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
          },
        );
    }
    throw new HttpError(404, new FileNotFoundError(path, "API route", { hint: "see src/studio/server.ts" }));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const gate = site.gate;
    if (gate === undefined) return sendError(res, new Error("not listening yet"));
    const url = new URL(req.url ?? "/", "http://studio.invalid");
    const isApi = url.pathname.startsWith("/api/");
    const refusedSite = checkSite(gate, req, isApi);
    if (refusedSite) return sendRefusal(res, refusedSite, !isApi);
    if (isApi) {
      const refused = checkToken(gate, req);
      if (refused) return sendRefusal(res, refused, false);
      return api(req, res, url);
    }
    if (req.method !== "GET" && req.method !== "HEAD")
      throw new HttpError(405, new InvalidArgumentError("method", "GET", req.method));
    if (url.pathname === "/" || url.pathname === "/index.html") {
      const fromQuery = isToken(gate, url.searchParams.get("token"));
      if (!fromQuery && !hasTokenCookie(gate, req))
        return sendRefusal(
          res,
          {
            status: 401,
            code: "E_TOKEN",
            message: "this page needs the studio's session token",
            hint: "open the address that 'steadyframe studio' printed (it carries this session's token)",
          },
          true,
        );
      const html = await readFile(join(webRoot, "index.html"));
      return send(
        res,
        200,
        "text/html; charset=utf-8",
        html,
        fromQuery ? { "Set-Cookie": tokenCookie(gate) } : {},
      );
    }
    if (await serveStatic(res, webRoot, url.pathname)) return;
    throw new HttpError(404, new FileNotFoundError(url.pathname, "page"));
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => sendError(res, error));
  });
  await new Promise<void>((resolvePromise, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(
        error.code === "EADDRINUSE"
          ? new InvalidArgumentError("--port", "a free port", options.port, {
              hint: "another program listens there; choose another --port, or 0 for any free port",
            })
          : new InvalidArgumentError("--host", "an address of this machine to listen on", host, {
              cause: error,
            }),
      ),
    );
    server.listen(options.port ?? 0, host, () => resolvePromise());
  });
  const port = (server.address() as AddressInfo).port;
  const token = options.token ?? newToken();
  site.gate = makeGate(token, host, port);
  const urlHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  const origin = `http://${urlHost}:${port}`;
  return {
    url: `${origin}/?token=${token}`,
    origin,
    port,
    token,
    async close() {
      await jobs.close();
      await previewer.close();
      for (const s of streams) s.end();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
