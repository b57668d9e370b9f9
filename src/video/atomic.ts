/**
 * Atomic outputs: a video file or frame directory is built under a temporary name next to its target
 * and renamed into place only when complete, so a failed or cancelled write never leaves a partial
 * file where the real one should be.
 */
import { randomBytes } from "node:crypto";
import { readdir, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, extname, join } from "node:path";
import { VideoError } from "../errors.js";

function tag(): string {
  return `${process.pid}-${randomBytes(3).toString("hex")}`;
}

/** A hidden temporary file name in the target's directory, keeping the extension. */
export function tempFileFor(path: string): string {
  const ext = extname(path);
  return join(dirname(path), `.${basename(path, ext)}.tmp-${tag()}${ext}`);
}

/** `<dir>.tmp-<pid>-<random>`: a sibling directory to build a frame directory in. */
export function tempDirFor(dir: string): string {
  return `${dir.replace(/[/\\]+$/, "")}.tmp-${tag()}`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Moves a finished directory to `target`. An existing target is replaced only when it is empty or
 * holds nothing but files with one of `replaceable` extensions (an earlier output of the same
 * kind); anything else is refused, so a mistyped path never deletes unrelated files.
 */
export async function replaceDir(
  finished: string,
  target: string,
  replaceable: readonly string[],
): Promise<void> {
  if (!(await exists(target))) {
    await rename(finished, target);
    return;
  }
  const info = await stat(target);
  const entries = info.isDirectory() ? await readdir(target, { withFileTypes: true }) : [];
  const foreign = entries.find((e) => !e.isFile() || !replaceable.includes(extname(e.name).toLowerCase()));
  if (!info.isDirectory() || foreign) {
    throw new VideoError(
      target,
      info.isDirectory()
        ? `refusing to replace this directory: it holds ${foreign?.name ?? "other files"}, not only ${replaceable.join("/")} files`
        : "refusing to replace this file with a frame directory",
      { hint: "choose a new output path or remove the old one first" },
    );
  }
  const old = `${target.replace(/[/\\]+$/, "")}.old-${tag()}`;
  await rename(target, old);
  try {
    await rename(finished, target);
  } catch (err) {
    await rename(old, target);
    throw err;
  }
  await rm(old, { recursive: true, force: true });
}

/** Removes a temporary output; never throws (it runs while another error is on its way). */
export async function discard(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true }).catch(() => undefined);
}
