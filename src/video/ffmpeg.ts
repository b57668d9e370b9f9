/**
 * Spawning Debian's `ffmpeg` / `ffprobe` binaries (node only). Every video call runs the tools as
 * child processes with pipes; this module starts them, keeps the tail of their stderr for error
 * messages, turns "binary not found" into an actionable VideoError and kills them on request.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { VideoError } from "../errors.js";

/** Where to find the tools. Defaults: `ffmpeg` and `ffprobe` looked up on PATH. */
export interface FfmpegBinaries {
  readonly ffmpegPath?: string;
  readonly ffprobePath?: string;
}

export const INSTALL_HINT = "install it: apt-get install ffmpeg (or pass ffmpegPath/ffprobePath)";

const STDERR_KEEP = 16 * 1024;

/** A running tool: the process, its exit as a promise and the last 16 KiB of its stderr. */
export interface ToolProcess {
  readonly child: ChildProcess;
  /** Resolves with the exit code (null when killed by a signal); never rejects. */
  readonly exited: Promise<number | null>;
  /** Rejects with a VideoError when the binary could not be started (ENOENT, EACCES). */
  readonly spawnFailed: Promise<never>;
  stderr(): string;
  /** SIGKILL unless it already exited; resolves when it has. */
  kill(): Promise<void>;
}

/**
 * Starts `binary args...` with stdin/stdout as requested. `path` is the video the error messages name.
 */
export function startTool(
  binary: string,
  args: readonly string[],
  path: string,
  stdio: { stdin: "pipe" | "ignore"; stdout: "pipe" | "ignore" },
): ToolProcess {
  const child = spawn(binary, [...args], { stdio: [stdio.stdin, stdio.stdout, "pipe"] });
  let tail = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (text: string) => {
    tail = (tail + text).slice(-STDERR_KEEP);
  });
  // Registered first so that a failed spawn rejects before `exited` resolves.
  const spawnFailed = new Promise<never>((_resolve, reject) => {
    child.once("error", (err: NodeJS.ErrnoException) => {
      const name = binary.split("/").pop() ?? binary;
      if (err.code === "ENOENT" || err.code === "EACCES") {
        reject(
          new VideoError(path, `${name} was not found or cannot be run (${binary}: ${err.code})`, {
            hint: INSTALL_HINT,
            cause: err,
          }),
        );
      } else {
        reject(new VideoError(path, `${name} failed to start: ${err.message}`, { cause: err }));
      }
    });
  });
  spawnFailed.catch(() => undefined);
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => {
    child.once("close", (code) => {
      exitCode = code;
      resolve(code);
    });
    child.once("error", () => {
      exitCode = null;
      resolve(null);
    });
  });
  return {
    child,
    exited,
    spawnFailed,
    stderr: () => tail,
    async kill() {
      if (exitCode === undefined && child.exitCode === null && child.signalCode === null)
        child.kill("SIGKILL");
      await exited;
    },
  };
}

/**
 * The gist of a tool's stderr for an error message: the last few distinct lines, without the
 * `[h264 @ 0x55d4...]` addresses, at most ~400 characters.
 */
export function summarizeStderr(stderr: string, maxLines = 3): string {
  const lines = stderr
    .split(/\r?\n/)
    .map((l) =>
      l
        .replace(/\[([\w-]+)[\w,-]* @ 0x[0-9a-f]+\]\s*/gi, "$1: ")
        .replace(/\boffset 0x[0-9a-f]+/gi, "offset ...")
        .trim(),
    )
    .filter((l) => l.length > 0);
  const unique: string[] = [];
  for (let i = lines.length - 1; i >= 0 && unique.length < maxLines; i--) {
    const line = lines[i];
    if (line !== undefined && !unique.includes(line)) unique.unshift(line);
  }
  const text = unique.join(" | ");
  return text.length > 400 ? `${text.slice(0, 397)}...` : text;
}

/** Runs a tool to completion and collects stdout as text (ffprobe). */
export async function runToText(
  binary: string,
  args: readonly string[],
  path: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const tool = startTool(binary, args, path, { stdin: "ignore", stdout: "pipe" });
  let out = "";
  tool.child.stdout?.setEncoding("utf8");
  tool.child.stdout?.on("data", (text: string) => {
    out += text;
  });
  const code = await Promise.race([tool.exited, tool.spawnFailed]);
  return { code, stdout: out, stderr: tool.stderr() };
}
