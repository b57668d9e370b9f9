/**
 * The atomic writers under failure: a final rename that fails (injected) must leave the previous
 * output as it was and no temporary or `.old-` entries; a failed or cancelled build removes its
 * temporary folder and the parent folders it created.
 */
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { CancelledError, InvalidArgumentError } from "../errors.js";
import { makeTempDir } from "../../test/helpers/video.js";

/** Renames whose destination ends with `failRenameTo` throw EXDEV, as across filesystems. */
const fault = vi.hoisted(() => ({ failRenameTo: undefined as string | undefined, calls: [] as string[] }));
vi.mock("node:fs/promises", async (importOriginal) => {
  const fs = await importOriginal<typeof import("node:fs/promises")>();
  return {
    ...fs,
    rename: async (from: string, to: string): Promise<void> => {
      fault.calls.push(`${from} -> ${to}`);
      if (fault.failRenameTo !== undefined && to.endsWith(fault.failRenameTo) && !from.includes(".old-")) {
        throw Object.assign(new Error(`EXDEV: injected, rename '${from}' -> '${to}'`), { code: "EXDEV" });
      }
      return fs.rename(from, to);
    },
  };
});

const { publishDir, removeTempOutputsSync, withAtomicDir, withAtomicFiles, writeFileAtomic } =
  await import("./atomic-write.js");

let tmp: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  tmp = await makeTempDir("steadyframe-atomic-");
});
afterAll(async () => tmp.cleanup());
afterEach(() => {
  fault.failRenameTo = undefined;
  fault.calls.length = 0;
});

describe("writeFileAtomic", () => {
  it("writes, replaces, and creates missing parents", async () => {
    const path = join(tmp.dir, "w", "a", "b.json");
    await writeFileAtomic(path, "one");
    await writeFileAtomic(path, "two");
    expect(await readFile(path, "utf8")).toBe("two");
    expect(await readdir(join(tmp.dir, "w", "a"))).toEqual(["b.json"]);
  });

  it("a failing final rename keeps the previous file, leaves no temp file and no created parents", async () => {
    const path = join(tmp.dir, "keep.json");
    await writeFile(path, "old");
    fault.failRenameTo = "keep.json";
    await expect(writeFileAtomic(path, "new")).rejects.toThrow(/EXDEV/);
    expect(await readFile(path, "utf8")).toBe("old");
    expect((await readdir(tmp.dir)).filter((n) => n.includes("keep"))).toEqual(["keep.json"]);

    fault.failRenameTo = "m.json";
    await expect(writeFileAtomic(join(tmp.dir, "new1", "new2", "m.json"), "x")).rejects.toThrow(/EXDEV/);
    expect(await readdir(tmp.dir)).not.toContain("new1");
  });
});

describe("withAtomicFiles (a model and its data file)", () => {
  it("a failing second rename restores the first file and leaves no backups", async () => {
    const dir = join(tmp.dir, "model");
    await mkdir(dir);
    const data = join(dir, "m.onnx.data");
    const model = join(dir, "m.onnx");
    await writeFile(data, "old data");
    await writeFile(model, "old model");
    fault.failRenameTo = "m.onnx";
    await expect(
      withAtomicFiles([data, model], async ([d, m]) => {
        await writeFile(d ?? "", "new data");
        await writeFile(m ?? "", "new model");
      }),
    ).rejects.toThrow(/EXDEV/);
    expect(await readFile(data, "utf8")).toBe("old data");
    expect(await readFile(model, "utf8")).toBe("old model");
    expect((await readdir(dir)).sort()).toEqual(["m.onnx", "m.onnx.data"]);
  });

  it("a first-time write whose second rename fails leaves neither file", async () => {
    const dir = join(tmp.dir, "fresh");
    await mkdir(dir);
    fault.failRenameTo = "f.onnx";
    await expect(
      withAtomicFiles([join(dir, "f.onnx.data"), join(dir, "f.onnx")], async ([d, m]) => {
        await writeFile(d ?? "", "data");
        await writeFile(m ?? "", "model");
      }),
    ).rejects.toThrow(/EXDEV/);
    expect(await readdir(dir)).toEqual([]);
  });
});

describe("withAtomicDir / publishDir", () => {
  const build = (text: string) => async (temp: string) => {
    await writeFile(join(temp, "frame.png"), text);
  };

  it("replaces an existing folder only with canReplace; refuses otherwise", async () => {
    const out = join(tmp.dir, "seq");
    await withAtomicDir(out, build("1"));
    await expect(withAtomicDir(out, build("2"))).rejects.toBeInstanceOf(InvalidArgumentError);
    await withAtomicDir(out, build("3"), { canReplace: () => undefined });
    expect(await readFile(join(out, "frame.png"), "utf8")).toBe("3");
    expect((await readdir(tmp.dir)).filter((n) => n.includes("seq"))).toEqual(["seq"]);
  });

  it("a failing final rename restores the old folder: no .old- or temp folder is stranded", async () => {
    const out = join(tmp.dir, "ctl");
    await withAtomicDir(out, build("old"));
    fault.failRenameTo = "ctl";
    await expect(withAtomicDir(out, build("new"), { canReplace: () => undefined })).rejects.toThrow(/EXDEV/);
    expect(await readFile(join(out, "frame.png"), "utf8")).toBe("old");
    expect((await readdir(tmp.dir)).filter((n) => n.includes("ctl"))).toEqual(["ctl"]);
    // the old folder really went aside and came back
    expect(fault.calls.some((c) => c.includes(".ctl.old-"))).toBe(true);
  });

  it("publishDir moves a finished folder into a new place", async () => {
    const finished = join(tmp.dir, "finished");
    await mkdir(finished);
    await publishDir(finished, join(tmp.dir, "published"));
    expect(await readdir(tmp.dir)).toContain("published");
    expect(await readdir(tmp.dir)).not.toContain("finished");
  });

  it("a failing or cancelled build removes the temp folder and the parents it created", async () => {
    const before = (await readdir(tmp.dir)).sort();
    await expect(
      withAtomicDir(join(tmp.dir, "p1", "p2", "out"), () => Promise.reject(new Error("boom"))),
    ).rejects.toThrow("boom");
    const controller = new AbortController();
    await expect(
      withAtomicDir(
        join(tmp.dir, "p3", "out"),
        async (temp) => {
          await build("x")(temp);
          controller.abort();
        },
        { signal: controller.signal },
      ),
    ).rejects.toBeInstanceOf(CancelledError);
    expect((await readdir(tmp.dir)).sort()).toEqual(before);
  });

  it("removeTempOutputsSync deletes outputs still being built (a forced exit)", async () => {
    const before = (await readdir(tmp.dir)).sort();
    let seen: string[] = [];
    await withAtomicDir(join(tmp.dir, "forced"), async (temp) => {
      await build("x")(temp);
      seen = (await readdir(tmp.dir)).filter((n) => n.startsWith(".forced.tmp-"));
      removeTempOutputsSync();
    }).catch(() => undefined);
    expect(seen).toHaveLength(1);
    expect((await readdir(tmp.dir)).sort()).toEqual(before);
  });
});
