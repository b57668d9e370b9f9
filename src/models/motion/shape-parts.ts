/**
 * Builds a 1-D int64 shape from parts: number lists (constants) and int64 graph values (runtime dims
 * such as the frame count). All-constant parts fold into one constant, so shape inference keeps
 * every static dim; otherwise the parts are concatenated at run time.
 */
import { type GraphBuilder, Value } from "../../graph/builder.js";
import { constantInts } from "../../graph/ops/common.js";
import * as op from "../../graph/ops/index.js";

export function concatShape(g: GraphBuilder, parts: readonly (readonly number[] | Value)[]): Value {
  const known = parts.map((p) => (p instanceof Value ? constantInts(p) : [...p]));
  const folded: number[] = [];
  for (const k of known) {
    if (k === null)
      return op.Concat(
        g,
        parts.map((p) => (p instanceof Value ? p : g.int64s(p))),
        0,
      );
    folded.push(...k);
  }
  return g.int64s(folded);
}
