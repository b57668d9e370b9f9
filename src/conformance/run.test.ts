import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileNotFoundError } from "../errors.js";
import { runConformance } from "./run.js";
import { formatTable, summarize } from "./table.js";
import type { FixtureKind } from "./types.js";

const echoKind: FixtureKind = {
  kind: "echo",
  description: "passes when case.json says so",
  async run({ caseJson }) {
    const error = Number(caseJson["error"]);
    return [
      {
        fixture: String(caseJson["fixture"]),
        tensor: "out",
        maxAbsError: error,
        tolerance: 1e-3,
        pass: error <= 1e-3,
      },
    ];
  },
};
const throwingKind: FixtureKind = {
  kind: "boom",
  description: "always throws",
  async run() {
    throw new Error("kaput");
  },
};

describe("runConformance", () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "sf-conf-"));
    const fixtures: Record<string, unknown> = {
      "a/good": { fixture: "echo/good", error: 1e-5 },
      "a/bad": { fixture: "echo/bad", error: 0.5 },
      "b/deep/unknown": { fixture: "mystery" },
      "b/boom": { fixture: "boom" },
    };
    for (const [dir, json] of Object.entries(fixtures)) {
      await mkdir(join(root, dir), { recursive: true });
      await writeFile(join(root, dir, "case.json"), JSON.stringify(json));
    }
    await mkdir(join(root, "c"), { recursive: true });
    await writeFile(join(root, "c", "case.json"), "{not json");
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("runs every case.json folder and never skips what it cannot run", async () => {
    const results = await runConformance([root], { kinds: [echoKind, throwingKind] });
    expect(results.map((r) => r.dir.slice(root.length + 1))).toEqual([
      "a/bad",
      "a/good",
      "b/boom",
      "b/deep/unknown",
      "c",
    ]);
    const rows = results.flatMap((r) => r.rows);
    expect(rows.map((r) => r.pass)).toEqual([false, true, false, false, false]);
    expect(rows[2]?.note).toContain("kaput");
    expect(rows[3]?.note).toContain('no runner for fixture kind "mystery" (known: echo, boom)');
    expect(rows[4]?.note).toContain("unreadable case.json");
    expect(summarize(results)).toEqual({ passed: 1, failed: 4, fixtures: 5 });
    const table = formatTable(results);
    expect(table).toMatch(/echo\/good\s+out\s+1\.00e-5\s+1\.00e-3\s+pass/);
    expect(table).toContain("FAIL");
  });

  it("filters by kind and reports progress", async () => {
    const events: string[] = [];
    const results = await runConformance([join(root, "a")], {
      kinds: [echoKind],
      onlyKinds: ["echo"],
      onProgress: (e) => events.push(e.status),
    });
    expect(results).toHaveLength(2);
    expect(events).toEqual(["start", "progress", "progress", "done"]);
  });

  it("names a folder that does not exist", async () => {
    await expect(runConformance([join(root, "nope")])).rejects.toThrow(FileNotFoundError);
  });

  it("stops when cancelled", async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(runConformance([root], { kinds: [echoKind], signal: controller.signal })).rejects.toThrow(
      "cancelled",
    );
  });
});
