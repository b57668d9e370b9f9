/**
 * The unpickling policy for torch.save files: resolves names against the allowlist in
 * torch-globals.ts, "calls" the allowlisted callables by building plain data (OrderedDict -> PyDict,
 * _rebuild_tensor_v2 -> TensorRef, ...), and turns persistent ids into StorageRefs. Nothing is ever
 * imported or executed. Every tensor view is bounds-checked against its storage here, before any data
 * are read.
 */
import { UnsafePickleError, UnsupportedError } from "../../errors.js";
import { BYTES_PER_ELEMENT, type DType } from "../../tensor.js";
import type { PolicySite, UnpicklePolicy } from "./pickle-vm.js";
import {
  CALLABLE_GLOBALS,
  STORAGE_DTYPES,
  TORCH_DTYPES,
  TYPE_MARKERS,
  UNSUPPORTED_TORCH_GLOBALS,
  describeGlobal,
  isAllowedGlobal,
} from "./torch-globals.js";
import {
  PyDict,
  PyGlobal,
  PyTuple,
  StorageRef,
  TensorRef,
  describePy,
  toPyKey,
  type PyValue,
} from "./values.js";

const ALLOWLIST_SUMMARY =
  "only torch._utils._rebuild_* functions, torch.*Storage types, torch dtypes, collections.OrderedDict, " +
  "torch.Size and _codecs.encode are allowed";

export class TorchPolicy implements UnpicklePolicy {
  /** Storages by key, as the persistent ids declared them. */
  readonly storages = new Map<string, StorageRef>();

  constructor(
    readonly path: string,
    /** Persistent-id tuple length: 5 in zip files, 6 (with view metadata) in legacy files. */
    private readonly legacy: boolean,
  ) {}

  resolveGlobal(module: string, name: string, opcode: string, site: PolicySite): PyValue {
    const qualified = `${module}.${name}`;
    if (isAllowedGlobal(qualified)) return new PyGlobal(module, name);
    if (UNSUPPORTED_TORCH_GLOBALS.has(qualified)) {
      throw new UnsupportedError(
        `${qualified} in ${this.path} (${site.where}): quantized, sparse, nested or complex tensors`,
        {
          hint: "convert the checkpoint to a dense float state dict",
        },
      );
    }
    throw new UnsafePickleError(
      this.path,
      `${site.where}: ${opcode} imports ${describeGlobal(module, name)}, which is not a tensor-rebuilding global (${ALLOWLIST_SUMMARY})`,
    );
  }

  call(callable: PyValue, args: readonly PyValue[], opcode: string, site: PolicySite): PyValue {
    if (!(callable instanceof PyGlobal) || !CALLABLE_GLOBALS.has(callable.qualifiedName)) {
      throw new UnsafePickleError(
        this.path,
        `${site.where}: ${opcode} calls ${describePy(callable)}, which may not be called`,
      );
    }
    const arg = (i: number): PyValue => {
      const v = args[i];
      if (v === undefined)
        throw site.corrupt(`${callable.qualifiedName} needs argument ${i + 1}, got ${args.length}`);
      return v;
    };
    switch (callable.qualifiedName) {
      case "collections.OrderedDict":
        return orderedDict(args, site);
      case "torch.Size":
        return new PyTuple(intList(args.length === 0 ? new PyTuple([]) : arg(0), "torch.Size", site));
      case "_codecs.encode":
        return encode(arg(0), args[1] ?? "utf-8", site);
      case "torch._utils._rebuild_tensor":
        return this.rebuild(arg(0), arg(1), arg(2), arg(3), undefined, false, site);
      case "torch._utils._rebuild_tensor_v2":
        return this.rebuild(arg(0), arg(1), arg(2), arg(3), undefined, arg(4) === true, site);
      case "torch._utils._rebuild_tensor_v3":
        return this.rebuild(arg(0), arg(1), arg(2), arg(3), dtypeOf(arg(6), site), arg(4) === true, site);
      case "torch._utils._rebuild_parameter":
      case "torch._utils._rebuild_parameter_with_state": {
        const t = arg(0);
        if (!(t instanceof TensorRef))
          throw site.corrupt(`${callable.qualifiedName} wraps ${describePy(t)}, not a tensor`);
        return new TensorRef(t.storage, t.dtype, t.storageOffset, t.shape, t.stride, arg(1) === true);
      }
      case "torch._tensor._rebuild_from_type_v2": {
        const [func, type, inner] = [arg(0), arg(1), arg(2)];
        if (!(type instanceof PyGlobal) || !TYPE_MARKERS.has(type.qualifiedName)) {
          throw new UnsafePickleError(
            this.path,
            `${site.where}: tensor subclass ${describePy(type)} is not allowed`,
          );
        }
        if (!(inner instanceof PyTuple))
          throw site.corrupt("_rebuild_from_type_v2 arguments are not a tuple");
        return this.call(func, inner.items, opcode, site);
      }
      default:
        throw site.corrupt(`no rule for ${callable.qualifiedName}`);
    }
  }

