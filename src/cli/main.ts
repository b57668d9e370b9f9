#!/usr/bin/env node
/**
 * The `steadyframe` command line: dispatches to a subcommand and prints errors as
 * "error: message" (+ hint), with the stack only under --verbose.
 */
import { readFileSync, realpathSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { SteadyframeError } from "../errors.js";
import type { CliCommand, CliIO } from "./command.js";
import { handleInterrupts } from "./interrupt.js";
import { atlasCommand } from "./commands/atlas.js";
import { cacheCommand } from "./commands/cache.js";
import { conformanceCommand } from "./commands/conformance.js";
import { controlsCommand } from "./commands/controls.js";
import { imageCommand } from "./commands/image.js";
import { metricsCommand } from "./commands/metrics.js";
import { videoCommand } from "./commands/video.js";
import { studyCommand } from "./commands/study.js";
import { studioCommand } from "./commands/studio.js";
import { trainCommand } from "./commands/train.js";
import { tuneCommand } from "./commands/tune.js";
import { workerCommand } from "./commands/worker.js";

const COMMANDS: readonly CliCommand[] = [
  videoCommand,
  studyCommand,
  studioCommand,
  workerCommand,
  imageCommand,
  trainCommand,
  tuneCommand,
  atlasCommand,
  controlsCommand,
  metricsCommand,
  conformanceCommand,
  cacheCommand,
];

function version(): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
  return typeof pkg === "object" && pkg !== null && "version" in pkg ? String(pkg.version) : "unknown";
}

function help(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    "Usage: steadyframe <command> [options]",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Run 'steadyframe <command> --help' for a command's options. --verbose prints stack traces.",
  ].join("\n");
}

export async function main(argv: readonly string[], io: CliIO): Promise<number> {
  const verbose = argv.includes("--verbose");
  const args = argv.filter((a) => a !== "--verbose");
  const [name, ...rest] = args;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    io.stdout.write(`${help()}\n`);
    return name === undefined ? 2 : 0;
  }
  if (name === "--version" || name === "-v") {
    io.stdout.write(`${version()}\n`);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (command === undefined) {
    io.stderr.write(
      `error: unknown command "${name}"; expected one of: ${COMMANDS.map((c) => c.name).join(", ")}\n`,
    );
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    io.stdout.write(command.usage);
    return 0;
  }
  try {
    return await command.run(rest, io);
  } catch (error) {
    if (error instanceof SteadyframeError) {
      io.stderr.write(`error [${error.code}]: ${error.message}\n`);
    } else if (
      error instanceof TypeError &&
      "code" in error &&
      String(error.code).startsWith("ERR_PARSE_ARGS")
    ) {
      io.stderr.write(`error: ${error.message}\nRun 'steadyframe ${name} --help' for the options.\n`);
      return 2;
    } else {
      io.stderr.write(`internal error: ${error instanceof Error ? error.message : String(error)}\n`);
    }
    if (verbose && error instanceof Error && error.stack) io.stderr.write(`${error.stack}\n`);
    if (error instanceof SteadyframeError && error.code === "E_CANCELLED") return 130;
    if (error instanceof SteadyframeError && error.code === "E_INVALID_ARGUMENT") return 2;
    return 1;
  }
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(script)).href;
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  const controller = new AbortController();
  // A training step can outlast the default grace; `train`, `tune` and `atlas` save after the step they are in.
  const command = process.argv.slice(2).find((a) => a !== "--verbose");
  handleInterrupts(
    controller,
    command === "train" || command === "tune" || command === "atlas" ? { graceMs: 600_000 } : {},
  );
  const io: CliIO = {
    stdout: process.stdout,
    stderr: process.stderr,
    interactive: process.stderr.isTTY === true,
    signal: controller.signal,
  };
  main(process.argv.slice(2), io).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`internal error: ${String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
