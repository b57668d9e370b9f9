/**
 * Ctrl-C for the `steadyframe` process: the first SIGINT (or SIGTERM) aborts the run's AbortSignal
 * so the work stops at its next check and removes its temporary outputs. Work that cannot notice
 * (a system call that never returns, one long ONNX Runtime run) must not keep the process alive:
 * if it has not ended `graceMs` later, or on a second SIGINT, the temporary outputs still in
 * progress are deleted synchronously and the process exits with 130 (128 + SIGINT).
 */
import { removeTempOutputsSync } from "../util/atomic-write.js";

export interface InterruptOptions {
  /** (optional, default 3000) how long an aborted run may take to unwind before the process exits. */
  readonly graceMs?: number;
  /** (optional, default process.stderr) where the "stopping" notes go. */
  readonly stderr?: NodeJS.WritableStream;
}

/** Installs the SIGINT/SIGTERM handlers; returns a function that removes them. */
export function handleInterrupts(controller: AbortController, options: InterruptOptions = {}): () => void {
  const graceMs = options.graceMs ?? 3000;
  const stderr = options.stderr ?? process.stderr;
  const exitNow = (): never => {
    removeTempOutputsSync();
    process.exit(130);
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    if (controller.signal.aborted) {
      stderr.write(`\n${signal} again: stopping now\n`);
      exitNow();
    }
    controller.abort(new Error(`interrupted (${signal === "SIGINT" ? "Ctrl-C" : signal})`));
    setTimeout(() => {
      stderr.write(`\nstill busy ${graceMs} ms after ${signal}: stopping now\n`);
      exitNow();
    }, graceMs).unref();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return () => {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  };
}
