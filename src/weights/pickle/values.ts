/**
 * The values the safe unpickler builds. Python objects map to plain JS where that is lossless
 * (None -> null, bool, str, int -> number or bigint beyond 2^53, float -> number, bytes -> Uint8Array,
 * list -> array) and to small classes otherwise. Globals are never imported: a `PyGlobal` is just a
 * name that passed the allowlist, and tensors are `TensorRef` placeholders whose data are read later.
 */
import type { DType, Shape } from "../../tensor.js";

export type PyKey = string | number | bigint | boolean | null;

export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PyValue[]
  | PyTuple
  | PyDict
  | PySet
  | PyGlobal
  | StorageRef
  | TensorRef;

export class PyTuple {
  constructor(readonly items: readonly PyValue[]) {}
}

/** dict / OrderedDict. Keys that are not str/int/bool/None (e.g. tuples) are stored as their repr. */
export class PyDict {
  readonly entries = new Map<PyKey, PyValue>();
  /** Instance state given by BUILD (e.g. the `_metadata` torch attaches to state dicts); not items. */
  state: PyValue | undefined;
}

export class PySet {
  constructor(
    readonly items: PyValue[],
    readonly frozen: boolean,
  ) {}
}

/** A global that passed the allowlist: "module.name", never imported. */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** A storage named by a persistent id: `<folder>/data/<key>` in a zip, or a block in a legacy file. */
export class StorageRef {
  constructor(
    readonly key: string,
    /** Element type of the storage class (uint8 for UntypedStorage). */
    readonly dtype: DType,
    /** Number of elements the persistent id declares. */
    readonly numel: number,
  ) {}
}

/** A strided view of a storage, as torch._utils._rebuild_tensor_v2/v3 describe it (in elements). */
export class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly dtype: DType,
    readonly storageOffset: number,
    readonly shape: Shape,
    readonly stride: readonly number[],
    readonly requiresGrad: boolean,
  ) {}
}

/** A short description of a value for error messages. */
export function describePy(value: PyValue): string {
  if (value === null) return "None";
  if (typeof value === "string")
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 37)}...` : value);
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint")
    return String(value);
  if (value instanceof Uint8Array) return `bytes[${value.length}]`;
  if (Array.isArray(value)) return `list[${value.length}]`;
  if (value instanceof PyTuple) return `tuple[${value.items.length}]`;
  if (value instanceof PyDict) return `dict[${value.entries.size}]`;
  if (value instanceof PySet) return `set[${value.items.length}]`;
  if (value instanceof PyGlobal) return value.qualifiedName;
  if (value instanceof StorageRef) return `storage "${value.key}"`;
  return `tensor [${value.shape.join(", ")}]`;
}

/** Python-like repr of a dict key that JS cannot use as a Map key by value. */
export function toPyKey(value: PyValue): PyKey {
  if (value === null || typeof value !== "object") return value;
  if (value instanceof PyTuple) {
    const inner = value.items.map((v) => String(toPyKey(v)));
    return `(${inner.join(", ")}${inner.length === 1 ? "," : ""})`;
  }
  return describePy(value);
}
