/**
 * The Tiny AutoEncoder (TAESD, src/models/vae-tiny) by construction — no reference fixture exists
 * in ../shared/golden: random weights laid out under diffusers' AutoencoderTiny keys as this test
 * enumerates them from diffusers 0.26.3's Sequentials (EncoderTiny / DecoderTiny), a plain-TypeScript
 * forward pass over the same weights (reference convolutions), and the runner compared against it;
 * the original release files (taesd_decoder / taesd_encoder, keys `<i>.*`) give the same numbers;
 * bad weights are reported together; `image --tiny-vae` decodes with it and refuses a size mismatch;
 * `video --tiny-vae` decodes its frames and encodes content-flow's img2img starts with it.
 */
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/cli/main.js";
import { MissingWeightsError } from "../src/errors.js";
import { parseAutoencoderTinyConfig } from "../src/models/vae-tiny/config.js";
import { AutoencoderTiny } from "../src/models/vae-tiny/runner.js";
import { mapStore } from "../src/nn/weight-store.js";
import { type HostTensor, maxAbsDiff } from "../src/tensor.js";
import { writeSafetensors } from "../src/weights/safetensors.js";
import { captureIO } from "./helpers/cli-io.js";
import { mapTensor, randomTensor, refConv2d, refUpsampleNearest } from "./helpers/graph-reference.js";

type F32 = HostTensor<"float32">;
const CH = 8;

/** Keys and shapes of diffusers' AutoencoderTiny with equal channels per level (Sequential indices). */
function tinyKeys(levels: readonly number[], latent = 4): Map<string, number[]> {
  const keys = new Map<string, number[]>();
  const conv = (name: string, out: number, inp: number, bias: boolean): void => {
    keys.set(`${name}.weight`, [out, inp, 3, 3]);
    if (bias) keys.set(`${name}.bias`, [out]);
  };
  const block = (name: string): void => {
    for (const j of [0, 2, 4]) conv(`${name}.conv.${j}`, CH, CH, true);
  };
  // DecoderTiny: conv, act, then per level: blocks, (upsample, conv no bias) or the final conv with bias.
  let i = 0;
  conv(`decoder.layers.${i++}`, CH, latent, true);
  i++; // act
  levels.forEach((n, level) => {
    for (let b = 0; b < n; b++) block(`decoder.layers.${i++}`);
    const last = level === levels.length - 1;
    if (!last) i++; // nn.Upsample
    conv(`decoder.layers.${i++}`, last ? 3 : CH, CH, last);
  });
  // EncoderTiny: per level a conv (stride 2, no bias after the first) and blocks; a last conv to the latents.
  i = 0;
  levels.forEach((n, level) => {
    conv(`encoder.layers.${i++}`, CH, level === 0 ? 3 : CH, level === 0);
    for (let b = 0; b < n; b++) block(`encoder.layers.${i++}`);
  });
  conv(`encoder.layers.${i++}`, latent, CH, true);
  return keys;
}

function randomWeights(keys: Map<string, number[]>): Map<string, F32> {
  let seed = 1;
  return new Map(
    [...keys].map(([k, shape]) => [k, randomTensor(shape, seed++, k.endsWith("bias") ? 0.1 : 0.15)]),
  );
}

const relu = (x: F32): F32 => mapTensor(x, (v) => Math.max(0, v));
const add = (a: F32, b: F32): F32 => mapTensor(a, (v, i) => v + (b.data[i] ?? NaN));

/** The plain forward passes over the same weights. */
function reference(weights: Map<string, F32>, levels: readonly number[]) {
  const w = (k: string): F32 => weights.get(k)!;
  const conv = (x: F32, name: string, stride = 1): F32 =>
    refConv2d(x, w(`${name}.weight`), weights.get(`${name}.bias`) ?? null, {
      stride: [stride, stride],
      pads: [1, 1, 1, 1],
    });
  const block = (x: F32, name: string): F32 =>
    relu(add(conv(relu(conv(relu(conv(x, `${name}.conv.0`)), `${name}.conv.2`)), `${name}.conv.4`), x));
  return {
    decode(z: F32): F32 {
      let h = mapTensor(z, (v) => Math.tanh(v / 3) * 3);
      let i = 0;
      h = relu(conv(h, `decoder.layers.${i++}`));
      i++;
      levels.forEach((n, level) => {
        for (let b = 0; b < n; b++) h = block(h, `decoder.layers.${i++}`);
        if (level < levels.length - 1) {
          i++;
          h = refUpsampleNearest(h, 2);
        }
        h = conv(h, `decoder.layers.${i++}`);
      });
      return mapTensor(h, (v) => v * 2 - 1);
    },
    encode(x: F32): F32 {
      let h = mapTensor(x, (v) => (v + 1) / 2);
      let i = 0;
      levels.forEach((n, level) => {
        h = conv(h, `encoder.layers.${i++}`, level === 0 ? 1 : 2);
        for (let b = 0; b < n; b++) h = block(h, `encoder.layers.${i++}`);
      });
      return conv(h, `encoder.layers.${i++}`);
    },
  };
}

