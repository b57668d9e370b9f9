/**
 * Walks an unpickled object: finds the tensors under dicts, lists and tuples (named by their container
 * path), picks the state dict out of a training checkpoint, and converts non-tensor values to JSON
 * for printing and comparison. A container reached twice (shared or cyclic) is walked only the first
 * time, and nesting is bounded, so a hostile object graph cannot blow up the walk.
 */
import { CorruptFileError } from "../../errors.js";
import { PyDict, PyGlobal, PySet, PyTuple, StorageRef, TensorRef, type PyValue } from "./values.js";

const MAX_DEPTH = 1000;

function children(value: PyValue): [string, PyValue][] | undefined {
  if (value instanceof PyDict) return [...value.entries].map(([k, v]) => [String(k), v]);
  if (Array.isArray(value)) return value.map((v, i) => [String(i), v]);
  if (value instanceof PyTuple) return value.items.map((v, i) => [String(i), v]);
  return undefined;
}

/**
 * Every tensor reachable through dicts, lists and tuples, keyed by its container path joined with
 * `separator` ({"state_dict": {"0.weight": t}} -> "state_dict/0.weight" with "/").
 */
export function collectTensors(
  root: PyValue,
  separator = "/",
  path = "<checkpoint>",
): Map<string, TensorRef> {
  const out = new Map<string, TensorRef>();
  const seen = new Set<object>();
  const visit = (value: PyValue, prefix: string, depth: number): void => {
    if (value instanceof TensorRef) {
      out.set(prefix, value);
      return;
    }
    const items = children(value);
    if (items === undefined || value === null || typeof value !== "object" || seen.has(value)) return;
    if (depth > MAX_DEPTH) throw new CorruptFileError(path, `objects nested deeper than ${MAX_DEPTH} levels`);
    seen.add(value);
    for (const [key, child] of items)
      visit(child, prefix === "" ? key : `${prefix}${separator}${key}`, depth + 1);
  };
  visit(root, "", 0);
  return out;
}

/**
 * The state dict of a checkpoint: `root["state_dict"]` when the top level is a dict holding a dict
 * there (SD .ckpt files, Lightning checkpoints), otherwise the top level itself (plain state dicts
 * such as ControlNet .pth files).
 */
export function selectStateDict(root: PyValue): PyValue {
  if (root instanceof PyDict) {
    const inner = root.entries.get("state_dict");
    if (inner instanceof PyDict) return inner;
  }
  return root;
}

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * JSON form of a value: ints beyond 2^53 -> {"int": "digits"}, tuples -> {"tuple": [...]},
 * bytes -> {"bytes": "hex"}, sets -> {"set": [...]}, tensors -> {"tensor": {dtype, shape}},
 * globals -> {"global": "module.name"}, storages -> {"storage": key}. Shared containers are repeated,
 * up to `maxNodes` values in all (a shared-list bomb cannot expand without bound).
 */
export function toJsonValue(value: PyValue, path = "<checkpoint>", maxNodes = 1_000_000): JsonValue {
  let nodes = 0;
  const convert = (v: PyValue, depth: number): JsonValue => {
    if (++nodes > maxNodes)
      throw new CorruptFileError(path, `object expands to more than ${maxNodes} values`);
    if (depth > MAX_DEPTH) throw new CorruptFileError(path, `objects nested deeper than ${MAX_DEPTH} levels`);
    const inner = (child: PyValue): JsonValue => convert(child, depth + 1);
    if (v === null || typeof v === "boolean" || typeof v === "number" || typeof v === "string") return v;
    if (typeof v === "bigint") return { int: v.toString() };
    if (v instanceof Uint8Array) return { bytes: Buffer.from(v).toString("hex") };
    if (Array.isArray(v)) return v.map(inner);
    if (v instanceof PyTuple) return { tuple: v.items.map(inner) };
    if (v instanceof PySet) return { set: v.items.map(inner) };
    if (v instanceof PyGlobal) return { global: v.qualifiedName };
    if (v instanceof StorageRef) return { storage: v.key };
    if (v instanceof TensorRef) return { tensor: { dtype: v.dtype, shape: [...v.shape] } };
    const out: { [key: string]: JsonValue } = {};
    for (const [k, child] of v.entries) out[String(k)] = inner(child);
    return out;
  };
  return convert(value, 0);
}
