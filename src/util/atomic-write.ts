/**
 * Atomic outputs, the one implementation every writer uses (ONNX models, safetensors, PNG files and
 * sequences, videos, the CLI's folders and JSON files). A file or folder is built under a hidden
 * temporary name next to its target (same folder, so the final step is a rename(2), which is atomic
 * within one filesystem), flushed to disk when `durable`, and renamed into place only when complete:
 *
 * - a failed, thrown or cancelled write removes its temporary output and any parent folders it
 *   created, and leaves what was at the target before untouched;
 * - replacing an existing folder moves the old one aside (`.<name>.old-<pid>-<random>`), renames the
 *   new one in and only then deletes the old one; if the rename in fails, the old folder is moved
 *   back, so a failure never strands it under its temporary name;
 * - several files published together (a model and its external data) are replaced with the
 *   previous versions restored if any rename fails;
 * - temporary outputs still in progress are tracked so that a process that must exit at once (a
 *   second Ctrl-C, a hung system call) can delete them synchronously ({@link removeTempOutputsSync}).
 *
 * Temporary names keep the target's extension (ffmpeg picks the container from it) and start with a
 * dot, so listings and globs of the output folder do not show them.
 */
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { link, mkdir, open, rename, rm, rmdir, stat, unlink, writeFile } from "node:fs/promises";
import { basename, dirname, extname, join, resolve } from "node:path";
import { InvalidArgumentError, throwIfAborted } from "../errors.js";

export interface AtomicWriteOptions {
  /** (optional, default true) fsync the new files and their folder before and after the rename. */
  readonly durable?: boolean;
  /** (optional) cancels before the output is published; the temporary output is removed. */
  readonly signal?: AbortSignal;
  /** (optional, default true) create missing parent folders; removed again if the write fails. */
  readonly createParents?: boolean;
}

export interface AtomicDirOptions extends AtomicWriteOptions {
  /**
   * (optional) called when the target already exists, before anything is moved: return to allow
   * replacing it, throw to refuse. Without it an existing target is refused.
   */
  readonly canReplace?: (existing: string) => Promise<void> | void;
}

/** Temporary outputs not yet published or removed (absolute paths). */
const pending = new Set<string>();

function tag(): string {
  return `${process.pid}-${randomBytes(4).toString("hex")}`;
}

function strip(path: string): string {
  const trimmed = path.replace(/[/\\]+$/, "");
  return trimmed === "" ? path : trimmed;
}

/** A hidden sibling name for building `path`: `.<stem>.tmp-<pid>-<random><ext>` (extension kept). */
export function tempPathFor(path: string): string {
  const target = strip(path);
  const ext = extname(target);
  return join(dirname(target), `.${basename(target, ext)}.tmp-${tag()}${ext}`);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Creates `dir` and missing parents; returns the folders it created, outermost first. */
export async function createParentFolders(dir: string): Promise<string[]> {
  const missing: string[] = [];
  let current = resolve(dir);
  while (!(await exists(current))) {
    missing.unshift(current);
    const up = dirname(current);
    if (up === current) break;
    current = up;
  }
  // One level at a time: Node's recursive mkdir can loop forever on special filesystems (/proc).
  const created: string[] = [];
  try {
    for (const d of missing) {
      await mkdir(d);
      created.push(d);
    }
  } catch (error) {
    await removeCreatedFolders(created);
    throw error;
  }
  return created;
}

/** Removes folders made by {@link createParentFolders} if they are still empty; never throws. */
export async function removeCreatedFolders(created: readonly string[]): Promise<void> {
  for (const d of [...created].reverse()) await rmdir(d).catch(() => undefined);
}

/** Removes a temporary output; never throws (it runs while another error is on its way). */
export async function discard(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true }).catch(() => undefined);
  pending.delete(resolve(path));
}

/**
 * Deletes every temporary output still in progress, synchronously. For a process about to exit
 * without unwinding (see the CLI's Ctrl-C handling); never throws.
 */
export function removeTempOutputsSync(): void {
  for (const p of pending) {
    try {
      rmSync(p, { recursive: true, force: true });
    } catch {
      // best effort: the process is exiting
    }
  }
  pending.clear();
}

async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsync a folder so a rename in it survives a crash; not every filesystem allows it. */
async function fsyncFolder(dir: string): Promise<void> {
  await fsyncPath(dir).catch(() => undefined);
}

/**
 * Runs `write` with temporary paths for `paths`, then publishes every temporary file `write`
 * created, in the order given (write a model's data file before the model). If a rename fails,
 * the targets already replaced get their previous contents back. Returns what `write` returned.
 */
