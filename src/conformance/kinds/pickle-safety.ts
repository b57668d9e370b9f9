/**
 * Conformance kind `pickle_safety`: PyTorch checkpoints the safe loader (src/weights/pickle) must
 * refuse without executing anything, or load exactly. case.json `files` gives per file:
 *  - `expect`: "refuse" | "load" | "load_or_refuse";
 *  - `sentinel_file` (optional): the file the payload would create; it is removed before loading when
 *    it lies in the temp folder, and its existence afterwards fails the row;
 *  - `forbidden_globals` (optional): a refusal must then be an UnsafePickleError naming one of them;
 *  - for loads: `tensors` {name: {dtype, shape}} (names = container path joined with "/"),
 *    `expected_values` (a safetensors file: floats as float32, ints/bools as int64; compared bitwise,
 *    any NaN matching any NaN) and `non_tensor_values` (top-level keys, JSON as walk.ts writes it).
 * One row per file.
 */
import { existsSync } from "node:fs";
import { unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { isAbsolute, resolve, sep } from "node:path";
import { SteadyframeError, throwIfAborted } from "../../errors.js";
import { elementAsNumber, shapeToString, shapesEqual, type HostTensor } from "../../tensor.js";
import {
  collectTensors,
  PyDict,
  toJsonValue,
  TorchCheckpoint,
  type PyValue,
} from "../../weights/pickle/index.js";
import { readSafetensors } from "../../weights/safetensors.js";
import type { ConformanceRow, FixtureContext, FixtureKind } from "../types.js";
import {
  attempt,
  fixturePath,
  isRecord,
  jsonEqual,
  parseSafetyFiles,
  safetyRow,
  type LoadOutcome,
  type SafetyFile,
  type Verdict,
} from "./safety-files.js";

interface Loaded {
  readonly root: PyValue;
  readonly tensors: Map<string, HostTensor>;
}

async function loadAll(path: string): Promise<Loaded> {
  const checkpoint = await TorchCheckpoint.open(path);
  try {
    return {
      root: checkpoint.root,
      tensors: await checkpoint.readTensors(collectTensors(checkpoint.root, "/", path)),
    };
  } finally {
    await checkpoint.close();
  }
}

function inTempFolder(path: string): boolean {
  return [tmpdir(), "/tmp"].some((dir) => resolve(path).startsWith(resolve(dir) + sep));
}

/** Removes a stale sentinel from an earlier run; a verdict when the check cannot be trusted. */
async function clearSentinel(path: string): Promise<Verdict | undefined> {
  if (!isAbsolute(path)) return { pass: false, note: `sentinel_file ${path} is not an absolute path` };
  if (!existsSync(path)) return undefined;
  if (!inTempFolder(path)) return { pass: false, note: `sentinel ${path} existed before loading; remove it` };
  await unlink(path);
  return undefined;
}

function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

/** Bitwise comparison (NaN matches NaN) of a loaded tensor with its float32 / int64 reference. */
function compareValues(name: string, actual: HostTensor, expected: HostTensor): string | undefined {
  if (!shapesEqual(actual.shape, expected.shape)) {
    return `${name}: shape ${shapeToString(actual.shape)}, reference ${shapeToString(expected.shape)}`;
  }
  let bad = 0;
  let first = -1;
  for (let i = 0; i < expected.data.length; i++) {
    let same: boolean;
    if (expected.data instanceof BigInt64Array) {
      const e = expected.data[i] ?? 0n;
      same =
        actual.data instanceof BigInt64Array
          ? actual.data[i] === e
          : BigInt(elementAsNumber(actual, i)) === e;
    } else {
      const a = Math.fround(elementAsNumber(actual, i));
      const e = elementAsNumber(expected, i);
      same = Object.is(a, e) || (Number.isNaN(a) && Number.isNaN(e));
    }
    if (!same && bad++ === 0) first = i;
  }
  return bad === 0 ? undefined : `${name}: ${bad} values differ (first at flat index ${first})`;
}

async function compareLoad(ctx: FixtureContext, file: SafetyFile, loaded: Loaded): Promise<string[]> {
  const caseFile = `${ctx.dir}/case.json`;
  const out: string[] = [];
  const specs = isRecord(file.spec["tensors"]) ? file.spec["tensors"] : undefined;
  // "expected.safetensors (float tensors as float32, ...)": the file name is the first word.
  const expectedField = file.spec["expected_values"];
  const expectedName = typeof expectedField === "string" ? /^\S+/.exec(expectedField)?.[0] : undefined;
  const expected =
    expectedName === undefined
      ? undefined
      : await readSafetensors(
          fixturePath(ctx.dir, expectedName, caseFile, `files.${file.name}.expected_values`),
        );
  if (specs === undefined && expected === undefined)
    return ["case.json gives neither tensors nor expected_values"];
  const names = new Set([...Object.keys(specs ?? {}), ...(expected?.keys() ?? [])]);
  for (const name of loaded.tensors.keys()) if (!names.has(name)) out.push(`unexpected tensor ${name}`);
  for (const name of names) {
    const actual = loaded.tensors.get(name);
    if (actual === undefined) {
      out.push(`missing tensor ${name}`);
      continue;
    }
    const spec = specs?.[name];
    if (isRecord(spec) && typeof spec["dtype"] === "string" && spec["dtype"] !== actual.dtype) {
      out.push(`${name}: dtype ${actual.dtype}, expected ${spec["dtype"]}`);
    }
    if (
      isRecord(spec) &&
      Array.isArray(spec["shape"]) &&
      !shapesEqual(actual.shape, spec["shape"].map(Number))
    ) {
      out.push(`${name}: shape ${shapeToString(actual.shape)}, expected ${JSON.stringify(spec["shape"])}`);
    }
    const reference = expected?.get(name);
    if (reference !== undefined) {
      const problem = compareValues(name, actual, reference);
      if (problem !== undefined) out.push(problem);
    } else if (expected !== undefined) out.push(`${name}: not in ${expectedName ?? ""}`);
  }
  const values = file.spec["non_tensor_values"];
  if (isRecord(values)) {
    for (const [key, want] of Object.entries(values)) {
      const got = loaded.root instanceof PyDict ? loaded.root.entries.get(key) : undefined;
      const json = got === undefined ? undefined : toJsonValue(got, file.path);
      if (!jsonEqual(json, want))
        out.push(`value ${key}: ${JSON.stringify(json)}, expected ${JSON.stringify(want)}`);
    }
  }
  return out;
}

/** A refusal of a file with forbidden globals must be an UnsafePickleError that names one of them. */
function refusalReason(file: SafetyFile, outcome: LoadOutcome<unknown>): Verdict | undefined {
  const forbidden = stringList(file.spec["forbidden_globals"]);
  if (outcome.ok || forbidden.length === 0 || !(outcome.error instanceof SteadyframeError)) return undefined;
  const { code, message } = outcome.error;
  const named = forbidden.find((g) => message.includes(g));
  if (code === "E_UNSAFE_PICKLE" && named !== undefined) return { pass: true, note: `names ${named}` };
  return { pass: false, note: `refused for another reason, not for ${forbidden.join(" / ")}` };
}

async function runPickleSafety(ctx: FixtureContext): Promise<readonly ConformanceRow[]> {
  const fixture = typeof ctx.caseJson["fixture"] === "string" ? ctx.caseJson["fixture"] : "pickle_safety";
  const rows: ConformanceRow[] = [];
  for (const file of parseSafetyFiles(ctx.dir, ctx.caseJson)) {
    throwIfAborted(ctx.signal, `conformance ${fixture}`);
    const sentinel = typeof file.spec["sentinel_file"] === "string" ? file.spec["sentinel_file"] : undefined;
    const stale = sentinel === undefined ? undefined : await clearSentinel(sentinel);
    const outcome = await attempt(() => loadAll(file.path));
    const mismatches =
      outcome.ok && file.expect !== "refuse"
        ? await compareLoad(ctx, file, outcome.value).catch((error: unknown) => [
            `cannot compare: ${String(error)}`,
          ])
        : [];
    const verdicts: Verdict[] = [];
    if (stale !== undefined) verdicts.push(stale);
    if (sentinel !== undefined && existsSync(sentinel)) {
      verdicts.push({ pass: false, note: `PAYLOAD RAN: ${sentinel} exists after loading` });
    }
    const reason = refusalReason(file, outcome);
    if (reason !== undefined) verdicts.push(reason);
    const extra =
      verdicts.length === 0
        ? undefined
        : { pass: verdicts.every((v) => v.pass), note: verdicts.map((v) => v.note).join("; ") };
    rows.push(safetyRow(fixture, file, outcome, mismatches, extra));
  }
  return rows;
}

export const pickleSafetyKind: FixtureKind = {
  kind: "pickle_safety",
  description:
    "PyTorch .ckpt/.pth files: refuse unsafe or corrupt pickles without running them, load benign ones exactly",
  run: runPickleSafety,
};