  build(target: PyValue, state: PyValue, site: PolicySite): void {
    // OrderedDict state dicts carry `_metadata` (module versions); tensors carry requires_grad/hooks.
    if (target instanceof PyDict) target.state = state;
    else if (!(target instanceof TensorRef)) {
      throw new UnsafePickleError(this.path, `${site.where}: BUILD would set state on ${describePy(target)}`);
    }
  }

  persistentLoad(pid: PyValue, site: PolicySite): PyValue {
    const items = pid instanceof PyTuple ? pid.items : [];
    const [tag, type, key, location, numel, view] = items;
    if (tag !== "storage" || items.length !== (this.legacy ? 6 : 5)) {
      throw site.corrupt(
        `persistent id ${describePy(pid)} is not a ('storage', type, key, location, numel) tuple`,
      );
    }
    if (!(type instanceof PyGlobal) || !(type.qualifiedName in STORAGE_DTYPES)) {
      throw site.corrupt(`persistent id names ${describePy(type ?? null)}, not a storage type`);
    }
    const dtype = STORAGE_DTYPES[type.qualifiedName] ?? "uint8";
    if ((typeof key !== "string" && typeof key !== "number") || typeof location !== "string") {
      throw site.corrupt("persistent id has a bad storage key or location");
    }
    if (typeof numel !== "number" || !Number.isSafeInteger(numel) || numel < 0) {
      throw site.corrupt(`storage "${key}" declares ${describePy(numel ?? null)} elements`);
    }
    if (view !== undefined && view !== null) {
      throw new UnsupportedError(`legacy storage views in ${this.path} (${site.where})`);
    }
    const name = String(key);
    const known = this.storages.get(name);
    if (known !== undefined) {
      if (known.dtype !== dtype || known.numel !== numel) {
        throw site.corrupt(`storage "${name}" is declared twice with different types or sizes`);
      }
      return known;
    }
    const storage = new StorageRef(name, dtype, numel);
    this.storages.set(name, storage);
    return storage;
  }

