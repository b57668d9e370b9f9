/**
 * Conformance kind `rng`: torch CPU generator outputs. case.json lists `cases`, each
 * {name, seed, call: "randn" | "rand" | "randint" (with low?, high), shape, dtype? ("float32" default, "float64", "float16",
 * "bfloat16", with or without "torch.")}; the reference tensors are in
 * `outputs.safetensors` (or `outputs_file.file`) under each case's name; `tolerance.max_abs` bounds
 * the error. Every case is a fresh generator (`torch.Generator().manual_seed(seed)`), one row each.
 */
import { join } from "node:path";
import { ConfigError } from "../../errors.js";
import { type RandomDType, TorchGenerator, type TorchSeed } from "../../random/torch-generator.js";
import type { HostTensor } from "../../tensor.js";
import { readSafetensors } from "../../weights/safetensors.js";
import { compareTensors, failedRow } from "../compare.js";
import type { ConformanceRow, FixtureContext, FixtureKind } from "../types.js";

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function parseSeed(file: string, field: string, value: unknown): TorchSeed {
  if (typeof value === "number" && Number.isSafeInteger(value)) return value;
  if (typeof value === "string" && /^-?\d+$/u.test(value)) return BigInt(value);
  throw new ConfigError(file, field, "an integer seed (number or decimal string)", value);
}

function parseShape(file: string, field: string, value: unknown): number[] {
  if (
    Array.isArray(value) &&
    value.every((d) => typeof d === "number" && Number.isSafeInteger(d) && d >= 0)
  ) {
    return value.map(Number);
  }
  throw new ConfigError(file, field, "a list of non-negative integers", value);
}

/** case.json `dtype` names (torch's and their aliases) -> the generator's dtypes. */
const DTYPE_NAMES: Readonly<Record<string, RandomDType>> = {
  float32: "float32",
  float: "float32",
  float64: "float64",
  double: "float64",
  float16: "float16",
  half: "float16",
  bfloat16: "bfloat16",
};

/** `dtype` as written in case.json ("float64", "torch.float64", "double", ...); undefined = unknown. */
export function parseRngDType(value: unknown): RandomDType | undefined {
  if (value === undefined || value === null) return "float32";
  if (typeof value !== "string") return undefined;
  return DTYPE_NAMES[value.replace(/^torch\./u, "")];
}

/** `randint` cases: {low? (default 0), high, dtype? int64}; values compared exactly as numbers. */
function randintRow(
  file: string,
  i: number,
  label: string,
  name: string,
  entry: Record<string, unknown>,
  expected: HostTensor,
  tolerance: number,
): ConformanceRow {
  const bound = (field: "low" | "high", value: unknown): bigint => {
    if (typeof value === "number" && Number.isSafeInteger(value)) return BigInt(value);
    if (typeof value === "string" && /^-?\d+$/u.test(value)) return BigInt(value);
    throw new ConfigError(file, `cases[${i}].${field}`, "an integer", value);
  };
  if (entry.dtype !== undefined && entry.dtype !== "int64" && entry.dtype !== "torch.int64") {
    return failedRow(label, name, `unsupported randint dtype ${JSON.stringify(entry.dtype)} (int64 only)`);
  }
  const low = entry.low === undefined ? 0n : bound("low", entry.low);
  const high = bound("high", entry.high);
  const shape = parseShape(file, `cases[${i}].shape`, entry.shape);
  const actual = new TorchGenerator(parseSeed(file, `cases[${i}].seed`, entry.seed)).randint(
    low,
    high,
    shape,
  );
  return compareTensors(label, name, actual, expected, tolerance);
}

async function runRng(ctx: FixtureContext): Promise<readonly ConformanceRow[]> {
  const file = join(ctx.dir, "case.json");
  const fixture = typeof ctx.caseJson.fixture === "string" ? ctx.caseJson.fixture : "rng";
  const tolerance = isRecord(ctx.caseJson.tolerance) ? ctx.caseJson.tolerance.max_abs : undefined;
  if (typeof tolerance !== "number" || !(tolerance >= 0)) {
    throw new ConfigError(file, "tolerance.max_abs", "a non-negative number", tolerance);
  }
  const cases = ctx.caseJson.cases;
  if (!Array.isArray(cases) || cases.length === 0)
    throw new ConfigError(file, "cases", "a non-empty list", cases);
  const outputsName = isRecord(ctx.caseJson.outputs_file)
    ? ctx.caseJson.outputs_file.file
    : "outputs.safetensors";
  if (typeof outputsName !== "string")
    throw new ConfigError(file, "outputs_file.file", "a file name", outputsName);
  const outputs = await readSafetensors(join(ctx.dir, outputsName));

  const rows: ConformanceRow[] = [];
  for (const [i, entry] of cases.entries()) {
    if (!isRecord(entry) || typeof entry.name !== "string") {
      throw new ConfigError(file, `cases[${i}].name`, "a tensor name", isRecord(entry) ? entry.name : entry);
    }
    const name = entry.name;
    const label = `${fixture}/${name}`;
    const seed = parseSeed(file, `cases[${i}].seed`, entry.seed);
    const shape = parseShape(file, `cases[${i}].shape`, entry.shape);
    const expected = outputs.get(name);
    if (expected === undefined) {
      rows.push(failedRow(label, name, `no tensor "${name}" in ${outputsName}`));
      continue;
    }
    if (entry.call === "randint") {
      rows.push(randintRow(file, i, label, name, entry, expected, tolerance));
      continue;
    }
    const dtype = parseRngDType(entry.dtype);
    if (dtype === undefined) {
      rows.push(
        failedRow(
          label,
          name,
          `unsupported dtype ${JSON.stringify(entry.dtype)} (known: ${Object.keys(DTYPE_NAMES).join(", ")})`,
        ),
      );
      continue;
    }
    const generator = new TorchGenerator(seed);
    let actual;
    if (entry.call === "randn") actual = generator.randn(shape, dtype);
    else if (entry.call === "rand") actual = generator.rand(shape, dtype);
    else {
      rows.push(
        failedRow(
          label,
          name,
          `unsupported call ${JSON.stringify(entry.call)} (known: randn, rand, randint)`,
        ),
      );
      continue;
    }
    rows.push(compareTensors(label, name, actual, expected, tolerance));
  }
  return rows;
}

export const rngKind: FixtureKind = {
  kind: "rng",
  description: "torch CPU generator (mt19937) randn/rand for seeds and shapes",
  run: runRng,
};
