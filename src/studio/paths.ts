/**
 * Paths the studio's API receives, kept inside their configured roots (the models folder, the clips
 * folder, the outputs folder). A path from a request is relative to its root; absolute paths, `..`
 * segments, backslashes and NUL bytes are refused outright, and what remains is resolved with
 * realpath and must still lie inside the root's realpath, so a symbolic link that leads out of the
 * root is refused as well.
 */
import { mkdir, realpath, stat } from "node:fs/promises";
import { isAbsolute, join, sep } from "node:path";
import { FileNotFoundError, InvalidArgumentError } from "../errors.js";

/** A configured root: its name in messages ("models folder") and its real path. */
export interface Root {
  readonly name: string;
  readonly dir: string;
}

/** Opens a root folder (created when `create`), resolving its real path once. */
export async function openRoot(name: string, dir: string, create: boolean): Promise<Root> {
  if (create) await mkdir(dir, { recursive: true });
  const s = await stat(dir).catch(() => null);
  if (!s?.isDirectory()) throw new FileNotFoundError(dir, `the ${name}`, { hint: "pass an existing folder" });
  return { name, dir: await realpath(dir) };
}

/** True when `path` is `root` or lies below it (both real paths). */
export function isInside(root: string, path: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : `${root}${sep}`);
}

/** Refuses what can never be a relative path inside a root, before touching the disk. */
export function checkRelative(what: string, root: Root, rel: unknown): string {
  const expected = `a path inside the ${root.name}`;
  if (typeof rel !== "string" || rel.length === 0 || rel.length > 1024)
    throw new InvalidArgumentError(what, expected, rel);
  if (rel.includes("\0") || rel.includes("\\"))
    throw new InvalidArgumentError(what, expected, rel, { hint: "use / between folder names" });
  if (isAbsolute(rel) || /^[a-zA-Z]:/.test(rel))
    throw new InvalidArgumentError(what, expected, rel, {
      hint: `absolute paths are refused; give the path relative to the ${root.name}`,
    });
  if (rel.split("/").some((part) => part === ".."))
    throw new InvalidArgumentError(what, expected, rel, {
      hint: `".." is refused: only files inside the ${root.name} can be used`,
    });
  return rel;
}

/**
 * The real path of `rel` inside `root`; refuses paths that leave the root (also through symbolic
 * links) and paths that do not exist.
 */
export async function resolveInside(what: string, root: Root, rel: unknown): Promise<string> {
  const checked = checkRelative(what, root, rel);
  const joined = join(root.dir, checked);
  let real: string;
  try {
    real = await realpath(joined);
  } catch {
    throw new FileNotFoundError(checked, `${what} in the ${root.name}`, {
      hint: "pick one of the listed entries",
    });
  }
  if (!isInside(root.dir, real))
    throw new InvalidArgumentError(what, `a path inside the ${root.name}`, checked, {
      hint: `it leads out of the ${root.name} (a symbolic link to elsewhere); copy the files into the folder instead`,
    });
  return real;
}

/** A single file or folder name the studio makes (run ids, uploaded clip names). */
export function safeName(what: string, name: unknown): string {
  if (typeof name !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(name))
    throw new InvalidArgumentError(what, "a name of letters, digits, '.', '_' and '-'", name);
  return name;
}