  /** _rebuild_tensor*: a strided view in elements of the tensor dtype, checked against the storage. */
  private rebuild(
    storage: PyValue,
    offset: PyValue,
    size: PyValue,
    stride: PyValue,
    dtype: DType | undefined,
    requiresGrad: boolean,
    site: PolicySite,
  ): TensorRef {
    if (!(storage instanceof StorageRef))
      throw site.corrupt(`tensor storage is ${describePy(storage)}, not a storage`);
    if (typeof offset !== "number" || !Number.isSafeInteger(offset) || offset < 0) {
      throw site.corrupt(`tensor storage offset ${describePy(offset)} is not a non-negative integer`);
    }
    const shape = intList(size, "tensor size", site);
    const strides = intList(stride, "tensor stride", site);
    if (shape.length !== strides.length) {
      throw site.corrupt(
        `tensor size [${shape.join(", ")}] and stride [${strides.join(", ")}] differ in length`,
      );
    }
    const tensorDtype = dtype ?? storage.dtype;
    const storageBytes = BigInt(storage.numel) * BigInt(BYTES_PER_ELEMENT[storage.dtype]);
    const elementBytes = BigInt(BYTES_PER_ELEMENT[tensorDtype]);
    if (storageBytes % elementBytes !== 0n) {
      throw site.corrupt(
        `storage "${storage.key}" (${storageBytes} bytes) does not hold whole ${tensorDtype} elements`,
      );
    }
    const available = storageBytes / elementBytes;
    if (!shape.includes(0)) {
      let last = BigInt(offset);
      shape.forEach((d, i) => (last += BigInt(d - 1) * BigInt(strides[i] ?? 0)));
      if (last >= available) {
        throw site.corrupt(
          `tensor view [${shape.join(", ")}] with stride [${strides.join(", ")}] at storage offset ${offset} ` +
            `reaches element ${last} of storage "${storage.key}", which holds ${available} ${tensorDtype} elements`,
        );
      }
    }
    return new TensorRef(storage, tensorDtype, offset, shape, strides, requiresGrad);
  }
}

function intList(value: PyValue, what: string, site: PolicySite): number[] {
  const items = value instanceof PyTuple ? value.items : Array.isArray(value) ? value : undefined;
  if (
    items === undefined ||
    !items.every((d): d is number => typeof d === "number" && Number.isSafeInteger(d) && d >= 0)
  ) {
    throw site.corrupt(`${what} ${describePy(value)} is not a tuple of non-negative integers`);
  }
  return [...items];
}

function dtypeOf(value: PyValue, site: PolicySite): DType {
  const dtype = value instanceof PyGlobal ? TORCH_DTYPES[value.qualifiedName] : undefined;
  if (dtype === undefined)
    throw site.corrupt(`_rebuild_tensor_v3 dtype ${describePy(value)} is not a torch dtype`);
  return dtype;
}

/** OrderedDict() or OrderedDict([(key, value), ...]). */
function orderedDict(args: readonly PyValue[], site: PolicySite): PyDict {
  const dict = new PyDict();
  const [pairs] = args;
  if (args.length > 1) throw site.corrupt("OrderedDict takes at most one argument");
  if (pairs === undefined) return dict;
  const list = Array.isArray(pairs) ? pairs : pairs instanceof PyTuple ? pairs.items : undefined;
  if (list === undefined) throw site.corrupt(`OrderedDict from ${describePy(pairs)}`);
  for (const pair of list) {
    if (!(pair instanceof PyTuple) || pair.items.length !== 2)
      throw site.corrupt("OrderedDict item is not a pair");
    dict.entries.set(toPyKey(pair.items[0] ?? null), pair.items[1] ?? null);
  }
  return dict;
}

/** _codecs.encode(text, "latin1"): how protocol-2 pickles spell Python 3 bytes objects. */
function encode(value: PyValue, encoding: PyValue, site: PolicySite): Uint8Array {
  if (typeof value !== "string") throw site.corrupt(`_codecs.encode of ${describePy(value)}`);
  const e = typeof encoding === "string" ? encoding.toLowerCase().replace("_", "-") : "";
  if (e === "latin1" || e === "latin-1" || e === "iso-8859-1") {
    const out = new Uint8Array(value.length);
    for (let i = 0; i < value.length; i++) {
      const c = value.charCodeAt(i);
      if (c > 0xff) throw site.corrupt("_codecs.encode: character outside latin-1");
      out[i] = c;
    }
    return out;
  }
  if (e === "utf-8" || e === "utf8") return new TextEncoder().encode(value);
  throw site.corrupt(`_codecs.encode with encoding ${describePy(encoding)}`);
}
