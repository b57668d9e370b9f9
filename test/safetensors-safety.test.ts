/**
 * The safetensors-safety golden fixtures (test/fixtures/golden/safetensors-safety, copied from
 * shared/golden) through the `safetensors_safety` conformance kind and directly through the reader.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { safetensorsSafetyKind } from "../src/conformance/kinds/safetensors-safety.js";
import { runFixture } from "../src/conformance/run.js";
import { CorruptFileError } from "../src/errors.js";
import { parseSafetensors, readSafetensors } from "../src/weights/safetensors.js";

const fixtureDir = join(import.meta.dirname, "fixtures", "golden", "safetensors-safety");

interface FileSpec {
  expect: string;
  reference_error?: string | null;
}
let files: Record<string, FileSpec>;

beforeAll(async () => {
  files = (
    JSON.parse(await readFile(join(fixtureDir, "case.json"), "utf8")) as { files: Record<string, FileSpec> }
  ).files;
});

describe("safetensors_safety conformance kind on the golden fixtures", () => {
  it("passes every file", async () => {
    const result = await runFixture(fixtureDir, { kinds: [safetensorsSafetyKind] });
    expect(result?.rows.length).toBe(Object.keys(files).length);
    for (const row of result?.rows ?? [])
      expect(row, `${row.tensor}: ${row.note ?? ""}`).toMatchObject({ pass: true });
  });

  it("fails rows whose expectation the reader does not meet", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sf-st-kind-"));
    try {
      for (const name of ["too_short.safetensors", "valid_unaligned_data.safetensors"]) {
        await cp(join(fixtureDir, name), join(dir, name));
      }
      const caseJson = {
        fixture: "safetensors_safety",
        files: {
          "too_short.safetensors": { expect: "load", tensors: {} },
          "valid_unaligned_data.safetensors": {
            expect: "load",
            tensors: {
              x: { dtype: "F32", shape: [3], values: [0.4424417316913605, -0.9278627038002014, 0] },
            },
          },
        },
      };
      await writeFile(join(dir, "case.json"), JSON.stringify(caseJson));
      const rows = (await runFixture(dir, { kinds: [safetensorsSafetyKind] }))?.rows ?? [];
      expect(rows.map((r) => r.pass)).toEqual([false, false]);
      expect(rows[0]?.note).toMatch(/refused a valid file: E_CORRUPT_FILE/);
      expect(rows[1]?.note).toMatch(/x\[2\] = -0.933\d+, expected 0/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("the reader refuses every malformed file with CorruptFileError", () => {
  it("through readSafetensors and parseSafetensors", async () => {
    const refused = Object.entries(files).filter(([, spec]) => spec.expect === "refuse");
    expect(refused.length).toBeGreaterThan(10);
    for (const [name] of refused) {
      const path = join(fixtureDir, name);
      const error = await readSafetensors(path).catch((e: unknown) => e);
      expect(error, name).toBeInstanceOf(CorruptFileError);
      expect((error as CorruptFileError).code, name).toBe("E_CORRUPT_FILE");
      expect((error as CorruptFileError).message, name).toContain(name);
      const bytes = new Uint8Array(await readFile(path));
      expect(() => parseSafetensors(bytes, path), name).toThrow(CorruptFileError);
    }
  });

  it("reads the u64 header length whole (high bits set -> over the 100 MB cap)", async () => {
    const error = await readSafetensors(join(fixtureDir, "header_len_u64_high_bits.safetensors")).catch(
      (e: unknown) => e,
    );
    expect((error as CorruptFileError).message).toMatch(
      /header length 4294967360 exceeds the 100000000-byte limit/,
    );
  });
});
