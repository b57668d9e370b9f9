/**
 * The check every command runs on its output path before it loads a model or decodes a frame, so a
 * bad `--out` fails in a second instead of after the work (and never half-way through a write).
 *
 * `checkOutputPath("--out", path, "file" | "folder")` refuses, naming the flag and the path:
 * - kernel filesystems (/proc, /sys, /dev except /dev/shm, and anything mounted as proc, sysfs,
 *   cgroup, debugfs, ...): nothing can be stored there, and Node's recursive mkdir loops forever
 *   on /proc;
 * - a file where a folder is needed (the target, or any existing parent) and a folder where a
 *   file is needed;
 * - a nearest existing parent folder that is read-only (EROFS) or not writable (EACCES).
 * It creates nothing: missing parent folders are listed in `missingParents` and made by the atomic
 * writers (src/util/atomic-write.ts) only when the output is written, and removed again if that fails.
 */
import { constants } from "node:fs";
import { access, realpath, stat, statfs } from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";
import { InvalidArgumentError } from "../errors.js";

export interface OutputPathInfo {
  /** The absolute output path. */
  readonly path: string;
  /** What is at the path now. */
  readonly existing: "file" | "folder" | null;
  /** Folders that do not exist yet and will be created with the output, outermost first. */
  readonly missingParents: readonly string[];
}

/** Mount points whose contents are made up by the kernel; /dev/shm is ordinary shared memory. */
const SPECIAL_ROOTS = ["/proc", "/sys", "/dev"];
const ALLOWED_UNDER_SPECIAL = ["/dev/shm"];

/** statfs(2) f_type magic numbers of pseudo filesystems (linux/magic.h). */
const SPECIAL_FS: ReadonlyMap<number, string> = new Map([
  [0x9fa0, "proc"],
  [0x62656572, "sysfs"],
  [0x1cd1, "devpts"],
  [0x27e0eb, "cgroup"],
  [0x63677270, "cgroup2"],
  [0x64626720, "debugfs"],
  [0x74726163, "tracefs"],
  [0x73636673, "securityfs"],
  [0x62656570, "configfs"],
  [0xcafe4a11, "bpf"],
  [0x6165676c, "pstore"],
  [0xde5e81e4, "efivarfs"],
  [0x65735543, "fusectl"],
]);

function under(path: string, root: string): boolean {
  return path === root || path.startsWith(root + sep);
}

async function kindOf(path: string): Promise<"file" | "folder" | "other" | null> {
  const s = await stat(path).catch(() => null);
  if (s === null) return null;
  return s.isDirectory() ? "folder" : s.isFile() ? "file" : "other";
}

/**
 * Checks that `path` (given with the command-line option `flag`, e.g. "--out") can be written as a
 * `kind` ("file" or "folder") without creating anything; throws an InvalidArgumentError naming the
 * flag, the path and the reason otherwise. See the file comment for what is refused. Existing
 * targets are reported, not refused: whether to replace them is the command's decision.
 */
export async function checkOutputPath(
  flag: string,
  path: string,
  kind: "file" | "folder",
): Promise<OutputPathInfo> {
  const wanted = kind === "file" ? "an output file path" : "an output folder path";
  if (path.trim() === "") throw new InvalidArgumentError(flag, wanted, path);
  const absolute = resolve(path);
  function refuse(why: string, hint: string): never {
    throw new InvalidArgumentError(flag, `${wanted} that can be written`, path, { hint: `${why}; ${hint}` });
  }

  // The nearest existing folder above (or at) the target.
  const missing: string[] = [];
  let anchor = absolute;
  let anchorKind = await kindOf(anchor);
  const existing = anchorKind;
  while (anchorKind === null) {
    missing.unshift(anchor);
    const up = dirname(anchor);
    if (up === anchor) break;
    anchor = up;
    anchorKind = await kindOf(anchor);
  }
  const missingParents = missing.slice(0, -1); // the target itself is not a parent

  // Where it really is (symbolic links resolved), for the kernel-filesystem test.
  const realAnchor = await realpath(anchor).catch(() => anchor);
  const real = join(realAnchor, relative(anchor, absolute));
  const root = SPECIAL_ROOTS.find((r) => under(real, r));
  const fsType = await statfs(realAnchor).then(
    (s) => SPECIAL_FS.get(s.type),
    () => undefined,
  );
  if ((root !== undefined && !ALLOWED_UNDER_SPECIAL.some((a) => under(real, a))) || fsType !== undefined) {
    refuse(
      `${real} is on a kernel filesystem (${fsType ?? root}) where outputs cannot be stored`,
      "choose a folder on a disk, e.g. under your home folder or /tmp",
    );
  }

  if (existing === "other") refuse(`${absolute} is a device or special file`, "choose a new path");
  if (existing === "folder" && kind === "file")
    refuse(`${absolute} is a folder`, "give a file name, e.g. " + join(path, "out.json"));
  if (existing === "file" && kind === "folder")
    refuse(`${absolute} is a file`, "give a folder path that does not exist yet, or remove the file");
  const parent = existing === null ? anchor : dirname(absolute);
  const parentKind = existing === null ? anchorKind : await kindOf(parent);
  if (parentKind !== "folder") {
    refuse(
      `${parent} is ${parentKind === null ? "missing" : "a file, not a folder"}, so ${absolute} cannot be created`,
      "choose a path whose parent folders are folders",
    );
  }
  try {
    await access(parent, constants.W_OK | constants.X_OK);
  } catch (error) {
    const code = error instanceof Error && "code" in error ? String(error.code) : "";
    refuse(
      code === "EROFS"
        ? `${parent} is on a read-only filesystem`
        : `${parent} is not writable (${code || String(error)})`,
      "choose a folder you can write to",
    );
  }
  return { path: absolute, existing, missingParents };
}
