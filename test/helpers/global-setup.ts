/**
 * Runs once around the whole test run: gives the run its own temporary folder (TMPDIR, inherited by the
 * test workers), so models the runners write to `<tmpdir>/steadyframe/models` and every test's temp files
 * are removed at the end instead of accumulating across runs.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), "steadyframe-test-"));
  const previous = process.env["TMPDIR"];
  process.env["TMPDIR"] = dir;
  return () => {
    if (previous === undefined) delete process.env["TMPDIR"];
    else process.env["TMPDIR"] = previous;
    rmSync(dir, { recursive: true, force: true });
  };
}
