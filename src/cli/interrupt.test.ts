/**
 * One Ctrl-C always stops the CLI process: a child process with the CLI's handlers is stuck in a
 * system call that never returns (Node's recursive mkdir on /proc loops forever), gets one SIGINT,
 * and must exit with 130 shortly after, with its temporary output removed.
 */
import { spawn } from "node:child_process";
import { readdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir } from "../../test/helpers/video.js";

const INTERRUPT = fileURLToPath(new URL("./interrupt.ts", import.meta.url));
const ATOMIC = fileURLToPath(new URL("../util/atomic-write.ts", import.meta.url));

let tmp: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  tmp = await makeTempDir("steadyframe-sigint-");
});
afterAll(async () => tmp.cleanup());

describe("handleInterrupts", () => {
  it("one SIGINT stops a process stuck in a system call, exit 130, temporary output removed", async () => {
    const script = `
      import { mkdir } from "node:fs/promises";
      import { handleInterrupts } from ${JSON.stringify(INTERRUPT)};
      import { withAtomicDir } from ${JSON.stringify(ATOMIC)};
      const controller = new AbortController();
      handleInterrupts(controller, { graceMs: 500 });
      void withAtomicDir(${JSON.stringify(`${tmp.dir}/out`)}, async () => {
        process.stdout.write("ready\\n");
        await mkdir("/proc/steadyframe-hang/x", { recursive: true }); // never returns
      });
    `;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (d: Buffer) => d.toString().includes("ready") && resolve());
      child.once("exit", () => reject(new Error(`child exited early: ${stderr}`)));
    });
    expect((await readdir(tmp.dir)).filter((n) => n.startsWith(".out.tmp-"))).toHaveLength(1);
    const started = Date.now();
    child.kill("SIGINT");
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        resolve(null);
      }, 10_000);
      child.once("exit", (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    expect(code).toBe(130);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(stderr).toContain("stopping now");
    expect(await readdir(tmp.dir)).toEqual([]);
  });
});
