/** A non-interactive CliIO for running CLI commands in tests, recording what they write. */
import { PassThrough } from "node:stream";
import type { CliIO } from "../../src/cli/command.js";

/** `out()` / `err()` return everything written to stdout / stderr so far; `signal` defaults to one never aborted. */
export function captureIO(
  signal: AbortSignal = new AbortController().signal,
): CliIO & { out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (d: Buffer) => (out += d.toString()));
  stderr.on("data", (d: Buffer) => (err += d.toString()));
  return { stdout, stderr, interactive: false, signal, out: () => out, err: () => err };
}
