/**
 * The legacy (pre-1.6, non-zip) torch.save format: five pickles in a row — the magic number
 * 0x1950a86a20f9469cfc6c, the protocol version 1001, a sys_info dict, the object itself (storages as
 * persistent ids ('storage', type, key, location, numel, view_metadata)), and the list of storage keys —
 * followed, for each key in that list, by an int64 little-endian element count and the raw
 * little-endian data (torch/serialization.py: _legacy_save / _legacy_load).
 */
import { CorruptFileError, UnsafePickleError, UnsupportedError } from "../../errors.js";
import { BYTES_PER_ELEMENT } from "../../tensor.js";
import { unpickle, type UnpickleLimits, type UnpicklePolicy } from "./pickle-vm.js";
import { TorchPolicy } from "./torch-policy.js";
import { CALLABLE_GLOBALS } from "./torch-globals.js";
import { PyDict, PyGlobal, describePy, type PyValue } from "./values.js";

const MAGIC_NUMBER = 0x1950a86a20f9469cfc6cn;
const PROTOCOL_VERSION = 1001;

export interface StorageRecord {
  readonly offset: number;
  readonly length: number;
}

export interface LegacyContents {
  readonly root: PyValue;
  readonly storages: ReadonlyMap<string, StorageRecord>;
}

/** For the header pickles: plain data only, no globals at all. */
function dataOnlyPolicy(path: string): UnpicklePolicy {
  const refuse = (what: string, site: { where: string }): never => {
    throw new UnsafePickleError(
      path,
      `${site.where}: ${what} in a legacy header pickle, which holds plain data only`,
    );
  };
  return {
    resolveGlobal: (module, name, opcode, site) => refuse(`${opcode} ${module}.${name}`, site),
    call: (_callable, _args, opcode, site) => refuse(opcode, site),
    build: (_target, _state, site) => refuse("BUILD", site),
    persistentLoad: (_pid, site) => refuse("a persistent id", site),
  };
}

/**
 * True when the bytes start like a legacy torch file: a pickle of the magic number, in any protocol
 * (torch.save(..., _use_new_zipfile_serialization=False, pickle_protocol=0..5) all load in torch:
 * `_legacy_load` unpickles whatever protocol comes). Only plain data is allowed in that first pickle.
 */
export function looksLikeLegacy(head: Uint8Array): boolean {
  try {
    return (
      unpickle(head, { path: "<file header>", policy: dataOnlyPolicy("<file header>") }).value ===
      MAGIC_NUMBER
    );
  } catch {
    return false;
  }
}

export function parseLegacy(
  bytes: Uint8Array,
  path: string,
  limits?: Partial<UnpickleLimits>,
): LegacyContents {
  const header = dataOnlyPolicy(path);
  const run = (start: number, label: string, policy: UnpicklePolicy): { value: PyValue; end: number } =>
    unpickle(
      bytes,
      limits === undefined ? { path, policy, start, label } : { path, policy, start, label, limits },
    );

  const magic = run(0, "legacy magic number", header);
  if (magic.value !== MAGIC_NUMBER) {
    throw new CorruptFileError(
      path,
      `not a legacy torch file: magic number is ${describePy(magic.value)}`,
      0,
    );
  }
  const version = run(magic.end, "legacy protocol version", header);
  if (version.value !== PROTOCOL_VERSION) {
    throw new UnsupportedError(`legacy torch protocol version ${describePy(version.value)} in ${path}`);
  }
  const sysInfo = run(version.end, "legacy sys_info", header);
  if (sysInfo.value instanceof PyDict && sysInfo.value.entries.get("little_endian") === false) {
    throw new UnsupportedError(`big-endian legacy torch file ${path}`);
  }
  const policy = new TorchPolicy(path, true);
  const object = run(sysInfo.end, "legacy object pickle", policy);
  const keyList = run(object.end, "legacy storage key list", header);
  if (!Array.isArray(keyList.value)) {
    throw new CorruptFileError(path, `legacy storage key list is ${describePy(keyList.value)}`, object.end);
  }

  const storages = new Map<string, StorageRecord>();
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = keyList.end;
  for (const key of keyList.value) {
    const name = String(key);
    const declared = policy.storages.get(name);
    if (declared === undefined || storages.has(name)) {
      throw new CorruptFileError(
        path,
        `legacy storage "${name}" is listed twice or never named by a persistent id`,
        pos,
      );
    }
    if (pos + 8 > bytes.length)
      throw new CorruptFileError(path, `legacy storage "${name}" is missing (file truncated)`, pos);
    const count = view.getBigInt64(pos, true);
    if (count !== BigInt(declared.numel)) {
      throw new CorruptFileError(
        path,
        `legacy storage "${name}" holds ${count} elements, its tensors say ${declared.numel}`,
        pos,
      );
    }
    const length = declared.numel * BYTES_PER_ELEMENT[declared.dtype];
    if (pos + 8 + length > bytes.length) {
      throw new CorruptFileError(
        path,
        `legacy storage "${name}" (${length} bytes) runs past the end of the file`,
        pos,
      );
    }
    storages.set(name, { offset: pos + 8, length });
    pos += 8 + length;
  }
  for (const name of policy.storages.keys()) {
    if (!storages.has(name))
      throw new CorruptFileError(path, `legacy storage "${name}" has no data block`, pos);
  }
  return { root: object.value, storages };
}

/** Size cap for scanning a tar-format checkpoint's pickles. */
export const MAX_TAR_SCAN_BYTES = 2 ** 31 - 1;

/**
 * The tar format of PyTorch < 0.4 (members `sys_info`, `pickle`, `storages`, `tensors`) is not
 * loaded, but its `sys_info` and `pickle` members are scanned first, so that a file importing a
 * dangerous global is refused as unsafe (naming it) rather than as merely unsupported. Nothing is
 * called: the scan resolves every global against the same allowlist and builds no values.
 */
export function scanTarPickles(bytes: Uint8Array, path: string, limits?: Partial<UnpickleLimits>): void {
  const torch = new TorchPolicy(path, true);
  const scan: UnpicklePolicy = {
    resolveGlobal: (module, name, opcode, site) => torch.resolveGlobal(module, name, opcode, site),
    call: (callable, _args, opcode, site) => {
      if (!(callable instanceof PyGlobal) || !CALLABLE_GLOBALS.has(callable.qualifiedName)) {
        throw new UnsafePickleError(
          path,
          `${site.where}: ${opcode} calls ${describePy(callable)}, which may not be called`,
        );
      }
      return null;
    },
    build: () => undefined,
    persistentLoad: () => null,
  };
  const octal = (from: number, to: number): number =>
    Number.parseInt(
      new TextDecoder("latin1").decode(bytes.subarray(from, to)).replace(/\0.*$/su, "").trim() || "0",
      8,
    );
  let pos = 0;
  while (pos + 512 <= bytes.length && bytes[pos] !== 0) {
    const name = new TextDecoder("latin1").decode(bytes.subarray(pos, pos + 100)).replace(/\0.*$/su, "");
    const size = octal(pos + 124, pos + 136);
    if (!Number.isSafeInteger(size) || size < 0 || pos + 512 + size > bytes.length) {
      throw new CorruptFileError(path, `tar member "${name}" has a bad size`, pos);
    }
    const start = pos + 512;
    if (name === "sys_info" || name === "pickle") {
      const member = bytes.subarray(start, start + size);
      const options = { path, policy: scan, label: `tar member ${name}`, baseOffset: start };
      unpickle(member, limits === undefined ? options : { ...options, limits });
    }
    pos = start + Math.ceil(size / 512) * 512;
  }
}
