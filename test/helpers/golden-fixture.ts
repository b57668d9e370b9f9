/**
 * Opening the golden fixture folders under test/fixtures/golden (copies of /work/shared/golden; see
 * PROVENANCE.md) the way the golden tests do, and the check each test makes on its conformance kind.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { expect } from "vitest";
import type { ConformanceRow } from "../../src/conformance/types.js";
import type { HostTensor } from "../../src/tensor.js";
import { readSafetensors } from "../../src/weights/safetensors.js";

/** test/fixtures/golden. */
export const GOLDEN = join(import.meta.dirname, "../fixtures/golden");

/** A fixture folder's parsed case.json. */
export async function readCaseJson(dir: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(join(dir, "case.json"), "utf8")) as Record<string, unknown>;
}

/** A golden fixture folder as the tests use it. */
export interface GoldenFixture {
  readonly caseJson: Record<string, unknown>;
  readonly inputs: Map<string, HostTensor>;
  readonly outputs: Map<string, HostTensor>;
}

/** A fixture folder's case.json, inputs.safetensors and outputs.safetensors. */
export async function openGoldenFixture(dir: string): Promise<GoldenFixture> {
  return {
    caseJson: await readCaseJson(dir),
    inputs: await readSafetensors(join(dir, "inputs.safetensors")),
    outputs: await readSafetensors(join(dir, "outputs.safetensors")),
  };
}

/** The tensor `name` of a fixture's inputs or outputs (throws when the fixture lacks it). */
export function fixtureTensor(tensors: ReadonlyMap<string, HostTensor>, name: string): HostTensor {
  const t = tensors.get(name);
  if (!t) throw new Error(`fixture tensor ${name} missing`);
  return t;
}

/**
 * A conformance kind's rows: one per output tensor, each passing (at `tolerance`, when given). Logs
 * every row's error.
 */
export function expectOutputsPass(
  rows: readonly ConformanceRow[],
  outputs: ReadonlyMap<string, HostTensor>,
  tolerance?: number,
): void {
  expect(rows.map((r) => r.tensor).sort()).toEqual([...outputs.keys()].sort());
  for (const row of rows) {
    console.log(`${row.fixture} ${row.tensor}: max abs err ${row.maxAbsError.toExponential(2)}`);
    expect(row.pass, `${row.tensor} ${row.note ?? ""} err ${row.maxAbsError}`).toBe(true);
    if (tolerance !== undefined) expect(row.tolerance).toBe(tolerance);
  }
}
