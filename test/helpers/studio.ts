/**
 * Set-up shared by the studio tests: the Vite build of the web app, a models folder holding a copy of
 * the tiny Stable Diffusion model (a copy, not a symbolic link: links out of the models folder are
 * refused), and `steadyframe studio` started as a child process whose printed address is read back.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { cp, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { GOLDEN } from "./golden-fixture.js";

export const ROOT = resolve(import.meta.dirname, "../..");
export const CAR_CLIP = join(ROOT, "test/fixtures/videos/car-turn-9f.mp4");

/** Builds studio/ into dist/studio-web with Vite (as `npm run build` does); throws with its output. */
export function buildStudioWeb(): void {
  const r = spawnSync(
    process.execPath,
    [join(ROOT, "node_modules/vite/bin/vite.js"), "build", "--config", "studio/vite.config.ts"],
    { cwd: ROOT, encoding: "utf8", timeout: 120_000 },
  );
  if (r.status !== 0) throw new Error(`vite build failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
}

/** A fresh folder with models/tiny-sd (copied) and an empty outputs/ folder. */
export async function studioFolders(): Promise<{ dir: string; models: string; outputs: string }> {
  const dir = await mkdtemp(join(tmpdir(), "studio-test-"));
  const models = join(dir, "models");
  await cp(join(GOLDEN, "tiny-sd"), join(models, "tiny-sd"), { recursive: true });
  return { dir, models, outputs: join(dir, "outputs") };
}

export interface RunningStudio {
  readonly url: string;
  readonly origin: string;
  readonly token: string;
  readonly child: ChildProcess;
  /** Everything the process wrote to stderr so far. */
  stderr(): string;
  stop(): Promise<number | null>;
}

/** Starts `steadyframe studio ARGS` from source and waits for the address it prints. */
export async function startStudioCli(args: readonly string[], timeoutMs = 60_000): Promise<RunningStudio> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "studio", ...args], {
    cwd: ROOT,
    env: process.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stderr?.on("data", (d: Buffer) => (err += d.toString()));
  const url = await new Promise<string>((resolvePromise, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no address after ${timeoutMs} ms; stderr:\n${err}`)),
      timeoutMs,
    );
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /(http:\/\/\S+\?token=\S+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolvePromise(m[1]);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`steadyframe studio exited with ${code}; stderr:\n${err}`));
    });
  });
  const parsed = new URL(url);
  return {
    url,
    origin: parsed.origin,
    token: parsed.searchParams.get("token") ?? "",
    child,
    stderr: () => err,
    stop: () =>
      new Promise((resolvePromise) => {
        if (child.exitCode !== null) return resolvePromise(child.exitCode);
        child.once("exit", (code) => resolvePromise(code));
        child.kill("SIGTERM");
      }),
  };
}
