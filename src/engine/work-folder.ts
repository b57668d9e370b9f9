/**
 * The on-disk frame store of a render: `<out>.steadyframe-partial/` next to the output, holding
 *
 *   settings.json              what the frames depend on (compared on --resume)
 *   frames/frame_000000.png    finished frames, each written atomically, last of its files
 *   recipes/frame_000000.safetensors   the frame's initial noise and the methods' state after it
 *   controls/c0/frame_000000.png       the control maps it was made with (one folder per ControlNet)
 *   keyvalues/frame_000000/step_00.safetensors   the self-attention keys/values a frame leaves for
 *                              later frames (methods with `storedAnchors`), one file per step, removed
 *                              when no later frame needs them
 *
 * A frame counts as finished when its PNG exists (the recipe and controls are written before it), so
 * a render killed at any point loses at most the frame in progress. `--resume` reopens the folder when
 * its settings equal the new run's and continues; the published output (a PNG folder, or a video
 * encoded from the frames) replaces the partial folder only when every frame is there.
 */
import { mkdir, readdir, readFile, rm, stat } from "node:fs/promises";
import { basename, dirname, extname, join } from "node:path";
import { ConfigError, InvalidArgumentError } from "../errors.js";
import type { Image } from "../image.js";
import { readImageFile, writePngFile } from "../control/png.js";
import type { HostTensor } from "../tensor.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import { readSafetensors, serializeSafetensors } from "../weights/safetensors.js";
import type { AnchorEntry } from "../models/anchor-attention.js";
import type { FrameRecipe, FrameStore, StepKeyValues } from "./frame-store.js";

const frameName = (i: number, ext = ".png"): string => `frame_${String(i).padStart(6, "0")}${ext}`;

/** `<out>.steadyframe-partial`: the work folder of an output path. */
export function workFolderFor(out: string): string {
  return join(dirname(out), `${basename(out).replace(/[/\\]+$/, "")}.steadyframe-partial`);
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null)) !== null;
}

/** Keys whose values differ between two settings objects (compared as JSON), for the resume error. */
export function settingsDiff(
  a: Readonly<Record<string, unknown>>,
  b: Readonly<Record<string, unknown>>,
): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k])).sort();
}

export class WorkFolder implements FrameStore {
  private constructor(
    readonly dir: string,
    readonly settings: Readonly<Record<string, unknown>>,
  ) {}

  /**
   * Opens the work folder of `out`: a new one, or with `resume` the existing one when its settings
   * equal `settings`. Refuses to start over an unfinished render without `resume`, and to resume one
   * made with other settings (naming the settings that differ).
   */
  static async open(
    out: string,
    settings: Readonly<Record<string, unknown>>,
    resume: boolean,
  ): Promise<WorkFolder> {
    const dir = workFolderFor(out);
    const file = join(dir, "settings.json");
    if (await exists(dir)) {
      if (!resume) {
        throw new InvalidArgumentError("--out", "an output without an unfinished render", out, {
          hint: `${dir} holds an unfinished render: add --resume to continue it, or delete that folder to start over`,
        });
      }
      let saved: unknown;
      try {
        saved = JSON.parse(await readFile(file, "utf8"));
      } catch {
        throw new ConfigError(file, "(root)", "the settings of the unfinished render", "unreadable", {
          hint: `delete ${dir} to start over`,
        });
      }
      const diff = settingsDiff(saved as Record<string, unknown>, settings);
      if (diff.length > 0) {
        throw new InvalidArgumentError("--resume", "the settings of the unfinished render", diff.join(", "), {
          hint: `${dir} was made with other values of: ${diff.join(", ")}; use the same options, or delete it to start over`,
        });
      }
      return new WorkFolder(dir, settings);
    }
    if (resume) {
      throw new InvalidArgumentError("--resume", "an unfinished render to continue", out, {
        hint: `there is no ${dir}; run without --resume to start`,
      });
    }
    await mkdir(join(dir, "frames"), { recursive: true });
    await mkdir(join(dir, "recipes"));
    await writeFileAtomic(file, `${JSON.stringify(settings, null, 2)}\n`);
    return new WorkFolder(dir, settings);
  }

  framePath(i: number): string {
    return join(this.dir, "frames", frameName(i));
  }

  async has(i: number): Promise<boolean> {
    return (
      (await exists(this.framePath(i))) &&
      (await exists(join(this.dir, "recipes", frameName(i, ".safetensors"))))
    );
  }

  image(i: number): Promise<Image> {
    return readImageFile(this.framePath(i));
  }