export async function withAtomicFiles<T>(
  paths: readonly string[],
  write: (temps: string[]) => Promise<T>,
  options: AtomicWriteOptions = {},
): Promise<T> {
  const targets = paths.map(strip);
  const temps = targets.map(tempPathFor);
  const created: string[] = [];
  if (options.createParents ?? true) {
    for (const dir of new Set(targets.map((t) => dirname(resolve(t))))) {
      created.push(...(await createParentFolders(dir)));
    }
  }
  for (const t of temps) pending.add(resolve(t));
  const backups: { target: string; backup: string }[] = [];
  const renamed: string[] = [];
  try {
    throwIfAborted(options.signal, `writing ${targets.join(", ")}`);
    const result = await write(temps);
    throwIfAborted(options.signal, `writing ${targets.join(", ")}`);
    const present: number[] = [];
    for (const [i, t] of temps.entries()) if (await exists(t)) present.push(i);
    if (options.durable ?? true) for (const i of present) await fsyncPath(temps[i] ?? "");
    if (present.length > 1) {
      // Several files: keep hard links to the old versions so a failed rename can restore them.
      for (const i of present) {
        const target = targets[i] ?? "";
        if (!(await exists(target))) continue;
        const backup = join(dirname(target), `.${basename(target)}.old-${tag()}`);
        pending.add(resolve(backup));
        await link(target, backup);
        backups.push({ target, backup });
      }
    }
    for (const i of present) {
      await rename(temps[i] ?? "", targets[i] ?? "");
      pending.delete(resolve(temps[i] ?? ""));
      renamed.push(targets[i] ?? "");
    }
    if (options.durable ?? true) {
      for (const dir of new Set(present.map((i) => dirname(targets[i] ?? "")))) await fsyncFolder(dir);
    }
    for (const b of backups) await discard(b.backup);
    return result;
  } catch (error) {
    // Undo a partial publish: old versions back in place, new files that replaced nothing removed.
    for (const target of renamed) {
      const b = backups.find((x) => x.target === target);
      if (b) await rename(b.backup, target).catch(() => undefined);
      else await unlink(target).catch(() => undefined);
    }
    for (const b of backups) await discard(b.backup);
    for (const t of temps) await discard(t);
    await removeCreatedFolders(created);
    throw error;
  }
}

/** {@link withAtomicFiles} for one file: `write(temp)` creates the temporary file, it is renamed to `path`. */
export async function withAtomicFile<T>(
  path: string,
  write: (temp: string) => Promise<T>,
  options: AtomicWriteOptions = {},
): Promise<T> {
  return withAtomicFiles([path], ([temp]) => write(temp ?? ""), options);
}

/** Writes `data` to `path` atomically (temporary file in the same folder, fsync, rename). */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: AtomicWriteOptions = {},
): Promise<void> {
  await withAtomicFile(path, (temp) => writeFile(temp, data, { flag: "wx" }), options);
}

/**
 * Moves the finished folder `finished` to `target`. An existing target is first checked with
 * `canReplace` (refused without it), moved aside, and deleted only after the new folder is in place;
 * if moving the new folder in fails, the old one is moved back before the error is rethrown.
 */
export async function publishDir(
  finished: string,
  target: string,
  options: Pick<AtomicDirOptions, "canReplace" | "durable"> = {},
): Promise<void> {
  const to = strip(target);
  if (!(await exists(to))) {
    await rename(finished, to);
  } else {
    if (!options.canReplace) {
      throw new InvalidArgumentError("target", "a path that does not exist yet", to, {
        hint: "choose a new output path or remove the old one first",
      });
    }
    await options.canReplace(to);
    const old = join(dirname(to), `.${basename(to)}.old-${tag()}`);
    await rename(to, old);
    pending.add(resolve(old));
    try {
      await rename(finished, to);
    } catch (error) {
      try {
        await rename(old, to);
        pending.delete(resolve(old));
      } catch (restoreError) {
        pending.delete(resolve(old));
        throw new AggregateError(
          [error, restoreError],
          `could not move the new output to ${to}, nor the previous one back from ${old}; it is there`,
        );
      }
      throw error;
    }
    await discard(old);
  }
  pending.delete(resolve(finished));
  if (options.durable ?? true) await fsyncFolder(dirname(to));
}

/**
 * Builds a folder atomically: `build(temp)` fills a fresh hidden sibling folder, which
 * {@link publishDir} then moves to `target`. On any failure or cancellation the temporary folder and
 * the parent folders created for it are removed; an existing target stays as it was.
 */
export async function withAtomicDir<T>(
  target: string,
  build: (temp: string) => Promise<T>,
  options: AtomicDirOptions = {},
): Promise<T> {
  const to = strip(target);
  const temp = tempPathFor(to);
  const created = options.createParents === false ? [] : await createParentFolders(dirname(resolve(to)));
  pending.add(resolve(temp));
  try {
    await mkdir(temp);
    const result = await build(temp);
    throwIfAborted(options.signal, `writing ${to}`);
    await publishDir(temp, to, options);
    return result;
  } catch (error) {
    await discard(temp);
    await removeCreatedFolders(created);
    throw error;
  }
}
