/**
 * Runs a benchmark child process (same Node flags as this one, so tsx keeps working) and parses the
 * one JSON object it prints on stdout; its stderr (progress) passes through.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

export async function runChild(script: string, job: unknown): Promise<unknown> {
  const path = fileURLToPath(new URL(script, import.meta.url));
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
