/**
 * Runs every fixture found under the given folders with the kind named by its case.json, and collects
 * the rows. A fixture that cannot be run (unknown kind, bad case.json, an exception) becomes a failing
 * row: conformance never skips silently.
 */
import { readFile } from "node:fs/promises";
import { basename, join, relative } from "node:path";
import { parseJson } from "../config/parse.js";
import { throwIfAborted } from "../errors.js";
import type { LongTaskOptions } from "../progress.js";
import { failedRow } from "./compare.js";
import { findFixtureDirs } from "./discover.js";
import { FIXTURE_KINDS } from "./registry.js";
import type { ConformanceRow, FixtureKind } from "./types.js";

export interface ConformanceOptions extends LongTaskOptions {
  /** Kinds to use (defaults to every registered kind); tests inject their own. */
  readonly kinds?: readonly FixtureKind[];
  /** Only run fixtures whose kind is listed. */
  readonly onlyKinds?: readonly string[];
}

export interface FixtureResult {
  readonly dir: string;
  readonly kind: string;
  readonly rows: readonly ConformanceRow[];
  readonly seconds: number;
}

function kindOf(caseJson: Record<string, unknown>): string | undefined {
  const fixture = caseJson["fixture"];
  return typeof fixture === "string" && fixture.length > 0 ? fixture.split("/")[0] : undefined;
}

export async function runFixture(
  dir: string,
  options: ConformanceOptions = {},
  label = dir,
): Promise<FixtureResult | undefined> {
  const kinds = options.kinds ?? FIXTURE_KINDS;
  const started = performance.now();
  const finish = (kind: string, rows: readonly ConformanceRow[]): FixtureResult => ({
    dir,
    kind,
    rows,
    seconds: (performance.now() - started) / 1000,
  });
  let caseJson: Record<string, unknown>;
  try {
    // json.dump writes NaN / Infinity for non-finite floats: read as Python wrote it.
    const parsed = parseJson(await readFile(join(dir, "case.json"), "utf8"), join(dir, "case.json"));
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
      throw new Error("not a JSON object");
    caseJson = parsed as Record<string, unknown>;
  } catch (error) {
    return finish("?", [failedRow(label, "case.json", `unreadable case.json: ${String(error)}`)]);
  }
  const kindName = kindOf(caseJson);
  if (options.onlyKinds !== undefined && !options.onlyKinds.includes(kindName ?? "?")) return undefined;
  const kind = kinds.find((k) => k.kind === kindName);
  if (kindName === undefined || kind === undefined) {
    const known = kinds.map((k) => k.kind).join(", ");
    return finish(kindName ?? "?", [
      failedRow(
        label,
        "-",
        `no runner for fixture kind "${kindName ?? "(missing 'fixture' field)"}" (known: ${known})`,
      ),
    ]);
  }
  try {
    const rows = await kind.run(
      options.signal === undefined ? { dir, caseJson } : { dir, caseJson, signal: options.signal },
    );
    if (rows.length === 0)
      return finish(kind.kind, [failedRow(label, "-", "the fixture produced no comparisons")]);
    return finish(kind.kind, rows);
  } catch (error) {
    if (options.signal?.aborted) throw error;
    const message = error instanceof Error ? error.message : String(error);
    return finish(kind.kind, [failedRow(label, "-", `error: ${message}`)]);
  }
}

export async function runConformance(
  roots: readonly string[],
  options: ConformanceOptions = {},
): Promise<FixtureResult[]> {
  const dirs = await findFixtureDirs(roots);
  const results: FixtureResult[] = [];
  const task = "conformance";
  options.onProgress?.({ status: "start", task, total: dirs.length });
  for (const [i, dir] of dirs.entries()) {
    throwIfAborted(options.signal, task);
    const label = roots.map((r) => relative(r, dir)).sort((a, b) => a.length - b.length)[0] || basename(dir);
    const result = await runFixture(dir, options, label);
    if (result !== undefined) results.push(result);
    options.onProgress?.({ status: "progress", task, done: i + 1, total: dirs.length });
  }
  options.onProgress?.({ status: "done", task });
  return results;
}
