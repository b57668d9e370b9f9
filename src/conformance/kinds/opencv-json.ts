/**
 * Typed reads of untrusted case.json values for the opencv kind: each accessor names the field in
 * its ConfigError.
 */
import { ConfigError } from "../../errors.js";

export type Json = Readonly<Record<string, unknown>>;

export function isRecord(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export class Reader {
  constructor(readonly file: string) {}
  record(value: unknown, field: string): Json {
    if (!isRecord(value)) throw new ConfigError(this.file, field, "an object", value);
    return value;
  }
  list(value: unknown, field: string): readonly unknown[] {
    if (!Array.isArray(value)) throw new ConfigError(this.file, field, "a list", value);
    return value;
  }
  number(value: unknown, field: string): number {
    if (typeof value !== "number" || !Number.isFinite(value))
      throw new ConfigError(this.file, field, "a number", value);
    return value;
  }
  int(value: unknown, field: string): number {
    if (typeof value !== "number" || !Number.isSafeInteger(value))
      throw new ConfigError(this.file, field, "an integer", value);
    return value;
  }
  string(value: unknown, field: string): string {
    if (typeof value !== "string" || value.length === 0)
      throw new ConfigError(this.file, field, "a non-empty string", value);
    return value;
  }
  /** A relative folder/file name inside the fixture (no absolute paths, no `..`). */
  path(value: unknown, field: string): string {
    const p = this.string(value, field);
    if (p.startsWith("/") || p.split(/[\\/]/u).includes("..")) {
      throw new ConfigError(this.file, field, "a path inside the fixture folder", value);
    }
    return p;
  }
}
