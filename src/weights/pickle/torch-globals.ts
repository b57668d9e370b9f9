/**
 * The allowlist: the only globals a PyTorch checkpoint may name. Everything else is refused, whatever
 * opcode imports it — an allowlist, not a denylist, because dangerous callables hide under many names
 * (`posix.system` is os.system, `commands.Popen` is Python 2's subprocess.Popen, `__builtin__.getattr`
 * chains reach anything).
 */
import type { DType } from "../../tensor.js";

/** Storage classes named in persistent ids, with their element type (torch/storage.py). */
export const STORAGE_DTYPES: Readonly<Record<string, DType>> = {
  "torch.FloatStorage": "float32",
  "torch.DoubleStorage": "float64",
  "torch.HalfStorage": "float16",
  "torch.BFloat16Storage": "bfloat16",
  "torch.LongStorage": "int64",
  "torch.IntStorage": "int32",
  "torch.ShortStorage": "int16",
  "torch.CharStorage": "int8",
  "torch.ByteStorage": "uint8",
  "torch.BoolStorage": "bool",
  // Raw bytes: _rebuild_tensor_v3 says the element type.
  "torch.UntypedStorage": "uint8",
};

/** torch.dtype objects (pickled as globals since torch 1.x), as _rebuild_tensor_v3 uses them. */
export const TORCH_DTYPES: Readonly<Record<string, DType>> = {
  "torch.float32": "float32",
  "torch.float": "float32",
  "torch.float64": "float64",
  "torch.double": "float64",
  "torch.float16": "float16",
  "torch.half": "float16",
  "torch.bfloat16": "bfloat16",
  "torch.int64": "int64",
  "torch.long": "int64",
  "torch.int32": "int32",
  "torch.int": "int32",
  "torch.int16": "int16",
  "torch.short": "int16",
  "torch.int8": "int8",
  "torch.uint8": "uint8",
  "torch.bool": "bool",
  "torch.uint16": "uint16",
  "torch.uint32": "uint32",
  "torch.uint64": "uint64",
  "torch.float8_e4m3fn": "float8e4m3fn",
  "torch.float8_e5m2": "float8e5m2",
};

/** Functions a checkpoint may call (REDUCE / NEWOBJ / ...), all of them pure data builders. */
export const CALLABLE_GLOBALS: ReadonlySet<string> = new Set([
  "torch._utils._rebuild_tensor",
  "torch._utils._rebuild_tensor_v2",
  "torch._utils._rebuild_tensor_v3",
  "torch._utils._rebuild_parameter",
  "torch._utils._rebuild_parameter_with_state",
  "torch._tensor._rebuild_from_type_v2",
  "collections.OrderedDict",
  "torch.Size",
  "_codecs.encode",
]);

/** Types that may appear as arguments (the `new_type` of _rebuild_from_type_v2) but are never called. */
export const TYPE_MARKERS: ReadonlySet<string> = new Set(["torch.Tensor", "torch.nn.parameter.Parameter"]);

/** Safe torch globals for tensor kinds this loader cannot represent: refused as unsupported, not unsafe. */
export const UNSUPPORTED_TORCH_GLOBALS: ReadonlySet<string> = new Set([
  "torch._utils._rebuild_qtensor",
  "torch._utils._rebuild_sparse_tensor",
  "torch._utils._rebuild_nested_tensor",
  "torch._utils._rebuild_meta_tensor_no_storage",
  "torch._utils._rebuild_wrapper_subclass",
  "torch._utils._rebuild_device_tensor_from_numpy",
  "torch.ComplexFloatStorage",
  "torch.ComplexDoubleStorage",
  "torch.QInt8Storage",
  "torch.QUInt8Storage",
  "torch.QInt32Storage",
  "torch.QUInt4x2Storage",
  "torch.QUInt2x4Storage",
  "torch.complex64",
  "torch.complex128",
]);

export function isAllowedGlobal(qualifiedName: string): boolean {
  return (
    qualifiedName in STORAGE_DTYPES ||
    qualifiedName in TORCH_DTYPES ||
    CALLABLE_GLOBALS.has(qualifiedName) ||
    TYPE_MARKERS.has(qualifiedName)
  );
}

/** Python 2 module names that Python 3's unpickler maps back (Lib/_compat_pickle.py), for messages. */
const PYTHON2_MODULES: Readonly<Record<string, string>> = {
  __builtin__: "builtins",
  copy_reg: "copyreg",
  commands: "subprocess",
  exceptions: "builtins",
  cPickle: "pickle",
  Queue: "queue",
  StringIO: "io",
  cStringIO: "io",
  urllib2: "urllib.request",
  posix: "os",
  nt: "os",
};

/** `"commands.Popen" (= subprocess.Popen)`: the name as written, plus what it really is. */
export function describeGlobal(module: string, name: string): string {
  const written = `"${module}.${name}"`;
  const real = PYTHON2_MODULES[module];
  return real === undefined ? written : `${written} (= ${real}.${name})`;
}
