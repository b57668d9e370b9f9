import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/cli/main.js";
import { DEVICE_ENV } from "../src/runtime/session.js";
import { captureIO } from "./helpers/cli-io.js";
import { GOLDEN } from "./helpers/golden-fixture.js";

let tmp = "";
let savedDevice: string | undefined;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "sf-conformance-cli-"));
  savedDevice = process.env[DEVICE_ENV];
});
afterAll(async () => {
  if (savedDevice === undefined) delete process.env[DEVICE_ENV];
  else process.env[DEVICE_ENV] = savedDevice;
  await rm(tmp, { recursive: true, force: true });
});

describe("steadyframe conformance --device", () => {
  it("refuses an unknown provider before running anything", async () => {
    const io = captureIO();
    expect(await main(["conformance", join(GOLDEN, "vae"), "--device", "gpu"], io)).not.toBe(0);
    expect(io.err()).toMatch(/one of cpu, webgpu, cuda for --device but received "gpu"/);
    expect(io.out()).toBe("");
  });

  it("runs the fixtures on the named provider and says which in the summary and the JSON", async () => {
    // A variable left by the caller's shell must not move a `--device cpu` run elsewhere.
    process.env[DEVICE_ENV] = "webgpu";
    const io = captureIO();
    const json = join(tmp, "results.json");
    expect(await main(["conformance", join(GOLDEN, "vae"), "--device", "cpu", "--json", json], io)).toBe(0);
    expect(io.out()).toMatch(/1 fixtures: \d+ checks passed, 0 failed \(device cpu\)/);
    const written = JSON.parse(await readFile(json, "utf8")) as {
      device: string;
      passed: number;
      failed: number;
    };
    expect(written.device).toBe("cpu");
    expect(written.failed).toBe(0);
    expect(written.passed).toBeGreaterThan(0);
  }, 60_000);
});
