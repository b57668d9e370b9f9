/**
 * Shared by the loader-safety kinds (`pickle_safety`, `safetensors_safety`): case.json `files` maps a
 * file name to {expect: "refuse" | "load" | "load_or_refuse", ...}. A refusal passes only as one of our
 * typed errors (an exception such as RangeError means the loader was not in control); a load passes
 * only when every value matches exactly.
 */
import { isAbsolute, join, relative } from "node:path";
import { ConfigError, SteadyframeError } from "../../errors.js";
import type { ConformanceRow } from "../types.js";

export type Expectation = "refuse" | "load" | "load_or_refuse";

export interface SafetyFile {
  readonly name: string;
  readonly path: string;
  readonly expect: Expectation;
  readonly spec: Readonly<Record<string, unknown>>;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A path inside the fixture folder (case.json is untrusted: no absolute paths, no "..", no escaping). */
export function fixturePath(dir: string, name: string, caseFile: string, field: string): string {
  const path = join(dir, name);
  const rel = relative(dir, path);
  if (name.length === 0 || isAbsolute(name) || rel.startsWith("..") || isAbsolute(rel)) {
    throw new ConfigError(caseFile, field, "a file name inside the fixture folder", name);
  }
  return path;
}

export function parseSafetyFiles(dir: string, caseJson: Readonly<Record<string, unknown>>): SafetyFile[] {
  const caseFile = join(dir, "case.json");
  const files = caseJson["files"];
  if (!isRecord(files) || Object.keys(files).length === 0) {
    throw new ConfigError(caseFile, "files", "an object mapping file names to {expect, ...}", files);
  }
  return Object.entries(files).map(([name, spec]) => {
    const field = `files.${name}`;
    if (!isRecord(spec)) throw new ConfigError(caseFile, field, "an object", spec);
    const expect = spec["expect"];
    if (expect !== "refuse" && expect !== "load" && expect !== "load_or_refuse") {
      throw new ConfigError(caseFile, `${field}.expect`, '"refuse", "load" or "load_or_refuse"', expect);
    }
    return { name, path: fixturePath(dir, name, caseFile, field), expect, spec };
  });
}

export type LoadOutcome<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };

export async function attempt<T>(load: () => Promise<T>): Promise<LoadOutcome<T>> {
  try {
    return { ok: true, value: await load() };
  } catch (error) {
    return { ok: false, error };
  }
}

/** An extra condition on a row (e.g. "the payload's sentinel file must not exist"). */
export interface Verdict {
  readonly pass: boolean;
  readonly note: string;
}

/** The row for one file, given how loading went and what the comparison found (`mismatches`, empty = exact). */
export function safetyRow(
  fixture: string,
  file: SafetyFile,
  outcome: LoadOutcome<unknown>,
  mismatches: readonly string[],
  extra: Verdict | undefined,
): ConformanceRow {
  const row = (ok: boolean, note: string): ConformanceRow => {
    const pass = ok && (extra?.pass ?? true);
    return {
      fixture: `${fixture}/${file.name}`,
      tensor: file.name,
      maxAbsError: pass ? 0 : NaN,
      tolerance: 0,
      pass,
      note: extra === undefined || extra.note === "" ? note : `${note}; ${extra.note}`,
    };
  };
  if (!outcome.ok) {
    const error = outcome.error;
    if (!(error instanceof SteadyframeError)) {
      const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      return row(false, `untyped error (loader lost control): ${message.slice(0, 200)}`);
    }
    if (file.expect === "load")
      return row(false, `refused a valid file: ${error.code}: ${error.message.slice(0, 200)}`);
    return row(true, `refused: ${error.code}`);
  }
  if (file.expect === "refuse") return row(false, "loaded a file that must be refused");
  if (mismatches.length > 0) {
    const shown = mismatches.slice(0, 3).join("; ");
    return row(false, `${mismatches.length} mismatches: ${shown}${mismatches.length > 3 ? "; ..." : ""}`);
  }
  return row(true, "loaded, exact");
}

/** Deep equality of JSON values (numbers by Object.is, so -0 differs from 0; NaN equals NaN). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (typeof a === "number" && typeof b === "number") return Object.is(a, b);
  if (Array.isArray(a) || Array.isArray(b)) {
    return (
      Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => jsonEqual(v, b[i]))
    );
  }
  if (isRecord(a) && isRecord(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => k in b && jsonEqual(a[k], b[k]));
  }
  return a === b;
}
