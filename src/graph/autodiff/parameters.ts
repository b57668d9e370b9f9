/**
 * Choosing what to train: initializers selected by diffusers-key patterns, and turning the chosen
 * initializers into graph inputs so a training loop feeds their current values each step (frozen
 * weights stay initializers). Pattern semantics follow diffusers/Tune-A-Video training scripts:
 * a parameter is trainable when one of its module names (a dotted prefix of its key) ends with a
 * pattern: "attn1.to_q" selects `...attn1.to_q.weight`, "attn_temp" every parameter under it.
 */
import { GraphError, InvalidArgumentError } from "../../errors.js";
import type { GraphBuilder, InitializerRecord, Value } from "../builder.js";
import { isFloatDType } from "../dtype.js";

/** A string (module-name suffix, as `name.endswith(pattern)` in diffusers scripts) or a RegExp on the full key. */
export type ParameterPattern = string | RegExp;

/** True when `key` is selected by `pattern` (see the file comment). */
export function matchesParameter(key: string, pattern: ParameterPattern): boolean {
  if (pattern instanceof RegExp) return pattern.test(key);
  const segments = key.split(".");
  for (let i = segments.length - 1; i >= 1; i--) {
    if (segments.slice(0, i).join(".").endsWith(pattern)) return true;
  }
  return key === pattern;
}

/**
 * The float initializers selected by `patterns` (all float initializers when `patterns` is
 * undefined). Throws an InvalidArgumentError naming every pattern that selects nothing, unless
 * `unmatched` is "ignore" (the training scripts' behaviour: such a name trains nothing); a set of
 * patterns that selects nothing at all is refused either way.
 */
export function selectParameters(
  g: GraphBuilder,
  patterns?: readonly ParameterPattern[],
  unmatched: "refuse" | "ignore" = "refuse",
): InitializerRecord[] {
  const floats = g.initializers.filter((i) => isFloatDType(i.dtype));
  if (patterns === undefined) return floats;
  const unused = patterns.filter((p) => !floats.some((i) => matchesParameter(i.name, p)));
  if (unused.length > 0 && (unmatched === "refuse" || unused.length === patterns.length)) {
    const sample = floats
      .slice(0, 4)
      .map((i) => i.name)
      .join(", ");
    throw new InvalidArgumentError(
      "trainable patterns",
      "patterns that each match at least one parameter",
      unused.map(String),
      { hint: `a pattern is a module-name suffix such as "attn1.to_q"; keys look like ${sample}` },
    );
  }
  return floats.filter((i) => patterns.some((p) => matchesParameter(i.name, p)));
}

/**
 * Removes the named initializers from `g` and declares each as a graph input of the same name,
 * dtype and shape (its Value keeps working in every node that uses it). Returns the records, whose
 * `source` gives the initial value in the graph's layout.
 */
export function promoteToInputs(
  g: GraphBuilder,
  names: readonly string[],
): { record: InitializerRecord; value: Value }[] {
  return names.map((name) => {
    const index = g.initializers.findIndex((i) => i.name === name);
    const record = g.initializers[index];
    const value = g.value(name);
    if (index < 0 || !record || !value)
      throw new GraphError("promoteToInputs", `${name} is not an initializer of graph "${g.name}"`);
    g.initializers.splice(index, 1);
    g.inputs.push(value);
    return { record, value };
  });
}
