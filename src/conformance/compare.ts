/**
 * Helpers for fixture kinds: turn a comparison into a ConformanceRow.
 */
import { maxAbsDiff, shapeToString, shapesEqual, type HostTensor } from "../tensor.js";
import type { ConformanceRow } from "./types.js";

/** Compares a computed tensor with the reference; a shape mismatch is a failing row, not an exception. */
export function compareTensors(
  fixture: string,
  name: string,
  actual: HostTensor,
  expected: HostTensor,
  tolerance: number,
): ConformanceRow {
  if (!shapesEqual(actual.shape, expected.shape)) {
    return {
      fixture,
      tensor: name,
      maxAbsError: NaN,
      tolerance,
      pass: false,
      note: `shape ${shapeToString(actual.shape)}, expected ${shapeToString(expected.shape)}`,
    };
  }
  const error = maxAbsDiff(actual, expected);
  return { fixture, tensor: name, maxAbsError: error, tolerance, pass: error <= tolerance };
}

/** A row for something that could not be run at all. */
export function failedRow(fixture: string, tensor: string, note: string): ConformanceRow {
  return { fixture, tensor, maxAbsError: NaN, tolerance: NaN, pass: false, note };
}
