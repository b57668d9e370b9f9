/**
 * Where compiled models are kept between runs, and how the folder is kept in bounds.
 *
 * `compileGraph` (models/compiled-graph.ts) writes each model it builds (graph + weights as ONNX,
 * about the size of the weights) to `<cache dir>/<name>-<24 hex key>/` and reuses it next time.
 * The cache folder is, in order: the `cacheDir` option (CLI `--cache-dir`), the
 * `STEADYFRAME_CACHE_DIR` environment variable, `<os tmpdir>/steadyframe/models`.
 *
 * Size cap: after writing an entry, entries are deleted least recently used first until the folder
 * holds at most `STEADYFRAME_CACHE_MAX_GB` (default 20) gigabytes (10^9 bytes); entries this process
 * is using are never deleted. "Used" is recorded by setting the entry folder's modification time
 * when it is written or reused (access times are unreliable under relatime/noatime mounts).
 *
 * Only folders that look like entries (`<name>-<24 hex>`, or `<name>-uncached-*` left by a crashed
 * run) are counted, listed or deleted, so a cache dir pointed at the wrong folder deletes nothing
 * else. `steadyframe cache ls|clear` is the command-line view of this module.
 */
import { readdir, rm, stat, utimes } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InvalidArgumentError } from "../errors.js";

export const CACHE_DIR_ENV = "STEADYFRAME_CACHE_DIR";
export const CACHE_MAX_ENV = "STEADYFRAME_CACHE_MAX_GB";
export const DEFAULT_CACHE_MAX_GB = 20;

const ENTRY_RE = /^[\w.-]+-[0-9a-f]{24}$/;
const UNCACHED_RE = /^[\w.-]+-uncached-\w+$/;

/** The cache folder: `explicit` (e.g. --cache-dir), else $STEADYFRAME_CACHE_DIR, else the OS temp folder. */
export function resolveCacheDir(explicit?: string): string {
  if (explicit !== undefined && explicit !== "") return explicit;
  const env = process.env[CACHE_DIR_ENV];
  return env !== undefined && env !== "" ? env : join(tmpdir(), "steadyframe", "models");
}

/** The size cap in bytes from $STEADYFRAME_CACHE_MAX_GB (default 20 GB); 0 keeps only entries in use. */
export function cacheMaxBytes(): number {
  const text = process.env[CACHE_MAX_ENV];
  if (text === undefined || text.trim() === "") return DEFAULT_CACHE_MAX_GB * 1e9;
  const gb = Number(text);
  if (!Number.isFinite(gb) || gb < 0) {
    throw new InvalidArgumentError(CACHE_MAX_ENV, "a number of gigabytes >= 0 (e.g. 20 or 0.5)", text, {
      hint: `unset it for the default of ${DEFAULT_CACHE_MAX_GB}`,
    });
  }
  return gb * 1e9;
}

export interface CacheItem {
  readonly name: string;
  readonly path: string;
  readonly bytes: number;
  /** When the entry was last written or reused. */
  readonly lastUsed: Date;
  /** A temporary model folder (`-uncached-`): in use by a running process, or left by a crash. */
  readonly temporary: boolean;
}

async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += await folderBytes(p);
    else total += (await stat(p).catch(() => null))?.size ?? 0;
  }
  return total;
}

/** The entries in `dir`, least recently used first (empty when the folder does not exist). */
export async function listCache(dir: string): Promise<CacheItem[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const items: CacheItem[] = [];
  for (const e of entries) {
    const temporary = UNCACHED_RE.test(e.name);
    if (!e.isDirectory() || !(ENTRY_RE.test(e.name) || temporary)) continue;
    const path = join(dir, e.name);
    const info = await stat(path).catch(() => null);
    if (!info) continue;
    items.push({ name: e.name, path, bytes: await folderBytes(path), lastUsed: info.mtime, temporary });
  }
  return items.sort((a, b) => a.lastUsed.getTime() - b.lastUsed.getTime());
}

/** Records that the entry folder `path` was used now (its modification time). */
export async function touchCacheEntry(path: string): Promise<void> {
  const now = new Date();
  await utimes(path, now, now).catch(() => undefined);
}

/**
 * Deletes entries of `dir`, least recently used first, until they total at most `maxBytes`;
 * never those in `keep` (paths in use) nor temporary folders. Returns what was deleted.
 */
export async function evictCache(
  dir: string,
  maxBytes: number,
  keep: ReadonlySet<string> = new Set(),
): Promise<CacheItem[]> {
  const items = await listCache(dir);
  let total = items.reduce((sum, i) => sum + i.bytes, 0);
  const removed: CacheItem[] = [];
  for (const item of items) {
    if (total <= maxBytes) break;
    if (item.temporary || keep.has(item.path)) continue;
    await rm(item.path, { recursive: true, force: true });
    total -= item.bytes;
    removed.push(item);
  }
  return removed;
}

/** Deletes every entry of `dir` (temporary folders too: do not clear while a run is using the cache). */
export async function clearCache(dir: string): Promise<CacheItem[]> {
  const items = await listCache(dir);
  for (const item of items) await rm(item.path, { recursive: true, force: true });
  return items;
}
