/**
 * A throw-away Redis for the farm test and bench: Debian's `redis-server` on a free 127.0.0.1 port,
 * in memory only (no RDB snapshot, no append-only file), stopped by `stop()`. `scripts/install.sh`
 * installs it; when it is missing this fails with a message saying so (nothing is skipped).
 */
import { spawn } from "node:child_process";
import { createServer } from "node:net";

export interface LocalRedis {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function startOnce(port: number): Promise<LocalRedis> {
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
  const child = spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`redis-server did not start within 15 s on port ${port}:\n${output}`));
    }, 15_000);
    const onData = (d: Buffer): void => {
      output += d.toString();
      if (output.includes("Ready to accept connections")) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("error", (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        error.code === "ENOENT"
          ? new Error(
              "redis-server is not installed (not on PATH): the render-farm tests start Debian's redis-server; " +
                "run `bash scripts/install.sh` (apt-get install -y redis-server)",
            )
          : error,
      );
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited (code ${code}) before it was ready:\n${output}`));
    });
  });
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

/** Starts redis-server on a free localhost port (a few tries, in case another process takes the port). */
export async function startRedisServer(): Promise<LocalRedis> {
  let last: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(await freePort());
    } catch (error) {
      last = error;
      if (error instanceof Error && !/Address already in use/.test(error.message)) throw error;
    }
  }
  throw last;
}
