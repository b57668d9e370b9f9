/**
 * An opened PyTorch checkpoint (.ckpt / .pth / .pt): the unpickled object with tensors as TensorRef
 * placeholders, and every storage located and size-checked, before any tensor data are read.
 *
 * Zip format (torch >= 1.6): `<folder>/data.pkl` + `<folder>/data/<key>` records (+ `version`,
 * optional `byteorder`); the folder name is arbitrary (torch uses the file stem, `archive` for buffers).
 * Legacy format (torch < 1.6): see legacy-format.ts. Tar files from torch < 0.4 are refused.
 */
import { CorruptFileError, UnsupportedError, throwIfAborted } from "../../errors.js";
import type { LongTaskOptions } from "../../progress.js";
import { BYTES_PER_ELEMENT, type HostTensor } from "../../tensor.js";
import { fileSource, memorySource, type ByteSource } from "./byte-source.js";
import { MAX_TAR_SCAN_BYTES, looksLikeLegacy, parseLegacy, scanTarPickles } from "./legacy-format.js";
import { unpickle, type UnpickleLimits } from "./pickle-vm.js";
import { materialize, outputBytes } from "./tensor-data.js";
import { TorchPolicy } from "./torch-policy.js";
import type { PyValue, StorageRef, TensorRef } from "./values.js";
import {
  readZipDirectory,
  readZipEntry,
  storedEntryRange,
  verifyCrc,
  type ZipDirectory,
} from "./zip-reader.js";

export interface TorchLoadOptions {
  /** Most bytes of tensor data one read may produce (default: 2 x the file size + 64 MiB). */
  readonly maxOutputBytes?: number;
  /** Bounds on the pickle VM's stack, MARK depth and memo. */
  readonly limits?: Partial<UnpickleLimits>;
}

interface StorageLocation {
  readonly offset: number;
  readonly length: number;
  readonly verify?: (bytes: Uint8Array) => void;
}

const MAX_LEGACY_BYTES = 2 ** 31 - 1;

export class TorchCheckpoint {
  private constructor(
    readonly path: string,
    readonly format: "zip" | "legacy",
    /** The unpickled top-level object. */
    readonly root: PyValue,
    private readonly source: ByteSource,
    private readonly locations: ReadonlyMap<string, StorageLocation>,
    private readonly maxOutputBytes: number,
  ) {}

  /** Opens and validates a checkpoint file; the file stays open until `close()`. */
  static async open(path: string, options: TorchLoadOptions = {}): Promise<TorchCheckpoint> {
    const source = await fileSource(path);
    try {
      return await TorchCheckpoint.fromSource(source, options);
    } catch (error) {
      await source.close();
      throw error;
    }
  }

  /** Same, over bytes in memory. */
  static fromBytes(
    bytes: Uint8Array,
    path = "<buffer>",
    options: TorchLoadOptions = {},
  ): Promise<TorchCheckpoint> {
    return TorchCheckpoint.fromSource(memorySource(bytes, path), options);
  }

  private static async fromSource(source: ByteSource, options: TorchLoadOptions): Promise<TorchCheckpoint> {
    const { path, size } = source;
    const maxOutput = options.maxOutputBytes ?? 2 * size + 64 * 2 ** 20;
    const head = await source.read(0, Math.min(size, 512), "file header");
    if (head[0] === 0x50 && head[1] === 0x4b) {
      const { root, locations } = await openZip(source, options.limits);
      return new TorchCheckpoint(path, "zip", root, source, locations, maxOutput);
    }
    if (looksLikeLegacy(head)) {
      if (size > MAX_LEGACY_BYTES)
        throw new UnsupportedError(`legacy-format torch files over 2 GiB (${path})`);
      const bytes = await source.read(0, size, "legacy torch file");
      const { root, storages } = parseLegacy(bytes, path, options.limits);
      await source.close();
      return new TorchCheckpoint(path, "legacy", root, memorySource(bytes, path), storages, maxOutput);
    }
    if (new TextDecoder("latin1").decode(head.subarray(257, 262)) === "ustar") {
      // Refuse a dangerous payload as unsafe (naming the global) before refusing the format.
      if (size <= MAX_TAR_SCAN_BYTES)
        scanTarPickles(await source.read(0, size, "tar torch file"), path, options.limits);
      throw new UnsupportedError(`tar-format torch checkpoints (PyTorch < 0.4): ${path}`, {
        hint: "load and re-save it with a recent torch, or convert it to .safetensors",
      });
    }
    throw new CorruptFileError(
      path,
      "not a PyTorch checkpoint: neither a zip archive nor a legacy torch pickle",
      0,
    );
  }

