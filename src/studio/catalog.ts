/**
 * What the studio lists from its folders: model folders (diffusers pipelines: `model_index.json`) and
 * ControlNets (`config.json` of a `ControlNetModel`) under the models folder, video clips in the clips
 * folder, and the history of runs, each read from its `run.json` (written by renderVideo,
 * src/engine/render.ts). Only entries whose real path stays inside the root are listed.
 */
import { readdir, readFile, realpath, stat } from "node:fs/promises";
import { basename, join, relative, sep } from "node:path";
import { InvalidArgumentError } from "../errors.js";
import type { ApiRun } from "./api.js";
import { isInside, type Root } from "./paths.js";

/** Video file extensions the studio opens and accepts as uploads. */
export const CLIP_EXTENSIONS = [".mp4", ".m4v", ".mov", ".mkv", ".webm", ".gif"];

const MODEL_DEPTH = 3;

async function readJsonFile(path: string): Promise<Record<string, unknown> | undefined> {
  try {
    const value: unknown = JSON.parse(await readFile(path, "utf8"));
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

const toApiPath = (root: Root, path: string): string => relative(root.dir, path).split(sep).join("/");

/** Pipeline folders and ControlNet folders under the models root (relative paths, sorted). */
export async function listModels(root: Root): Promise<{ models: string[]; controlnets: string[] }> {
  const models: string[] = [];
  const controlnets: string[] = [];
  const visit = async (dir: string, depth: number): Promise<void> => {
    const real = await realpath(dir).catch(() => undefined);
    if (real === undefined || !isInside(root.dir, real)) return;
    if (depth > 0 && (await stat(join(dir, "model_index.json")).catch(() => null))?.isFile())
      models.push(toApiPath(root, dir));
    const config = await readJsonFile(join(dir, "config.json"));
    if (depth > 0 && config?.["_class_name"] === "ControlNetModel") controlnets.push(toApiPath(root, dir));
    if (depth >= MODEL_DEPTH) return;
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      if (e.name.startsWith(".")) continue;
      if (e.isDirectory() || e.isSymbolicLink()) await visit(join(dir, e.name), depth + 1);
    }
  };
  await visit(root.dir, 0);
  return { models: models.sort(), controlnets: controlnets.sort() };
}

/**
 * Refuses a model folder holding a symbolic link that leads out of the models root (the loaders
 * would follow it).
 */
export async function checkTreeInside(what: string, root: Root, dir: string): Promise<void> {
  let seen = 0;
  const walk = async (d: string, depth: number): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (++seen > 10_000 || depth > 6) return;
      const path = join(d, e.name);
      if (e.isSymbolicLink()) {
        const real = await realpath(path).catch(() => undefined);
        if (real === undefined || !isInside(root.dir, real))
          throw new InvalidArgumentError(what, `a folder inside the ${root.name}`, toApiPath(root, path), {
            hint: `${toApiPath(root, path)} is a symbolic link out of the ${root.name}; copy the files into the folder instead`,
          });
      } else if (e.isDirectory()) await walk(path, depth + 1);
    }
  };
  if ((await stat(dir)).isDirectory()) await walk(dir, 0);
}

/** Video files directly in the clips folder. */
export async function listClips(root: Root): Promise<string[]> {
  const entries = await readdir(root.dir, { withFileTypes: true }).catch(() => []);
  return entries
    .filter(
      (e) =>
        e.isFile() &&
        !e.name.startsWith(".") &&
        CLIP_EXTENSIONS.some((x) => e.name.toLowerCase().endsWith(x)),
    )
    .map((e) => e.name)
    .sort();
}

/** The path recorded in run.json ("path:size:mtime" identities keep the path). */
export function recordedPath(value: unknown): string | null {
  if (typeof value !== "string") return null;
  const m = /^(.*):\d+:\d+$/.exec(value);
  return m?.[1] ?? value;
}

const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

/** One run folder's summary from its run.json, or undefined when it holds none. */
export async function readRun(runsRoot: Root, id: string): Promise<ApiRun | undefined> {
  const run = await readJsonFile(join(runsRoot.dir, id, "run.json"));
  if (run === undefined) return undefined;
  const settings = (run["settings"] ?? {}) as Record<string, unknown>;
  const seconds = Array.isArray(run["secondsPerFrame"])
    ? (run["secondsPerFrame"] as unknown[]).filter((s): s is number => typeof s === "number")
    : [];
  const source = recordedPath(settings["source"]);
  const model = recordedPath(settings["model"]);
  const prompt = settings["prompt"];
  return {
    id,
    strategy: typeof run["strategy"] === "string" ? run["strategy"] : "unknown",
    frames: num(run["frames"]) ?? 0,
    width: num(settings["width"]) ?? 0,
    height: num(settings["height"]) ?? 0,
    created: typeof run["created"] === "string" ? run["created"] : "",
    prompt: typeof prompt === "string" ? prompt : JSON.stringify(prompt ?? ""),
    source: source === null ? null : basename(source),
    model: model === null ? "" : basename(model),
    secondsPerFrame: seconds.length > 0 ? seconds.reduce((a, b) => a + b, 0) / seconds.length : null,
    fps: num(run["fps"]) ?? 8,
  };
}

/** Every finished run in the runs folder, newest first. */
export async function listRuns(runsRoot: Root): Promise<ApiRun[]> {
  const entries = await readdir(runsRoot.dir, { withFileTypes: true }).catch(() => []);
  const runs: ApiRun[] = [];
  for (const e of entries) {
    if (!e.isDirectory() || e.name.startsWith(".") || e.name.endsWith(".steadyframe-partial")) continue;
    const run = await readRun(runsRoot, e.name);
    if (run) runs.push(run);
  }
  return runs.sort((a, b) => (a.created < b.created ? 1 : a.created > b.created ? -1 : 0));
}

/** The raw run.json of a run (for the source path and the strategy of a comparison). */
export async function runJson(runsRoot: Root, id: string): Promise<Record<string, unknown> | undefined> {
  return readJsonFile(join(runsRoot.dir, id, "run.json"));
}
