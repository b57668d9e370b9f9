/**
 * Runs a benchmark child process (same Node flags as this one, so tsx keeps working) and parses the
 * one JSON object it prints on stdout; its stderr (progress) passes through.
 *
 * Bundled benchmarks (scripts/device-pack.sh: esbuild bundles for a machine without Node.js or
 * `npm ci`) carry each child as `<name>.mjs` beside the parent's bundle; that file is run when it
 * exists, the TypeScript source otherwise.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** The file to run for child `script` ("./video-session.ts"): its bundle when one lies beside us. */
export function childPath(script: string, from: string = import.meta.url): string {
  const bundled = fileURLToPath(new URL(script.replace(/\.ts$/, ".mjs"), from));
  return existsSync(bundled) ? bundled : fileURLToPath(new URL(script, from));
}

export async function runChild(script: string, job: unknown): Promise<unknown> {
  const path = childPath(script);
  const child = spawn(process.execPath, [...process.execArgv, path, JSON.stringify(job)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const chunks: Buffer[] = [];
  child.stdout.on("data", (c: Buffer) => chunks.push(c));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (c, signal) => resolve(signal === null ? c : -1));
  });
  const out = Buffer.concat(chunks).toString("utf8");
  if (code !== 0)
    throw new Error(
      `${script} exited with ${code === -1 ? "a signal (out of memory?)" : `code ${code}`}${out ? `: ${out.slice(0, 300)}` : ""}`,
    );
  return JSON.parse(out);
}
