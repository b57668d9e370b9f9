/** checkOutputPath: what it refuses (naming the flag and why) and what it reports; it creates nothing. */
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../errors.js";
import { makeTempDir } from "../../test/helpers/video.js";
import { checkOutputPath } from "./output-path.js";

let tmp: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  tmp = await makeTempDir("steadyframe-outpath-");
  await writeFile(join(tmp.dir, "file.txt"), "x");
  await mkdir(join(tmp.dir, "folder"));
});
afterAll(async () => tmp.cleanup());

async function refusal(flag: string, path: string, kind: "file" | "folder"): Promise<string> {
  const err: unknown = await checkOutputPath(flag, path, kind).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof InvalidArgumentError)) throw new Error(`expected a refusal for ${path}`);
  expect(err.argument).toBe(flag);
  return err.message;
}

describe("checkOutputPath", () => {
  it("refuses kernel filesystems, devices included, but allows /dev/shm", async () => {
    expect(await refusal("--out", "/proc/x/y", "folder")).toMatch(/kernel filesystem \(proc\)/);
    expect(await refusal("--out", "/sys/steadyframe.json", "file")).toMatch(/kernel filesystem \(sysfs\)/);
    expect(await refusal("--json", "/dev/null", "file")).toMatch(/kernel filesystem \(\/dev\)/);
    expect((await checkOutputPath("--out", "/dev/shm/steadyframe-probe.json", "file")).existing).toBeNull();
  });

  it("refuses a file where a folder is needed and the other way round", async () => {
    expect(await refusal("--out", join(tmp.dir, "file.txt", "a", "b.json"), "file")).toMatch(
      /file\.txt is a file, not a folder/,
    );
    expect(await refusal("--out", join(tmp.dir, "file.txt"), "folder")).toMatch(/is a file; give a folder/);
    expect(await refusal("--out", join(tmp.dir, "folder"), "file")).toMatch(/is a folder; give a file name/);
    expect(await refusal("--out", "  ", "file")).toMatch(/output file path/);
  });

  it("reports what exists and which parents are missing, creating nothing", async () => {
    const before = await readdir(tmp.dir);
    const info = await checkOutputPath("--out", join(tmp.dir, "a", "b", "m.json"), "file");
    expect(info).toEqual({
      path: join(tmp.dir, "a", "b", "m.json"),
      existing: null,
      missingParents: [join(tmp.dir, "a"), join(tmp.dir, "a", "b")],
    });
    expect((await checkOutputPath("--out", join(tmp.dir, "folder"), "folder")).existing).toBe("folder");
    expect((await checkOutputPath("--out", join(tmp.dir, "file.txt"), "file")).existing).toBe("file");
    expect(await readdir(tmp.dir)).toEqual(before);
  });
});