  /** Reads the given tensors (each storage once) into row-major host tensors, in the map's order. */
  async readTensors(
    refs: ReadonlyMap<string, TensorRef>,
    options: LongTaskOptions = {},
  ): Promise<Map<string, HostTensor>> {
    let total = 0;
    const groups = new Map<StorageRef, [string, TensorRef][]>();
    for (const [name, ref] of refs) {
      total += outputBytes(ref);
      const group = groups.get(ref.storage);
      if (group === undefined) groups.set(ref.storage, [[name, ref]]);
      else group.push([name, ref]);
    }
    if (total > this.maxOutputBytes) {
      throw new CorruptFileError(
        this.path,
        `its tensors would take ${total} bytes, more than the ${this.maxOutputBytes}-byte limit for this file size`,
        undefined,
        { hint: "pass a larger maxOutputBytes if this checkpoint really holds views that large" },
      );
    }
    const task = `read ${this.path}`;
    options.onProgress?.({ status: "start", task, total: groups.size });
    const loaded = new Map<string, HostTensor>();
    let done = 0;
    for (const [storage, group] of groups) {
      throwIfAborted(options.signal, task);
      const location = this.locations.get(storage.key);
      if (location === undefined)
        throw new CorruptFileError(this.path, `storage "${storage.key}" was never located`);
      const bytes = await this.source.read(location.offset, location.length, `storage "${storage.key}"`);
      location.verify?.(bytes);
      for (const [name, ref] of group) loaded.set(name, materialize(ref, bytes, group.length === 1));
      options.onProgress?.({ status: "progress", task, done: ++done, total: groups.size });
    }
    options.onProgress?.({ status: "done", task });
    const ordered = new Map<string, HostTensor>();
    for (const name of refs.keys()) {
      const t = loaded.get(name);
      if (t !== undefined) ordered.set(name, t);
    }
    return ordered;
  }

  close(): Promise<void> {
    return this.source.close();
  }
}

async function openZip(
  source: ByteSource,
  limits: Partial<UnpickleLimits> | undefined,
): Promise<{ root: PyValue; locations: Map<string, StorageLocation> }> {
  const { path } = source;
  const dir = await readZipDirectory(source);
  const pickles = [...dir.entries.keys()].filter((name) => /^[^/]+\/data\.pkl$/.test(name));
  if (pickles.length !== 1) {
    throw new CorruptFileError(
      path,
      pickles.length === 0
        ? "zip archive without a <folder>/data.pkl record: not a torch.save checkpoint"
        : `zip archive with ${pickles.length} data.pkl records (${pickles.join(", ")})`,
    );
  }
  const pickleName = pickles[0] ?? "";
  const folder = pickleName.slice(0, -"/data.pkl".length);
  await checkByteOrder(source, dir, folder);
  const pickleEntry = dir.entries.get(pickleName);
  if (pickleEntry === undefined) throw new CorruptFileError(path, `${pickleName} vanished`);
  const { bytes, offset } = await readZipEntry(source, dir, pickleEntry);
  const policy = new TorchPolicy(path, false);
  const options = { path, policy, label: pickleName, baseOffset: offset };
  const { value } = unpickle(bytes, limits === undefined ? options : { ...options, limits });

  // Locate and size-check every storage before any data are read.
  const locations = new Map<string, StorageLocation>();
  for (const storage of policy.storages.values()) {
    const recordName = `${folder}/data/${storage.key}`;
    const entry = dir.entries.get(recordName);
    if (entry === undefined) {
      throw new CorruptFileError(
        path,
        `storage "${storage.key}" is used by the pickle but the archive has no record "${recordName}"`,
      );
    }
    const range = await storedEntryRange(source, dir, entry);
    const needed = storage.numel * BYTES_PER_ELEMENT[storage.dtype];
    if (range.length < needed) {
      throw new CorruptFileError(
        path,
        `record "${recordName}" holds ${range.length} bytes but storage "${storage.key}" declares ` +
          `${storage.numel} ${storage.dtype} elements (${needed} bytes)`,
        range.offset,
      );
    }
    locations.set(storage.key, { ...range, verify: (data) => verifyCrc(path, entry, data, range.offset) });
  }
  return { root: value, locations };
}

async function checkByteOrder(source: ByteSource, dir: ZipDirectory, folder: string): Promise<void> {
  const entry = dir.entries.get(`${folder}/byteorder`);
  if (entry === undefined) return;
  const order = new TextDecoder().decode((await readZipEntry(source, dir, entry)).bytes).trim();
  if (order !== "little") throw new UnsupportedError(`"${order}"-endian torch checkpoint ${source.path}`);
}
