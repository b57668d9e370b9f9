import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { expectError } from "../../../test/helpers/run-graph.js";
import { tinySdStore } from "../../../test/helpers/tiny-sd.js";
import { ConfigError, InvalidArgumentError, MissingWeightsError, UnsupportedError } from "../../errors.js";
import { type WeightStore, randomWeights } from "../../nn/weight-store.js";
import { TorchGenerator } from "../../random/torch-generator.js";
import { type HostTensor, maxAbsDiff, tensor } from "../../tensor.js";
import { AutoencoderKL } from "./autoencoder-kl.js";
import { buildAutoencoderKLGraphs } from "./graphs.js";
import { drawNoise, samplePosterior } from "./posterior.js";
import { resolveVaeSpec } from "./validate.js";

const TINY = {
  block_out_channels: [32, 64],
  down_block_types: ["DownEncoderBlock2D", "DownEncoderBlock2D"],
  up_block_types: ["UpDecoderBlock2D", "UpDecoderBlock2D"],
  latent_channels: 4,
  norm_num_groups: 32,
  layers_per_block: 1,
};
const THREE_LEVELS = {
  ...TINY,
  block_out_channels: [8, 16, 16],
  down_block_types: ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
  up_block_types: ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
  norm_num_groups: 4,
  layers_per_block: 2,
  scaling_factor: 0.13025,
};

function ramp(shape: number[], scale = 1): HostTensor<"float32"> {
  const t = tensor("float32", shape);
  for (let i = 0; i < t.data.length; i++) t.data[i] = Math.sin(i * 0.37) * scale;
  return t;
}

describe("AutoencoderKL graphs on the tiny checkpoint", () => {
  let store: WeightStore;
  beforeAll(async () => {
    store = await tinySdStore("vae");
  });

  it("bind exactly the checkpoint's keys (none missing, none unexpected)", () => {
    const graphs = buildAutoencoderKLGraphs(resolveVaeSpec("tiny", TINY), store);
    const names = [...graphs.encoder.initializers, ...graphs.decoder.initializers].map((i) => i.name).sort();
    expect(names).toEqual([...store.keys()].sort());
    expect(graphs.encoder.inputs.map((v) => v.name)).toEqual(["image"]);
    expect(graphs.encoder.outputs.map((v) => v.name)).toEqual(["mean", "logvar"]);
    expect(graphs.decoder.inputs.map((v) => v.name)).toEqual(["latents"]);
    expect(graphs.decoder.outputs.map((v) => v.name)).toEqual(["sample"]);
  });

  it("report a config that does not fit the checkpoint as one MissingWeightsError", async () => {
    const spec = resolveVaeSpec("tiny", THREE_LEVELS);
    const e = await expectError(
      () => buildAutoencoderKLGraphs(spec, store),
      MissingWeightsError,
      "E_WEIGHTS_MISMATCH",
      "missing",
    );
    expect(e.missing).toContain("encoder.down_blocks.2.resnets.0.conv1.weight");
    expect(e.misshaped.length).toBeGreaterThan(0);
    await expectError(
      () => buildAutoencoderKLGraphs(resolveVaeSpec("tiny", { ...TINY, latent_channels: 8 }), store),
      MissingWeightsError,
      "E_WEIGHTS_MISMATCH",
      "quant_conv.weight is [8,8,1,1], expected [16,16,1,1]",
    );
  });
});

describe("AutoencoderKL config validation", () => {
  it("throws UnsupportedError naming the field for what the 0.26.3 model cannot do", async () => {
    await expectError(
      () => resolveVaeSpec("vae/config.json", { ...TINY, act_fn: "selu" }),
      UnsupportedError,
      "E_UNSUPPORTED",
      'act_fn "selu"',
    );
    await expectError(
      () => resolveVaeSpec("vae/config.json", { ...TINY, use_quant_conv: false }),
      UnsupportedError,
      "E_UNSUPPORTED",
      '"use_quant_conv" = false',
    );
    await expectError(
      () => resolveVaeSpec("vae/config.json", { ...TINY, shift_factor: 0.0609 }),
      UnsupportedError,
      "E_UNSUPPORTED",
      "shift_factor",
    );
    expect(
      resolveVaeSpec("vae/config.json", { ...TINY, use_quant_conv: true, shift_factor: null })
        .downsampleFactor,
    ).toBe(2);
  });

  it("throws ConfigError for inconsistent fields", async () => {
    await expectError(
      () => resolveVaeSpec("c.json", { ...TINY, down_block_types: ["DownEncoderBlock2D"] }),
      ConfigError,
      "E_CONFIG",
      "down_block_types",
    );
    await expectError(
      () => resolveVaeSpec("c.json", { ...TINY, norm_num_groups: 5 }),
      ConfigError,
      "E_CONFIG",
      "block_out_channels[0]",
    );
    await expectError(
      () => resolveVaeSpec("c.json", { ...TINY, scaling_factor: 0 }),
      ConfigError,
      "E_CONFIG",
      "scaling_factor",
    );
  });
});

