/**
 * Finds fixture folders: every directory holding a `case.json`, below any of the given roots.
 */
import { readdir, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { FileNotFoundError } from "../errors.js";

export async function findFixtureDirs(roots: readonly string[]): Promise<string[]> {
  const found = new Set<string>();
  async function walk(dir: string): Promise<void> {
    const entries = await readdir(dir, { withFileTypes: true });
    if (entries.some((e) => e.isFile() && e.name === "case.json")) found.add(dir);
    for (const e of entries) {
      if (e.isDirectory() && e.name !== "node_modules" && !e.name.startsWith("."))
        await walk(join(dir, e.name));
    }
  }
  for (const root of roots) {
    const path = resolve(root);
    const info = await stat(path).catch(() => undefined);
    if (info === undefined || !info.isDirectory()) {
      throw new FileNotFoundError(path, "fixture directory", {
        hint: "pass folders that contain fixture folders with a case.json (e.g. test/fixtures/golden)",
      });
    }
    await walk(path);
  }
  return [...found].sort();
}
