/**
 * Compiled-model cache: ORT writes its optimized graph (`optimizedModelFilePath`, large initializers
 * to a side file) on first creation; later creations load that file with optimizations disabled.
 *
 * The cache key hashes (sha256): the model file's bytes; the size and mtime of every external data
 * file it references (not their contents: hashing GBs of weights would cost more than it saves; a
 * rewritten weight file gets a new mtime); the execution provider; the ORT version; the optimization
 * level; and the CPU model and architecture (level "all" bakes in CPU-specific layouts).
 */
import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { arch, cpus } from "node:os";
import { basename, dirname, join } from "node:path";
import ort from "onnxruntime-node";
import { onnxType } from "../graph/proto.js";

/** Models larger than this are not decoded to find external data (they hold their weights inline). */
const DECODE_LIMIT = 256 * 1024 * 1024;

export interface CacheEntry {
  /** Path of the cached optimized model. */
  readonly modelPath: string;
  /** File name stem shared by the model and its data files (`<stem>.onnx`, `<stem>.<id>.onnx.data`). */
  readonly stem: string;
  readonly key: string;
}

/** External data locations referenced by a model's initializers (relative to its folder). */
export function externalDataLocations(modelBytes: Uint8Array): string[] {
  const model = onnxType("ModelProto").toObject(onnxType("ModelProto").decode(modelBytes), { longs: Number });
  const graph: unknown = model["graph"];
  const locations = new Set<string>();
  if (
    typeof graph !== "object" ||
    graph === null ||
    !("initializer" in graph) ||
    !Array.isArray(graph.initializer)
  )
    return [];
  for (const init of graph.initializer as unknown[]) {
    if (
      typeof init !== "object" ||
      init === null ||
      !("external_data" in init) ||
      !Array.isArray(init.external_data)
    )
      continue;
    for (const entry of init.external_data as unknown[]) {
      if (
        typeof entry === "object" &&
        entry !== null &&
        "key" in entry &&
        "value" in entry &&
        entry.key === "location" &&
        typeof entry.value === "string"
      ) {
        locations.add(entry.value);
      }
    }
  }
  return [...locations];
}

export interface CacheKeyParts {
  readonly provider: string;
  readonly optimizationLevel: string;
}

/** Computes the cache entry for `modelPath` in `cacheDir` (see the file comment for the key). */
export async function cacheEntry(
  modelPath: string,
  cacheDir: string,
  parts: CacheKeyParts,
): Promise<CacheEntry> {
  const bytes = await readFile(modelPath);
  const hash = createHash("sha256");
  hash.update(bytes);
  if (bytes.byteLength <= DECODE_LIMIT) {
    for (const location of externalDataLocations(bytes).sort()) {
      const s = await stat(join(dirname(modelPath), location)).catch(() => null);
      hash.update(`\0data:${location}:${s ? `${s.size}:${s.mtimeMs}` : "missing"}`);
    }
  }
  hash.update(`\0provider:${parts.provider}\0level:${parts.optimizationLevel}`);
  hash.update(`\0ort:${ort.env.versions.common}\0arch:${arch()}\0cpu:${cpus()[0]?.model ?? "unknown"}`);
  const key = hash.digest("hex").slice(0, 32);
  const stem = `${basename(modelPath).replace(/\.onnx$/, "")}-${parts.provider}-${key}`;
  return { modelPath: join(cacheDir, `${stem}.onnx`), stem, key };
}
