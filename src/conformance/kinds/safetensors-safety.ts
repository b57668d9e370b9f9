/**
 * Conformance kind `safetensors_safety`: malformed safetensors files the reader (src/weights/
 * safetensors.ts) must refuse with a typed error, and valid edge cases it must load exactly. case.json
 * `files` gives per file `expect` ("refuse" | "load"), `reference_error` (the Rust reference's error,
 * shown in the note) and for loads `tensors` {name: {dtype (F32, BF16, ...), shape, values}} and
 * `metadata` (absent = none). Each file goes through both entry points — the file reader
 * (openSafetensors + read) and the in-memory parser (parseSafetensors) — and they must agree.
 * 64-bit integer values are compared as JS numbers (exact up to 2^53, as JSON gives them).
 */
import { readFile } from "node:fs/promises";
import { throwIfAborted } from "../../errors.js";
import { elementAsNumber, shapeToString, shapesEqual, type HostTensor } from "../../tensor.js";
import { SAFETENSORS_DTYPES, openSafetensors, parseSafetensors } from "../../weights/safetensors.js";
import type { ConformanceRow, FixtureContext, FixtureKind } from "../types.js";
import {
  attempt,
  isRecord,
  jsonEqual,
  parseSafetyFiles,
  safetyRow,
  type SafetyFile,
} from "./safety-files.js";

interface Contents {
  readonly metadata: Readonly<Record<string, string>>;
  readonly tensors: ReadonlyMap<string, HostTensor>;
}

async function viaFile(path: string): Promise<Contents> {
  const file = await openSafetensors(path);
  const tensors = new Map<string, HostTensor>();
  for (const name of file.keys()) tensors.set(name, await file.read(name));
  return { metadata: file.metadata, tensors };
}

async function viaBytes(path: string): Promise<Contents> {
  return parseSafetensors(new Uint8Array(await readFile(path)), path);
}

function compareContents(file: SafetyFile, got: Contents): string[] {
  const out: string[] = [];
  const specs = isRecord(file.spec["tensors"]) ? file.spec["tensors"] : {};
  for (const name of got.tensors.keys()) if (!(name in specs)) out.push(`unexpected tensor ${name}`);
  for (const [name, spec] of Object.entries(specs)) {
    const actual = got.tensors.get(name);
    if (actual === undefined || !isRecord(spec)) {
      out.push(`missing tensor ${name}`);
      continue;
    }
    const dtype = typeof spec["dtype"] === "string" ? SAFETENSORS_DTYPES[spec["dtype"]] : undefined;
    if (dtype !== actual.dtype) out.push(`${name}: dtype ${actual.dtype}, expected ${String(spec["dtype"])}`);
    const shape = Array.isArray(spec["shape"]) ? spec["shape"].map(Number) : undefined;
    if (shape === undefined || !shapesEqual(actual.shape, shape)) {
      out.push(`${name}: shape ${shapeToString(actual.shape)}, expected ${JSON.stringify(spec["shape"])}`);
    }
    const values = spec["values"];
    if (!Array.isArray(values) || values.length !== actual.data.length) {
      out.push(
        `${name}: ${actual.data.length} values, expected ${Array.isArray(values) ? values.length : "a list"}`,
      );
      continue;
    }
    const bad = values.findIndex(
      (v, i) => typeof v !== "number" || !Object.is(elementAsNumber(actual, i), v),
    );
    if (bad >= 0)
      out.push(`${name}[${bad}] = ${elementAsNumber(actual, bad)}, expected ${String(values[bad])}`);
  }
  const metadata = isRecord(file.spec["metadata"]) ? file.spec["metadata"] : {};
  if (!jsonEqual({ ...got.metadata }, metadata)) {
    out.push(`metadata ${JSON.stringify(got.metadata)}, expected ${JSON.stringify(metadata)}`);
  }
  return out;
}

async function runSafetensorsSafety(ctx: FixtureContext): Promise<readonly ConformanceRow[]> {
  const fixture =
    typeof ctx.caseJson["fixture"] === "string" ? ctx.caseJson["fixture"] : "safetensors_safety";
  const rows: ConformanceRow[] = [];
  for (const file of parseSafetyFiles(ctx.dir, ctx.caseJson)) {
    throwIfAborted(ctx.signal, `conformance ${fixture}`);
    const fromFile = await attempt(() => viaFile(file.path));
    const fromBytes = await attempt(() => viaBytes(file.path));
    const mismatches: string[] = [];
    if (fromFile.ok) mismatches.push(...compareContents(file, fromFile.value));
    if (fromBytes.ok)
      mismatches.push(...compareContents(file, fromBytes.value).map((m) => `parseSafetensors: ${m}`));
    const reference = file.spec["reference_error"];
    const notes: string[] = [];
    if (fromFile.ok !== fromBytes.ok) {
      notes.push(
        `openSafetensors ${fromFile.ok ? "loads" : "refuses"} but parseSafetensors ${fromBytes.ok ? "loads" : "refuses"}`,
      );
    }
    if (typeof reference === "string") notes.push(`reference: ${reference}`);
    // When the two entry points disagree the row fails whatever the file reader did.
    const agree = fromFile.ok === fromBytes.ok;
    rows.push(safetyRow(fixture, file, fromFile, mismatches, { pass: agree, note: notes.join("; ") }));
  }
  return rows;
}

export const safetensorsSafetyKind: FixtureKind = {
  kind: "safetensors_safety",
  description: "safetensors reader: refuse malformed files with a typed error, load valid edge cases exactly",
  run: runSafetensorsSafety,
};
