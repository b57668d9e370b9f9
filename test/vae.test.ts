import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { vaeKind } from "../src/conformance/kinds/vae.js";
import { AutoencoderKL } from "../src/models/vae/autoencoder-kl.js";
import { TorchGenerator } from "../src/random/torch-generator.js";
import { ConfigError } from "../src/errors.js";
import { type HostTensor, maxAbsDiff } from "../src/tensor.js";
import { writeSafetensors } from "../src/weights/safetensors.js";
import { GOLDEN, expectOutputsPass, fixtureTensor, openGoldenFixture } from "./helpers/golden-fixture.js";
import { expectClose, expectError } from "./helpers/run-graph.js";

const dir = join(GOLDEN, "vae");
const vaeDir = join(GOLDEN, "tiny-sd/vae");

describe("vae golden fixture (diffusers 0.26.3 AutoencoderKL)", () => {
  let caseJson: Record<string, unknown>;
  let inputs: Map<string, HostTensor>;
  let outputs: Map<string, HostTensor>;
  let vae: AutoencoderKL;
  const tolerance = 5e-5;
  const ref = (name: string): HostTensor => fixtureTensor(outputs.has(name) ? outputs : inputs, name);

  beforeAll(async () => {
    ({ caseJson, inputs, outputs } = await openGoldenFixture(dir));
    vae = await AutoencoderKL.load(vaeDir, { intraOpNumThreads: 1 });
  });
  afterAll(async () => {
    await vae.release();
  });

  it("passes the vae conformance kind: one passing row per output tensor", async () => {
    const rows = await vaeKind.run({ dir, caseJson });
    expectOutputsPass(rows, outputs, tolerance);
  });

  it("runner: encode gives mean/logvar, sample uses the noise, scaling comes from config.json", async () => {
    expect(vae.scalingFactor).toBe(0.18215);
    expect(vae.downsampleFactor).toBe(2);
    const dist = await vae.encode(ref("image"));
    expectClose(dist.mean, ref("encode.mean"), { atol: tolerance, rtol: 0 });
    expectClose(dist.logvar, ref("encode.logvar"), { atol: tolerance, rtol: 0 });
    expectClose(vae.sample(dist, { noise: ref("sample_noise") }), ref("encode.sample"), {
      atol: tolerance,
      rtol: 0,
    });
    const scaled = await vae.encodeLatents(ref("image"), { mode: "mean" });
    expectClose(scaled, ref("encode.scaled_latents"), { atol: tolerance, rtol: 0 });
  });

  it("runner: decode and decodeLatents (= decode(latents / scaling_factor)), whole batch or one item at a time", async () => {
    expectClose(await vae.decode(ref("latent")), ref("decode.sample"), { atol: tolerance, rtol: 0 });
    const latent = ref("latent");
    const scaled = { ...latent, data: Float32Array.from(latent.data as Float32Array, (v) => v * 0.18215) };
    expectClose(await vae.decodeLatents(scaled), ref("decode.sample"), { atol: 1e-4, rtol: 0 });
    // A batch of two different items, decoded whole and frame by frame, gives the same frames.
    const small = ref("latent_small").data as Float32Array;
    const pair = {
      dtype: "float32" as const,
      shape: [2, 4, 16, 16],
      data: Float32Array.from([...(latent.data as Float32Array), ...small]),
    };
    const events: string[] = [];
    const whole = await vae.decode(pair);
    const oneByOne = await vae.decode(pair, { batchSize: 1, onProgress: (e) => events.push(e.status) });
    expect(whole.shape).toEqual([2, 3, 32, 32]);
    expect(maxAbsDiff(whole, oneByOne)).toBeLessThan(1e-5);
    expect(events).toEqual(["start", "progress", "progress", "done"]);
    const second = {
      dtype: "float32" as const,
      shape: [1, 3, 32, 32],
      data: oneByOne.data.slice(3 * 32 * 32),
    };
    expectClose(second, ref("decode.small_latent"), { atol: tolerance, rtol: 0 });
  });

  it("the kind reads the config from case.json when `weights` names a file; unknown outputs fail their row", async () => {
    const tmp = await mkdtemp(join(tmpdir(), "sf-vae-kind-"));
    try {
      await writeSafetensors(join(tmp, "outputs.safetensors"), {
        "decode.sample": ref("decode.sample"),
        "decode.with_magic": ref("decode.sample"),
      });
      await writeSafetensors(join(tmp, "inputs.safetensors"), { latent: ref("latent") });
      const weights = join(vaeDir, "diffusion_pytorch_model.safetensors");
      const rows = await vaeKind.run({
        dir: tmp,
        caseJson: { ...caseJson, weights, outputs_file: { file: "outputs.safetensors" } },
      });
      expect(rows.map((r) => [r.tensor, r.pass])).toEqual([
        ["decode.sample", true],
        ["decode.with_magic", false],
      ]);
      expect(rows[1]?.note).toContain("no latent input for decode.with_magic");
      const noConfig = Object.fromEntries(Object.entries(caseJson).filter(([key]) => key !== "config"));
      await expectError(
        () => vaeKind.run({ dir: tmp, caseJson: { ...noConfig, weights } }),
        ConfigError,
        "E_CONFIG",
        '"config"',
      );
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });

  it("runner: sampling with a torch generator draws torch.randn(mean.shape)", async () => {
    const dist = await vae.encode(ref("image"));
    const a = vae.sample(dist, { generator: new TorchGenerator(42) });
    const noise = new TorchGenerator(42).randn([1, 4, 16, 16]);
    expectClose(a, vae.sample(dist, { noise }), { atol: 0, rtol: 0 });
  });
});