function configFor(levels: readonly number[]) {
  return parseAutoencoderTinyConfig("test config", {
    encoder_block_out_channels: levels.map(() => CH),
    decoder_block_out_channels: levels.map(() => CH),
    num_encoder_blocks: levels,
    num_decoder_blocks: levels,
  }).config;
}

describe("AutoencoderTiny (TAESD)", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "sf-tiny-vae-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const levels = [1, 2, 1];
  const weights = randomWeights(tinyKeys(levels));
  const ref = reference(weights, levels);
  const z = randomTensor([2, 4, 4, 4], 99, 2);
  const image = mapTensor(randomTensor([1, 3, 16, 16], 98), (v) => Math.max(-1, Math.min(1, v)));

  it("decodes and encodes as diffusers' layers do (diffusers keys)", async () => {
    const store = mapStore(weights, "random AutoencoderTiny");
    const vae = await AutoencoderTiny.load({
      config: configFor(levels),
      configName: "test config",
      decoder: { store, weightsId: null },
      encoder: { store, weightsId: null },
    });
    try {
      expect(vae.downsampleFactor).toBe(4);
      expect(vae.scalingFactor).toBe(1);
      const decoded = await vae.decode(z, { batchSize: 1 });
      expect(decoded.shape).toEqual([2, 3, 16, 16]);
      expect(maxAbsDiff(decoded, ref.decode(z))).toBeLessThan(1e-4);
      const latents = await vae.encode(image);
      expect(latents.shape).toEqual([1, 4, 4, 4]);
      expect(maxAbsDiff(latents, ref.encode(image))).toBeLessThan(1e-4);
    } finally {
      await vae.release();
    }
  }, 60_000);

  it("loads the original release files (taesd_decoder / taesd_encoder, keys <i>.*) to the same numbers", async () => {
    const folder = join(dir, "taesd-original");
    await mkdir(folder, { recursive: true });
    const original = (half: "decoder" | "encoder"): Map<string, F32> =>
      new Map(
        [...weights]
          .filter(([k]) => k.startsWith(`${half}.layers.`))
          .map(([k, t]) => {
            const [, i, rest] = /^\w+\.layers\.(\d+)\.(.+)$/.exec(k)!;
            return [`${Number(i) + (half === "decoder" ? 1 : 0)}.${rest}`, t];
          }),
      );
    await writeSafetensors(join(folder, "taesd_decoder.safetensors"), original("decoder"));
    await writeSafetensors(join(folder, "taesd_encoder.safetensors"), original("encoder"));
    // The original files carry no config: a folder gets the diffusers defaults, which these weights do not fit.
    await expect(AutoencoderTiny.load(folder)).rejects.toThrow(MissingWeightsError);
    // With a config.json of the right shape beside a diffusers state dict, the same weights load.
    const diffusersFolder = join(dir, "taesd-diffusers");
    await mkdir(diffusersFolder, { recursive: true });
    await writeSafetensors(join(diffusersFolder, "diffusion_pytorch_model.safetensors"), weights);
    const { writeFile } = await import("node:fs/promises");
    await writeFile(
      join(diffusersFolder, "config.json"),
      JSON.stringify({
        _class_name: "AutoencoderTiny",
        encoder_block_out_channels: levels.map(() => CH),
        decoder_block_out_channels: levels.map(() => CH),
        num_encoder_blocks: levels,
        num_decoder_blocks: levels,
      }),
    );
    const a = await AutoencoderTiny.load(diffusersFolder);
    try {
      expect(maxAbsDiff(await a.decode(z), ref.decode(z))).toBeLessThan(1e-4);
    } finally {
      await a.release();
    }
    // And the original files through the part loader with that config: the key map puts them in place.
    const { resolveAutoencoderTiny } = await import("../src/models/vae-tiny/runner.js");
    const parts = await resolveAutoencoderTiny(folder);
    const b = await AutoencoderTiny.load({ ...parts, config: configFor(levels), configName: "test config" });
    try {
      expect(b.hasEncoder).toBe(true);
      expect(maxAbsDiff(await b.decode(z), ref.decode(z))).toBeLessThan(1e-4);
      expect(maxAbsDiff(await b.encode(image), ref.encode(image))).toBeLessThan(1e-4);
    } finally {
      await b.release();
    }
  }, 60_000);

  it("reports every missing and mis-shaped weight at once, and refuses files that are not TAESD", async () => {
    const broken = new Map(weights);
    broken.delete("decoder.layers.0.bias");
    broken.set("decoder.layers.2.conv.0.weight", randomTensor([CH, CH, 1, 1], 5));
    const error = await AutoencoderTiny.load({
      config: configFor(levels),
      configName: "test config",
      decoder: { store: mapStore(broken, "broken"), weightsId: null },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MissingWeightsError);
    expect(String((error as Error).message)).toMatch(/decoder\.layers\.0\.bias/);
    expect(String((error as Error).message)).toMatch(/decoder\.layers\.2\.conv\.0\.weight/);

    const other = join(dir, "not-taesd.safetensors");
    await writeSafetensors(other, { "model.weight": randomTensor([2, 2], 1) });
    await expect(AutoencoderTiny.load(other)).rejects.toThrow(/--tiny-vae/);
    // A decoder-only file: decode works, encode is refused naming the fix.
    const decoderOnly = await AutoencoderTiny.load({
      config: configFor(levels),
      configName: "test config",
      decoder: { store: mapStore(weights), weightsId: null },
    });
    try {
      await expect(decoderOnly.encode(image)).rejects.toThrow(/taesd_encoder/);
    } finally {
      await decoderOnly.release();
    }
  }, 60_000);

  it("`image --tiny-vae` decodes with it; a tiny autoencoder of another size factor is refused", async () => {
    // tiny-sd's VAE has two levels (factor 2): a two-level TAESD fits it.
    const two = [1, 1];
    const folder = join(dir, "taesd-two-level");
    await mkdir(folder, { recursive: true });
    await writeSafetensors(join(folder, "diffusion_pytorch_model.safetensors"), randomWeights(tinyKeys(two)));
    const { writeFile } = await import("node:fs/promises");
    const config = (levelsOf: number[]) =>
      JSON.stringify({
        _class_name: "AutoencoderTiny",
        encoder_block_out_channels: levelsOf.map(() => CH),
        decoder_block_out_channels: levelsOf.map(() => CH),
        num_encoder_blocks: levelsOf,
        num_decoder_blocks: levelsOf,
      });
    await writeFile(join(folder, "config.json"), config(two));
    const args = (out: string, extra: string[]) => [
      "image",
      "--model",
      "test/fixtures/golden/tiny-sd",
      "--prompt",
      "a red car",
      "--steps",
      "2",
      "--width",
      "32",
      "--height",
      "32",
      "--scheduler",
      "ddim",
      "--out",
      out,
      ...extra,
    ];
    const plainOut = join(dir, "plain.png");
    const tinyOut = join(dir, "tiny.png");
    expect(await main(args(plainOut, []), captureIO())).toBe(0);
    const io = captureIO();
    expect(await main(args(tinyOut, ["--tiny-vae", folder]), io)).toBe(0);
    const [p, t] = await Promise.all([sharp(plainOut).raw().toBuffer(), sharp(tinyOut).raw().toBuffer()]);
    expect(t.length).toBe(32 * 32 * 3);
    expect(Buffer.compare(p, t)).not.toBe(0);

    // `video`: frames decoded by it, and content-flow's img2img starts encoded by its encoder.
    const video = join(dir, "video");
    const videoIo = captureIO();
    const code = await main(
      [
        "video",
        "test/fixtures/videos/car-turn-9f.mp4",
        "--model",
        "test/fixtures/golden/tiny-sd",
        "--prompt",
        "a red car",
        "--controls-from",
        "content-flow",
        "--attention",
        "per-frame",
        "--frames",
        "2",
        "--size",
        "64x64",
        "--steps",
        "2",
        "--tiny-vae",
        folder,
        "--out",
        video,
      ],
      videoIo,
    );
    expect(code, videoIo.err()).toBe(0);
    const run = JSON.parse(await readFile(join(video, "run.json"), "utf8")) as {
      settings: { tinyVae?: string };
    };
    expect(run.settings.tinyVae).toContain("taesd-two-level");

    const wrong = join(dir, "taesd-three-level");
    await mkdir(wrong, { recursive: true });
    await writeSafetensors(join(wrong, "diffusion_pytorch_model.safetensors"), weights);
    await writeFile(join(wrong, "config.json"), config(levels));
    const refused = captureIO();
    expect(await main(args(join(dir, "wrong.png"), ["--tiny-vae", wrong]), refused)).not.toBe(0);
    expect(refused.err()).toMatch(/--tiny-vae/);
    expect(refused.err()).toMatch(/size factor 2/);
  }, 120_000);
});
