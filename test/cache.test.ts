/**
 * The compiled-model cache (issue 13, bug 9): its folder comes from cacheDir, else
 * $STEADYFRAME_CACHE_DIR; it is kept under $STEADYFRAME_CACHE_MAX_GB by deleting least recently
 * used entries (never one in use); `steadyframe cache ls|clear` lists and deletes only entries.
 */
import { mkdir, readdir, utimes, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { cacheCommand } from "../src/cli/commands/cache.js";
import { InvalidArgumentError } from "../src/errors.js";
import { GraphBuilder } from "../src/graph/builder.js";
import * as op from "../src/graph/ops/index.js";
import { compileGraph } from "../src/models/compiled-graph.js";
import { mapStore } from "../src/nn/weight-store.js";
import { WeightScope } from "../src/nn/weights.js";
import { CACHE_DIR_ENV, CACHE_MAX_ENV, cacheMaxBytes, listCache } from "../src/runtime/cache-store.js";
import { tensor } from "../src/tensor.js";
import { captureIO } from "./helpers/cli-io.js";
import { expectError, makeTempDir } from "./helpers/video.js";

function scaleGraph(factor: number): GraphBuilder {
  const g = new GraphBuilder();
  const w = WeightScope.bind(g, mapStore({ "lin.weight": tensor("float32", [2], Float32Array.of(1, 2)) }));
  g.output(
    op.Mul(g, op.Mul(g, g.input("x", "float32", ["n", 2]), w.at("lin").param("weight", [2])), factor),
    "y",
  );
  return g;
}

let tmp: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  tmp = await makeTempDir("steadyframe-cache-");
});
afterAll(async () => tmp.cleanup());
afterEach(() => {
  delete process.env[CACHE_DIR_ENV];
  delete process.env[CACHE_MAX_ENV];
});

const names = async (dir: string): Promise<string[]> =>
  (await listCache(dir)).map((i) => i.name.split("-")[0] ?? "");

describe("compiled-model cache", () => {
  it("uses $STEADYFRAME_CACHE_DIR when no cacheDir is given", async () => {
    const dir = join(tmp.dir, "env-cache");
    process.env[CACHE_DIR_ENV] = dir;
    const c = await compileGraph(scaleGraph(2), "envmodel", "w", {});
    expect(dirname(dirname(c.modelPath))).toBe(dir);
    await c.release();
    expect(await names(dir)).toEqual(["envmodel"]);
  });

  it("evicts least recently used entries past the cap, never one in use", async () => {
    const cacheDir = join(tmp.dir, "lru");
    const a = await compileGraph(scaleGraph(2), "a", "w", { cacheDir });
    const b = await compileGraph(scaleGraph(3), "b", "w", { cacheDir });
    await a.release();
    await b.release();
    const [entry] = await listCache(cacheDir);
    const size = entry?.bytes ?? 0;
    expect(size).toBeGreaterThan(0);
    const now = Date.now() / 1000;
    await utimes(dirname(a.modelPath), now - 100, now - 100);
    await utimes(dirname(b.modelPath), now - 50, now - 50);
    // reusing a makes b the least recently used
    const again = await compileGraph(scaleGraph(2), "a", "w", { cacheDir });
    expect(again.reused).toBe(true);
    await again.release();
    process.env[CACHE_MAX_ENV] = String((2.5 * size) / 1e9);
    const c = await compileGraph(scaleGraph(4), "c", "w", { cacheDir });
    expect((await names(cacheDir)).sort()).toEqual(["a", "c"]);
    // a cap of 0 keeps only what is in use
    process.env[CACHE_MAX_ENV] = "0";
    const d = await compileGraph(scaleGraph(5), "d", "w", { cacheDir });
    expect((await names(cacheDir)).sort()).toEqual(["c", "d"]);
    await c.release();
    await d.release();
  });

  it("refuses a bad $STEADYFRAME_CACHE_MAX_GB naming the variable", () => {
    process.env[CACHE_MAX_ENV] = "lots";
    expect(() => cacheMaxBytes()).toThrow(InvalidArgumentError);
    expect(() => cacheMaxBytes()).toThrow(/STEADYFRAME_CACHE_MAX_GB/);
    delete process.env[CACHE_MAX_ENV];
    expect(cacheMaxBytes()).toBe(20e9);
  });
});

describe("steadyframe cache ls|clear", () => {
  it("lists entries with sizes, clears only entries", async () => {
    const cacheDir = join(tmp.dir, "cmd");
    const m = await compileGraph(scaleGraph(2), "listed", "w", { cacheDir });
    await m.release();
    await mkdir(join(cacheDir, "my-notes"));
    await writeFile(join(cacheDir, "keep.txt"), "not an entry");
    const io = captureIO();
    expect(await cacheCommand.run(["ls", "--cache-dir", cacheDir], io)).toBe(0);
    expect(io.out()).toMatch(new RegExp(`^${cacheDir}: 1 entries, \\d+ B \\(cap 20\\.00 GB\\)`));
    expect(io.out()).toMatch(/ listed-[0-9a-f]{24}\n/);
    const json = captureIO();
    expect(await cacheCommand.run(["ls", "--json", "--cache-dir", cacheDir], json)).toBe(0);
    expect(JSON.parse(json.out())).toMatchObject({ dir: cacheDir, entries: [{ temporary: false }] });
    process.env[CACHE_DIR_ENV] = cacheDir;
    const cleared = captureIO();
    expect(await cacheCommand.run(["clear"], cleared)).toBe(0);
    expect(cleared.out()).toMatch(/^removed 1 entries/);
    expect((await readdir(cacheDir)).sort()).toEqual(["keep.txt", "my-notes"]);
    await expectError(
      cacheCommand.run(["prune"], captureIO()),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "ls or clear",
    );
  });
});
