/**
 * Checks feeds against a model's declared inputs before running, collecting every problem: missing
 * and unexpected names, wrong dtypes, wrong ranks, static dims that differ, a symbolic dim given two
 * different sizes, and data whose length does not match its shape.
 */
import { type DType, type HostTensor, numel, shapeToString } from "../tensor.js";

export interface TensorSpec {
  readonly name: string;
  /** Undefined for element types we do not map (or non-tensor inputs). */
  readonly dtype: DType | undefined;
  /** Sizes, symbolic names ("batch"), or "?" for unnamed unknown dims. */
  readonly shape: readonly (number | string)[];
}

export function specToString(s: TensorSpec): string {
  return `${s.dtype ?? "?"}[${s.shape.join(", ")}]`;
}

/** Every problem with `feeds` for a model taking `specs` (empty when they fit). */
export function validateFeeds(
  specs: readonly TensorSpec[],
  feeds: Readonly<Record<string, HostTensor>>,
): string[] {
  const problems: string[] = [];
  const names = new Set(specs.map((s) => s.name));
  const symbols = new Map<string, { size: number; input: string }>();
  for (const spec of specs) {
    const t = feeds[spec.name];
    if (t === undefined) {
      problems.push(`missing input "${spec.name}" (${specToString(spec)})`);
      continue;
    }
    if (spec.dtype !== undefined && t.dtype !== spec.dtype) {
      problems.push(`input "${spec.name}" is ${t.dtype}, expected ${spec.dtype}`);
    }
    if (t.data.length !== numel(t.shape)) {
      problems.push(
        `input "${spec.name}" has ${t.data.length} elements but shape ${shapeToString(t.shape)} needs ${numel(t.shape)}`,
      );
    }
    if (t.shape.length !== spec.shape.length) {
      problems.push(
        `input "${spec.name}" has shape ${shapeToString(t.shape)} (rank ${t.shape.length}), expected rank ${spec.shape.length} ${specToString(spec)}`,
      );
      continue;
    }
    spec.shape.forEach((d, i) => {
      const actual = t.shape[i] ?? -1;
      if (typeof d === "number") {
        if (d !== actual)
          problems.push(
            `input "${spec.name}" dim ${i} is ${actual}, expected ${d} (shape ${shapeToString(t.shape)} vs ${specToString(spec)})`,
          );
      } else if (d !== "?" && d !== "") {
        const seen = symbols.get(d);
        if (seen === undefined) symbols.set(d, { size: actual, input: spec.name });
        else if (seen.size !== actual) {
          problems.push(
            `dim "${d}" is ${seen.size} in input "${seen.input}" but ${actual} in input "${spec.name}"`,
          );
        }
      }
    });
  }
  for (const name of Object.keys(feeds)) {
    if (!names.has(name))
      problems.push(
        `unexpected input "${name}" (the model takes ${[...names].map((n) => `"${n}"`).join(", ")})`,
      );
  }
  return problems;
}
