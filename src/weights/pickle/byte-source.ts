/**
 * Random access to the bytes of a checkpoint: a file read piece by piece (multi-GB checkpoints never
 * sit in memory whole) or a buffer already in memory (tests, legacy files). Every read is
 * bounds-checked against the source size; a short read means the file changed or is truncated.
 */
import { open, type FileHandle } from "node:fs/promises";
import { CorruptFileError, FileNotFoundError } from "../../errors.js";

export interface ByteSource {
  /** File path (or a label for in-memory sources), used in error messages. */
  readonly path: string;
  readonly size: number;
  /** Reads `length` bytes at `offset` into a fresh, 0-aligned Uint8Array. */
  read(offset: number, length: number, what: string): Promise<Uint8Array>;
  close(): Promise<void>;
}

function checkRange(
  source: { path: string; size: number },
  offset: number,
  length: number,
  what: string,
): void {
  if (
    !Number.isSafeInteger(offset) ||
    !Number.isSafeInteger(length) ||
    offset < 0 ||
    length < 0 ||
    offset + length > source.size
  ) {
    throw new CorruptFileError(
      source.path,
      `${what} (${length} bytes at byte ${offset}) lies outside the ${source.size}-byte file`,
      offset,
    );
  }
}

/** A source over bytes in memory; `read` copies so callers own what they get. */
export function memorySource(bytes: Uint8Array, path = "<buffer>"): ByteSource {
  return {
    path,
    size: bytes.byteLength,
    read(offset, length, what) {
      checkRange({ path, size: bytes.byteLength }, offset, length, what);
      return Promise.resolve(bytes.slice(offset, offset + length));
    },
    close: () => Promise.resolve(),
  };
}

/** Opens a file for random access; FileNotFoundError if it cannot be opened. */
export async function fileSource(path: string): Promise<ByteSource> {
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (cause) {
    throw new FileNotFoundError(path, "PyTorch checkpoint", { cause });
  }
  const { size } = await handle.stat();
  return {
    path,
    size,
    async read(offset, length, what) {
      checkRange({ path, size }, offset, length, what);
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        // Node reads at most 2 GiB per call.
        const chunk = Math.min(length - done, 1 << 30);
        const { bytesRead } = await handle.read(out, done, chunk, offset + done);
        if (bytesRead === 0) {
          throw new CorruptFileError(
            path,
            `${what} ends early: the file shrank while reading`,
            offset + done,
          );
        }
        done += bytesRead;
      }
      return out;
    },
    close: () => handle.close(),
  };
}