describe("AutoencoderKL runner on random weights", () => {
  const opened: AutoencoderKL[] = [];
  const load = async (...args: Parameters<typeof AutoencoderKL.load>): Promise<AutoencoderKL> => {
    const vae = await AutoencoderKL.load(...args);
    opened.push(vae);
    return vae;
  };
  afterEach(async () => {
    for (const vae of opened.splice(0)) await vae.release();
  });

  it("builds and runs a 3-level VAE; latent scaling uses the config's scaling_factor", async () => {
    const vae = await load(
      { config: THREE_LEVELS, store: randomWeights({ seed: 3 }) },
      { intraOpNumThreads: 1 },
    );
    expect([vae.scalingFactor, vae.downsampleFactor, vae.dtype]).toEqual([0.13025, 4, "float32"]);
    const image = ramp([2, 3, 32, 24]);
    const dist = await vae.encode(image);
    expect(dist.mean.shape).toEqual([2, 4, 8, 6]);
    expect(dist.logvar.shape).toEqual([2, 4, 8, 6]);
    expect([...(dist.logvar.data as Float32Array)].every((v) => v >= -30 && v <= 20)).toBe(true);
    const latents = await vae.encodeLatents(image, { mode: "mean" });
    expect(
      maxAbsDiff(latents, { ...dist.mean, data: (dist.mean.data as Float32Array).map((v) => v * 0.13025) }),
    ).toBeLessThan(1e-6);
    const decoded = await vae.decodeLatents(latents, { batchSize: 1 });
    expect(decoded.shape).toEqual([2, 3, 32, 24]);
    expect(decoded.data.every((v) => Number.isFinite(v))).toBe(true);
    expect(maxAbsDiff(decoded, await vae.decode(dist.mean))).toBeLessThan(1e-4);
  });

  it("asks for a float16 graph but keeps float32 when force_upcast is set", async () => {
    const vae = await load(
      { config: { ...TINY, force_upcast: true }, store: randomWeights() },
      { dtype: "float16" },
    );
    expect(vae.dtype).toBe("float32");
  });

  it("runs as float16 close to float32 when force_upcast is off", async () => {
    const store = randomWeights({ seed: 5 });
    const config = { ...THREE_LEVELS, force_upcast: false };
    const f32 = await load({ config, store });
    const f16 = await load({ config, store }, { dtype: "float16" });
    expect(f16.dtype).toBe("float16");
    const z = ramp([1, 4, 8, 8]);
    const a = await f32.decode(z);
    const b = await f16.decode(z);
    expect(b.dtype).toBe("float32");
    expect(maxAbsDiff(a, b)).toBeLessThan(5e-2);
  });

  it("rejects images that are not 4-D with InvalidArgumentError", async () => {
    const vae = await load({ config: THREE_LEVELS, store: randomWeights() });
    await expectError(
      () => vae.encode(ramp([3, 32, 32])),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "a 4-D tensor",
    );
  });
});

describe("posterior sampling", () => {
  const dist = { mean: ramp([2, 1, 2, 2]), logvar: ramp([2, 1, 2, 2], 0.5) };

  it("draws one generator's noise for the batch or one generator per item, as randn_tensor does", () => {
    const whole = drawNoise([2, 1, 2, 2], new TorchGenerator(5));
    expect(whole.data).toEqual(new TorchGenerator(5).randn([2, 1, 2, 2]).data);
    const perItem = drawNoise([2, 1, 2, 2], [new TorchGenerator(5), new TorchGenerator(6)]);
    expect(perItem.data.slice(0, 4)).toEqual(new TorchGenerator(5).randn([1, 1, 2, 2]).data);
    expect(perItem.data.slice(4)).toEqual(new TorchGenerator(6).randn([1, 1, 2, 2]).data);
    const sample = samplePosterior(dist, { noise: whole });
    const i = 5;
    expect(sample.data[i]).toBeCloseTo(
      (dist.mean.data[i] ?? 0) + Math.exp(0.5 * (dist.logvar.data[i] ?? 0)) * (whole.data[i] ?? 0),
      6,
    );
  });

  it("throws InvalidArgumentError without noise or generator, or with the wrong number of generators", async () => {
    await expectError(
      () => samplePosterior(dist),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "a generator or explicit noise",
    );
    await expectError(
      () => samplePosterior(dist, { generator: [new TorchGenerator(1)] }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "a list of 2 generators",
    );
    await expectError(
      () => samplePosterior(dist, { noise: ramp([1, 1, 2, 2]) }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "noise",
    );
  });
});
