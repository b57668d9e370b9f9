/**
 * Row-producing comparisons for the `schedulers` kind: each records which reference tensors it
 * used, so the kind can report any output tensor that no case.json entry checked.
 */
import { type HostTensor, elementAsNumber, tensor, toFloat32 } from "../../tensor.js";
import { compareTensors, failedRow } from "../compare.js";
import type { ConformanceRow } from "../types.js";

export interface CheckContext {
  /** Row label: the fixture name. */
  readonly label: string;
  readonly inputs: ReadonlyMap<string, HostTensor>;
  readonly outputs: ReadonlyMap<string, HostTensor>;
  /** Max abs error allowed for float tensors. */
  readonly tolerance: number;
  /** Allowed error for fractional (float32) timesteps. */
  readonly timestepTolerance: number;
  readonly rows: ConformanceRow[];
  readonly checked: Set<string>;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function toF32(t: HostTensor): HostTensor<"float32"> {
  return toFloat32(t);
}

/** All elements of a tensor as JS numbers. */
export function tensorNumbers(t: HostTensor): number[] {
  return Array.from({ length: t.data.length }, (_, i) => elementAsNumber(t, i));
}

/** Compares `actual` with outputs[`name`] at the float tolerance. */
export function checkTensor(
  ctx: CheckContext,
  name: string,
  actual: HostTensor,
  tolerance = ctx.tolerance,
): void {
  ctx.checked.add(name);
  const expected = ctx.outputs.get(name);
  if (expected === undefined) {
    ctx.rows.push(failedRow(ctx.label, name, "reference tensor missing from the outputs"));
    return;
  }
  ctx.rows.push(compareTensors(ctx.label, name, actual, expected, tolerance));
}

/** Compares timesteps: exactly when the reference is integer, within the timestep tolerance otherwise. */
export function checkTimesteps(
  ctx: CheckContext,
  name: string,
  actual: readonly number[],
  listed?: readonly unknown[],
): void {
  const ours = tensor("float64", [actual.length], Float64Array.from(actual));
  const expected = ctx.outputs.get(name);
  if (expected === undefined && listed !== undefined) {
    const ref = tensor(
      "float64",
      [listed.length],
      Float64Array.from(listed, (v) => (typeof v === "number" ? v : NaN)),
    );
    const exact = ref.data.every(Number.isInteger);
    ctx.rows.push({
      ...compareTensors(ctx.label, `${name} (case.json)`, ours, ref, exact ? 0 : ctx.timestepTolerance),
      note: "from case.json",
    });
    return;
  }
  const exact = expected !== undefined && (expected.dtype === "int64" || expected.dtype === "int32");
  checkTensor(ctx, name, ours, exact ? 0 : ctx.timestepTolerance);
  const last = ctx.rows[ctx.rows.length - 1];
  if (last !== undefined && exact)
    ctx.rows[ctx.rows.length - 1] = { ...last, note: last.note ?? "exact integer timesteps" };
}

/** Compares a scalar (e.g. init_noise_sigma) with the value case.json records. */
export function checkScalar(ctx: CheckContext, name: string, actual: number, expected: number): void {
  const error = Math.abs(actual - expected);
  ctx.rows.push({
    fixture: ctx.label,
    tensor: name,
    maxAbsError: error,
    tolerance: ctx.tolerance,
    pass: error <= ctx.tolerance,
    note: "case.json value",
  });
}
