import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseArgs } from "../bench/args.js";
import { childPath } from "../bench/child.js";
import { InvalidArgumentError } from "../src/errors.js";

let tmp = "";
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "sf-bench-args-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("the video benchmark's device flags", () => {
  it("default to the CPU and the bundled clip", () => {
    const { video } = parseArgs(["--only", "video"]);
    expect(video.device).toBe("cpu");
    expect(video.synthetic).toBe(false);
  });

  it("put the timed models on --video-device and the sources on synthetic PNGs", () => {
    const { video, device } = parseArgs(["--only", "video", "--video-device", "webgpu", "--video-synthetic"]);
    expect(video.device).toBe("webgpu");
    expect(video.synthetic).toBe(true);
    // --device stays the `device` part's provider.
    expect(device).toBe("webgpu");
    expect(parseArgs(["--device", "cuda"]).video.device).toBe("cpu");
  });

  it("refuse an unknown provider, naming the flag and the choices", () => {
    const call = (): unknown => parseArgs(["--video-device", "gpu"]);
    expect(call).toThrow(InvalidArgumentError);
    expect(call).toThrow(/--video-device.*cpu, webgpu, cuda|cpu, webgpu, cuda.*--video-device/);
  });
});

describe("childPath", () => {
  it("runs a bundled child beside the parent when there is one, else the TypeScript source", async () => {
    const parent = pathToFileURL(join(tmp, "run.mjs")).href;
    expect(childPath("./video-session.ts", parent)).toBe(join(tmp, "video-session.ts"));
    await writeFile(join(tmp, "video-session.mjs"), "");
    expect(childPath("./video-session.ts", parent)).toBe(join(tmp, "video-session.mjs"));
  });
});
