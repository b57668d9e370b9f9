/**
 * A CLI subcommand. `main.ts` dispatches on the first argument and prints errors; a command parses
 * its own flags (node:util parseArgs), writes to the given streams and returns the exit code.
 */

export interface CliIO {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  /** True when stderr is a terminal: draw progress bars. */
  readonly interactive: boolean;
  /** Fires on Ctrl-C; long work stops at its next check. */
  readonly signal: AbortSignal;
}

export interface CliCommand {
  readonly name: string;
  /** One line for `steadyframe --help`. */
  readonly summary: string;
  /** Full usage text for `steadyframe <name> --help`. */
  readonly usage: string;
  run(args: readonly string[], io: CliIO): Promise<number>;
}
