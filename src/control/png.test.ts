import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CorruptFileError, FileNotFoundError } from "../errors.js";
import { image } from "../image.js";
import { readImageFile, writePngFile } from "./png.js";

describe("readImageFile / writePngFile", () => {
  it("round-trips gray, RGB and RGBA PNGs losslessly with their channel counts", async () => {
    const dir = await mkdtemp(join(tmpdir(), "steadyframe-png-"));
    for (const channels of [1, 3, 4] as const) {
      const img = image(
        5,
        3,
        channels,
        Uint8Array.from({ length: 15 * channels }, (_, i) => (i * 37) % 256),
      );
      const path = join(dir, `c${channels}.png`);
      await writePngFile(path, img);
      expect(await readImageFile(path)).toEqual(img);
    }
  });

  it("reports a missing file and an undecodable one", async () => {
    const dir = await mkdtemp(join(tmpdir(), "steadyframe-png-"));
    const missing = await readImageFile(join(dir, "nope.png")).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(FileNotFoundError);
    expect((missing as FileNotFoundError).code).toBe("E_FILE_NOT_FOUND");
    expect((missing as FileNotFoundError).message).toContain("image file not found");
    const junk = join(dir, "junk.png");
    await writeFile(junk, "not a png");
    const corrupt = await readImageFile(junk).catch((e: unknown) => e);
    expect(corrupt).toBeInstanceOf(CorruptFileError);
    expect((corrupt as CorruptFileError).code).toBe("E_CORRUPT_FILE");
    expect((corrupt as CorruptFileError).message).toContain("cannot decode the image");
  });
});
