/**
 * IP-Adapter in the video engine (tiny model, tiny IP-Adapter plus, a random tiny CLIP image encoder):
 * - `--ip-image IMG --ip-scale 0` gives the plain video exactly, scale 1 another one;
 * - identity lock (`--ip-image first-output`, the default): frame 0 is made without a reference (equal
 *   to the plain video's frame 0), every later frame is conditioned on frame 0's output;
 * - the flags refuse what cannot work, naming the flag.
 */
import { copyFile, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/cli/main.js";
import { writePngFile } from "../src/control/png.js";
import { image } from "../src/image.js";
import { captureIO } from "./helpers/cli-io.js";
import { GOLDEN } from "./helpers/golden-fixture.js";
import { writeTinyEncoder } from "./helpers/tiny-image-encoder.js";

const CLIP = "test/fixtures/videos/car-turn-9f.mp4";
let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sf-video-ip-"));
  await writeTinyEncoder(join(dir, "image_encoder"));
  await copyFile(
    join(GOLDEN, "ip_adapter_plus/ip-adapter-plus_sd15_tiny.safetensors"),
    join(dir, "plus.safetensors"),
  );
  await writePngFile(
    join(dir, "ref.png"),
    image(
      48,
      64,
      3,
      Uint8Array.from({ length: 48 * 64 * 3 }, (_, i) => (i * 7) % 256),
    ),
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const run = async (argv: string[]) => {
  const io = captureIO();
  const code = await main(argv, io);
  return { code, out: io.out(), err: io.err() };
};
const args = (out: string, extra: string[]): string[] => [
  "video",
  CLIP,
  "--model",
  join(GOLDEN, "tiny-sd"),
  "--prompt",
  "a red car on a road",
  "--size",
  "64x64",
  "--frames",
  "3",
  "--steps",
  "2",
  "--scheduler",
  "ddim",
  "--attention",
  "first",
  "--cache-dir",
  join(dir, "cache"),
  "--out",
  out,
  ...extra,
];
const frames = async (d: string) =>
  Promise.all(
    (await readdir(d))
      .filter((f) => f.endsWith(".png"))
      .sort()
      .map((f) => readFile(join(d, f))),
  );

describe("IP-Adapter in steadyframe video", () => {
  it("a reference image: scale 0 is the plain video exactly, scale 1 changes every frame", async () => {
    const outs = ["plain", "zero", "one"].map((n) => join(dir, n));
    const ip = (scale: string) => [
      "--ip-adapter",
      join(dir, "plus.safetensors"),
      "--ip-image",
      join(dir, "ref.png"),
      "--ip-scale",
      scale,
    ];
    const extras = [[], ip("0"), ip("1")];
    for (const [k, out] of outs.entries()) {
      const r = await run(args(out, extras[k] ?? []));
      expect(r.err, r.err).not.toMatch(/error/i);
      expect(r.code).toBe(0);
    }
    const [plain, zero, one] = await Promise.all(outs.map(frames));
    expect(plain?.length).toBe(3);
    plain?.forEach((png, i) =>
      expect(Buffer.compare(png, zero?.[i] ?? Buffer.alloc(0)), `frame ${i}`).toBe(0),
    );
    plain?.forEach((png, i) =>
      expect(Buffer.compare(png, one?.[i] ?? Buffer.alloc(0)), `frame ${i}`).not.toBe(0),
    );
  }, 240_000);

  it("identity lock: frame 0 has no reference, later frames take frame 0's output", async () => {
    const out = join(dir, "lock");
    const r = await run(args(out, ["--ip-adapter", join(dir, "plus.safetensors")]));
    expect(r.err, r.err).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    const [plain, locked] = await Promise.all([frames(join(dir, "plain")), frames(out)]);
    expect(Buffer.compare(plain[0]!, locked[0]!)).toBe(0);
    expect(Buffer.compare(plain[1]!, locked[1]!)).not.toBe(0);
    const runJson = JSON.parse(await readFile(join(out, "run.json"), "utf8")) as {
      methods: { id: string }[];
      settings: { ipAdapter?: { image: string } };
    };
    expect(runJson.methods.map((m) => m.id)).toContain("reference:first-output");
    expect(runJson.settings.ipAdapter?.image).toBe("first-output");
  }, 240_000);

  it("refuses --ip-image without --ip-adapter, and documents the flags", async () => {
    const r = await run(args(join(dir, "x"), ["--ip-image", join(dir, "ref.png")]));
    expect(r.code).not.toBe(0);
    expect(r.err).toContain("--ip-image");
    expect((await run(["video", "--help"])).out).toContain("--ip-adapter FILE");
  });
});