  async recipe(i: number): Promise<FrameRecipe> {
    const path = join(this.dir, "recipes", frameName(i, ".safetensors"));
    const tensors = await readSafetensors(path);
    const noise = tensors.get("noise");
    if (noise === undefined || noise.dtype !== "float32")
      throw new ConfigError(path, "noise", "the frame's initial noise", undefined, {
        hint: `delete ${this.dir} to start over`,
      });
    const state: Record<string, HostTensor<"float32">> = {};
    for (const [k, v] of tensors)
      if (k.startsWith("state/") && v.dtype === "float32") state[k.slice(6)] = v as HostTensor<"float32">;
    const seconds = Number(tensors.get("seconds")?.data[0] ?? 0);
    const controls: Image[] = [];
    for (let k = 0; await exists(join(this.dir, "controls", `c${k}`, frameName(i))); k++) {
      controls.push(await readImageFile(join(this.dir, "controls", `c${k}`, frameName(i))));
    }
    return { noise: noise as HostTensor<"float32">, controls, state, seconds };
  }

  async put(i: number, image: Image, recipe: FrameRecipe): Promise<void> {
    const tensors: Record<string, HostTensor> = {
      noise: recipe.noise,
      seconds: { dtype: "float64", shape: [1], data: Float64Array.of(recipe.seconds) },
    };
    for (const [k, v] of Object.entries(recipe.state)) tensors[`state/${k}`] = v;
    await writeFileAtomic(
      join(this.dir, "recipes", frameName(i, ".safetensors")),
      serializeSafetensors(tensors),
      {
        durable: false,
      },
    );
    for (const [k, control] of recipe.controls.entries()) {
      await mkdir(join(this.dir, "controls", `c${k}`), { recursive: true });
      await writePngFile(join(this.dir, "controls", `c${k}`, frameName(i)), control);
    }
    await writePngFile(this.framePath(i), image);
  }

  private keyValuePath(i: number, step: number): string {
    return join(this.dir, "keyvalues", frameName(i, ""), `step_${String(step).padStart(2, "0")}.safetensors`);
  }

  async putKeyValues(i: number, step: number, entries: StepKeyValues): Promise<void> {
    const tensors: Record<string, HostTensor> = {};
    for (const [model, entry] of entries)
      for (const [name, t] of Object.entries(entry)) tensors[`${model}/${name}`] = t;
    const path = this.keyValuePath(i, step);
    await mkdir(dirname(path), { recursive: true });
    await writeFileAtomic(path, serializeSafetensors(tensors), { durable: false });
  }

  async hasKeyValues(i: number, steps: number): Promise<boolean> {
    for (let s = 0; s < steps; s++) if (!(await exists(this.keyValuePath(i, s)))) return false;
    return true;
  }

  async keyValues(i: number, step: number): Promise<StepKeyValues> {
    const out = new Map<string, Record<string, HostTensor<"float32">>>();
    const path = this.keyValuePath(i, step);
    for (const [key, t] of await readSafetensors(path)) {
      const slash = key.indexOf("/");
      if (slash < 0 || t.dtype !== "float32")
        throw new ConfigError(path, key, "float32 keys/values named <model>/<input>", t.dtype, {
          hint: `delete ${this.dir} to start over`,
        });
      const model = key.slice(0, slash);
      let entry = out.get(model);
      if (entry === undefined) out.set(model, (entry = {}));
      entry[key.slice(slash + 1)] = t as HostTensor<"float32">;
    }
    return out as Map<string, AnchorEntry>;
  }

  async dropKeyValues(i: number): Promise<void> {
    await rm(join(this.dir, "keyvalues", frameName(i, "")), { recursive: true, force: true });
  }

  /** Finished frame indices, sorted. */
  async finishedFrames(): Promise<number[]> {
    const names = await readdir(join(this.dir, "frames")).catch(() => [] as string[]);
    return names
      .filter((n) => /^frame_\d{6}\.png$/.test(n))
      .map((n) => Number(n.slice(6, 12)))
      .sort((a, b) => a - b);
  }

  /** Seconds per frame recorded in the recipes (for run.json after a resume). */
  async recordedSeconds(frames: number): Promise<number[]> {
    const out: number[] = [];
    for (let i = 0; i < frames; i++) out.push((await this.recipe(i)).seconds);
    return out;
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** "out.mp4" -> "out.run.json"-style sibling names of a video output; inside the folder for a folder output. */
export function sidecarPath(out: string, isFolder: boolean, name: "run.json" | "metrics.json"): string {
  if (isFolder) return join(out, name);
  const ext = extname(out);
  return join(dirname(out), `${basename(out, ext)}.${name}`);
}
