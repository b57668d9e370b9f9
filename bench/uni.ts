/**
 * Uni-ControlNet benchmark (issue 9): one step of the full-size uni_v15 model at 512x512 with CFG batch
 * 2 (local adapter + UNet with its residuals), random weights, against the plain UNet step in the same
 * process and run (uni-session.ts). The local adapter is about a ControlNet: the ratio says what the
 * study's model costs over plain SD-1.5.
 */
import { runChild } from "./child.js";
import type { UniJob, UniResult } from "./uni-session.js";

export async function benchUni(options: {
  threads: number;
  dir: string;
  runs: number;
  size?: number;
}): Promise<UniResult & { size: number; batch: number }> {
  const size = options.size ?? 512;
  const job: UniJob = { threads: options.threads, dir: options.dir, size, runs: options.runs };
  const result = (await runChild("./uni-session.ts", job)) as UniResult;
  return { ...result, size, batch: 2 };
}
