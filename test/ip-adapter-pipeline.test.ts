/**
 * IP-Adapter in the pipeline and the CLI (issue 10 item 3): the CFG batch layout of the image term
 * against the `ip_adapter` golden noise_pred, the uncond image embedding of each adapter kind by
 * construction (plain: zero image_embeds; plus: the encoder on zero pixel values), and
 * `steadyframe image --ip-adapter` on the tiny model with a random tiny CLIP image encoder
 * (--ip-scale 0 must give the plain image exactly).
 */
import { copyFile, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/cli/main.js";
import { image } from "../src/image.js";
import { IpAdapterRunner } from "../src/models/ip-adapter/runner.js";
import { UNet2DConditionModel } from "../src/models/unet/unet-2d-condition.js";
import { IpAdapterConditioner, ipAdaptedUNet, type IpKeyValues } from "../src/pipeline/ip-adapter.js";
import { type HostTensor, maxAbsDiff, tensor } from "../src/tensor.js";
import { readSafetensors } from "../src/weights/safetensors.js";
import { writePngFile } from "../src/control/png.js";
import { captureIO } from "./helpers/cli-io.js";
import { writeTinyEncoder } from "./helpers/tiny-image-encoder.js";
import { GOLDEN } from "./helpers/golden-fixture.js";

const rows = (kv: Readonly<Record<string, HostTensor<"float32">>>, i: number): IpKeyValues =>
  Object.fromEntries(
    Object.entries(kv).map(([k, t]) => {
      const size = t.data.length / (t.shape[0] ?? 1);
      return [k, tensor("float32", [1, ...t.shape.slice(1)], t.data.slice(i * size, (i + 1) * size))];
    }),
  );

const gradient = (w: number, h: number) =>
  image(
    w,
    h,
    3,
    Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 7) % 256),
  );

describe("IP-Adapter pipeline glue", () => {
  let dir = "";
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "sf-ip-"));
    await writeTinyEncoder(join(dir, "image_encoder"));
    await copyFile(
      join(GOLDEN, "ip_adapter/ip-adapter_sd15_tiny.safetensors"),
      join(dir, "plain.safetensors"),
    );
    await copyFile(
      join(GOLDEN, "ip_adapter_plus/ip-adapter-plus_sd15_tiny.safetensors"),
      join(dir, "plus.safetensors"),
    );
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("lays out [uncond, cond] over the CFG batch as diffusers (golden noise_pred.ip.scale1)", async () => {
    const inputs = await readSafetensors(join(GOLDEN, "ip_adapter/inputs.safetensors"));
    const outputs = await readSafetensors(join(GOLDEN, "ip_adapter/outputs.safetensors"));
    const unet = await UNet2DConditionModel.load(join(GOLDEN, "tiny-sd/unet"), { ipAdapter: true });
    const adapter = await IpAdapterRunner.load(join(dir, "plain.safetensors"), unet);
    try {
      const kv = await adapter.keyValues(inputs.get("image_embeds") as HostTensor, 1);
      const wrapped = ipAdaptedUNet(unet, { uncond: rows(kv, 0), cond: rows(kv, 1) }, { cfg: true });
      const noise = await wrapped.forward({
        sample: inputs.get("sample") as HostTensor<"float32">,
        timestep: tensor("float32", [2], Float32Array.of(420, 420)),
        encoderHiddenStates: inputs.get("encoder_hidden_states") as HostTensor<"float32">,
      });
      expect(maxAbsDiff(noise, outputs.get("noise_pred.ip.scale1") as HostTensor)).toBeLessThan(5e-5);
    } finally {
      await adapter.release();
      await unet.release();
    }
  });

  it("uses zero image_embeds (plain) and the encoder on zero pixel values (plus) for the uncond branch", async () => {
    const unet = await UNet2DConditionModel.load(join(GOLDEN, "tiny-sd/unet"), {
      ipAdapter: true,
      compile: "first-use",
    });
    const ref = gradient(50, 40);
    for (const kind of ["plain", "plus"] as const) {
      const ip = await IpAdapterConditioner.load(unet, { file: join(dir, `${kind}.safetensors`) });
      try {
        expect(ip.kind).toBe(kind);
        const { uncond, cond } = await ip.imageEmbeds([ref, ref]);
        if (kind === "plain") {
          expect(cond.shape).toEqual([1, 2, 40]);
          expect([...new Set(uncond.data)]).toEqual([0]);
        } else {
          expect(cond.shape).toEqual([1, 2, 5, 48]);
          const zeros = await ip.encoder.encode(tensor("float32", [1, 3, 32, 32]));
          expect(
            maxAbsDiff(
              tensor("float32", [1, 5, 48], uncond.data.slice(0, 240)),
              zeros.penultimateHiddenState,
            ),
          ).toBe(0);
        }
        const c = await ip.condition([ref], 0);
        for (const [k, t] of Object.entries(c.cond))
          if (k.startsWith("ip_value.")) expect(Math.max(...t.data.map(Math.abs))).toBe(0);
      } finally {
        await ip.release();
      }
    }
    await unet.release();
  });

  it("refuses an image encoder whose width is not the adapter's", async () => {
    const unet = await UNet2DConditionModel.load(join(GOLDEN, "tiny-sd/unet"), {
      ipAdapter: true,
      compile: "first-use",
    });
    await expect(
      IpAdapterConditioner.load(unet, {
        file: join(dir, "plain.safetensors"),
        imageEncoder: join(GOLDEN, "clip_vision/model"),
      }),
    ).rejects.toThrow(/projection_dim is 40/);
    await expect(IpAdapterConditioner.load(unet, { file: join(dir, "missing.safetensors") })).rejects.toThrow(
      /--ip-adapter/,
    );
    await unet.release();
  });

  it("steadyframe image --ip-adapter: scale 0 gives the plain image exactly, scale 1 changes it", async () => {
    const ref = join(dir, "ref.png");
    await writePngFile(ref, gradient(48, 64));
    const args = (out: string, extra: string[] = []): string[] => [
      "image",
      "--model",
      join(GOLDEN, "tiny-sd"),
      "--prompt",
      "a red car",
      "--width",
      "64",
      "--height",
      "64",
      "--steps",
      "2",
      "--cache-dir",
      join(dir, "cache"),
      "--out",
      out,
      ...extra,
    ];
    const run = async (argv: string[]) => {
      const io = captureIO();
      const code = await main(argv, io);
      return { code, out: io.out(), err: io.err() };
    };
    const outs = ["plain.png", "zero.png", "one.png"].map((f) => join(dir, f)) as [string, string, string];
    const ip = (scale: string): string[] => [
      "--ip-adapter",
      join(dir, "plus.safetensors"),
      "--ip-image",
      ref,
      "--ip-scale",
      scale,
    ];
    for (const [out, extra] of [
      [outs[0], []],
      [outs[1], ip("0")],
      [outs[2], ip("1")],
    ] as const) {
      const r = await run(args(out, [...extra]));
      expect(r.err).not.toMatch(/error/i);
      expect(r.code).toBe(0);
    }
    const [a, b, c] = await Promise.all(outs.map((p) => readFile(p)));
    expect(b?.equals(a as Buffer)).toBe(true);
    expect(c?.equals(a as Buffer)).toBe(false);
    const bad = await run(args(join(dir, "x.png"), ["--ip-image", ref]));
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/--ip-image/);
  });
});
