/**
 * T2I-Adapter (issue 10 item 4): the `t2i_adapter` golden fixture (diffusers 0.26.3 T2IAdapter
 * full_adapter on a control image at latent size 10x9, its features fed to the tiny UNet as
 * `down_intrablock_additional_residuals` at two scales, and the plain UNet at the same size), plus
 * the argument checks and `steadyframe image --t2i-adapter` on the tiny model.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/cli/main.js";
import { runConformance } from "../src/conformance/run.js";
import { InvalidArgumentError, UnsupportedError } from "../src/errors.js";
import { GraphBuilder } from "../src/graph/builder.js";
import { buildT2IAdapter, parseT2IAdapterConfig } from "../src/models/t2i-adapter/index.js";
import { loadT2IAdapter } from "../src/models/t2i-adapter/runner.js";
import { mapStore } from "../src/nn/weight-store.js";
import { WeightScope } from "../src/nn/weights.js";
import { adapterResiduals } from "../src/models/t2i-adapter/runner.js";
import { UNet2DConditionModel } from "../src/models/unet/unet-2d-condition.js";
import { TorchGenerator } from "../src/random/torch-generator.js";
import { type HostTensor, maxAbsDiff, tensor } from "../src/tensor.js";
import { readSafetensors } from "../src/weights/safetensors.js";
import { captureIO } from "./helpers/cli-io.js";
import { runGraph, values } from "./helpers/run-graph.js";
import { GOLDEN } from "./helpers/golden-fixture.js";

const FIXTURE = join(GOLDEN, "t2i_adapter");

describe("t2i_adapter golden fixture (diffusers 0.26.3 T2IAdapter + UNet intrablock residuals)", () => {
  it("passes the t2i_adapter conformance kind: unshuffle, features, base and adapted noise within 5e-5", async () => {
    const results = await runConformance([FIXTURE]);
    const rows = results.flatMap((r) => r.rows);
    for (const r of rows)
      console.log(
        `${r.tensor}: max abs err ${r.maxAbsError.toExponential(2)} (tol ${r.tolerance}) ${r.note ?? ""}`,
      );
    expect(results.map((r) => r.kind)).toEqual(["t2i_adapter"]);
    expect(rows.filter((r) => !r.pass)).toEqual([]);
    const outputs = await readSafetensors(join(FIXTURE, "outputs.safetensors"));
    const tensors = new Set(rows.map((r) => r.tensor));
    for (const name of outputs.keys()) expect(tensors, name).toContain(name);
  });

  it("adapterResiduals scales and repeats each feature for the CFG batch", () => {
    const [r] = adapterResiduals([tensor("float32", [1, 2, 1, 1], Float32Array.of(1, -2))], 0.5, 2);
    expect(r?.shape).toEqual([2, 2, 1, 1]);
    expect([...(r?.data ?? [])]).toEqual([0.5, -1, 0.5, -1]);
    expect(() => adapterResiduals([], NaN)).toThrow(InvalidArgumentError);
    expect(() => adapterResiduals([], 1, 0)).toThrow(InvalidArgumentError);
  });

  it("refuses a control image that is not a multiple of the downscale factor, and features for a UNet without them", async () => {
    const adapter = await loadT2IAdapter(join(FIXTURE, "adapter"));
    const unet = await UNet2DConditionModel.load(join(GOLDEN, "tiny-sd/unet"));
    try {
      await expect(adapter.run(tensor("float32", [1, 3, 81, 72]))).rejects.toThrow(/multiples of 8/);
      const feature = tensor("float32", [2, 32, 2, 2]);
      await expect(
        unet.run({
          sample: tensor("float32", [2, 4, 2, 2]),
          timestep: 1,
          encoderHiddenStates: tensor("float32", [2, 77, 32]),
          downIntrablockAdditionalResiduals: [feature, feature],
        }),
      ).rejects.toThrow(/intrablockResiduals: true/);
    } finally {
      await adapter.release();
      await unet.release();
    }
  });
});

describe("T2I-Adapter light_adapter (diffusers 0.26.3 LightAdapter)", () => {
  it("builds len(channels) + 1 blocks of in_conv / 3x3 resnets / out_conv under diffusers' keys", async () => {
    // in_channels 1, downscale 1 (no unshuffle), channels [4]: mid width 1, one resnet per block.
    const config = parseT2IAdapterConfig("adapter/config.json", {
      in_channels: 1,
      channels: [4],
      num_res_blocks: 1,
      downscale_factor: 1,
      adapter_type: "light_adapter",
    }).config;
    const f = (shape: number[], v: number[]): HostTensor => tensor("float32", shape, Float32Array.from(v));
    const weights: Record<string, HostTensor> = {};
    for (const [b, c0, add] of [
      [0, 1, 0.5],
      [1, 4, -1],
    ] as const) {
      const p = `adapter.body.${b}`;
      weights[`${p}.in_conv.weight`] = f([1, c0, 1, 1], Array<number>(c0).fill(1 / c0));
      weights[`${p}.in_conv.bias`] = f([1], [0]);
      weights[`${p}.resnets.0.block1.weight`] = f([1, 1, 3, 3], Array<number>(9).fill(0));
      weights[`${p}.resnets.0.block1.bias`] = f([1], [2]);
      weights[`${p}.resnets.0.block2.weight`] = f([1, 1, 3, 3], Array<number>(9).fill(0));
      weights[`${p}.resnets.0.block2.bias`] = f([1], [add]);
      weights[`${p}.out_conv.weight`] = f([4, 1, 1, 1], [1, 2, 3, 4]);
      weights[`${p}.out_conv.bias`] = f([4], [0, 0, 0, 0]);
    }
    const g = new GraphBuilder();
    const built = buildT2IAdapter(WeightScope.bind(g, mapStore(weights)), config);
    expect(built.outputs).toEqual(["features.0", "features.1"]);
    // a 3x2 image: feature 0 = (x + 0.5) * [1, 2, 3, 4]; feature 1 = ceil-pooled mean over channels / 4 ... - 1
    const x = [0, 1, 2, 3, 4, 5];
    const out = await runGraph(g, { control_image: f([1, 1, 3, 2], x) });
    const f0 = [1, 2, 3, 4].flatMap((k) => x.map((v) => (v + 0.5) * k));
    expect(values(out["features.0"])).toEqual(f0);
    // channel mean of feature 0 = (x + 0.5) * 2.5; AvgPool 2x2 ceil over a 3x2 image: rows {0,1} and {2}
    const pooled = [((0 + 1 + 2 + 3) / 4 + 0.5) * 2.5, ((4 + 5) / 2 + 0.5) * 2.5];
    expect(out["features.1"]?.shape).toEqual([1, 4, 2, 1]);
    expect(values(out["features.1"])).toEqual([1, 2, 3, 4].flatMap((k) => pooled.map((p) => (p - 1) * k)));
  });
});

describe("T2I-Adapter features and the UNet's down blocks (diffusers pops one per block while any are left)", () => {
  it("fewer features than blocks: the last blocks get none; a leftover shaped like the mid block is refused", async () => {
    const unet = await UNet2DConditionModel.load(join(GOLDEN, "tiny-sd/unet"), { intrablockResiduals: true });
    try {
      const g = new TorchGenerator(5);
      const inputs = {
        sample: g.randn([1, 4, 8, 8]),
        timestep: 500,
        encoderHiddenStates: g.randn([1, 77, 32]),
      };
      const f0 = g.randn([1, 32, 8, 8]);
      const one = await unet.forward({ ...inputs, downIntrablockAdditionalResiduals: [f0] });
      const padded = await unet.forward({
        ...inputs,
        downIntrablockAdditionalResiduals: [f0, tensor("float32", [1, 64, 4, 4])],
      });
      const plain = await unet.forward(inputs);
      expect(maxAbsDiff(one, padded)).toBe(0);
      expect(maxAbsDiff(one, plain)).toBeGreaterThan(1e-4);
      // a third feature at a quarter of the last block's size is dropped, as diffusers ignores it
      const f1 = g.randn([1, 64, 4, 4]);
      const two = await unet.forward({ ...inputs, downIntrablockAdditionalResiduals: [f0, f1] });
      const three = await unet.forward({
        ...inputs,
        downIntrablockAdditionalResiduals: [f0, f1, tensor("float32", [1, 64, 1, 1])],
      });
      expect(maxAbsDiff(two, three)).toBe(0);
      await expect(
        unet.forward({ ...inputs, downIntrablockAdditionalResiduals: [f0, f1, f1] }),
      ).rejects.toThrow(UnsupportedError);
    } finally {
      await unet.release();
    }
  });
});

describe("steadyframe image --t2i-adapter", () => {
  let dir = "";
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "sf-t2i-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const CONTROL = join(GOLDEN, "pipeline_video_controlnet/control_00.png");
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
  const adapter = (scale: string): string[] => [
    "--t2i-adapter",
    join(FIXTURE, "adapter"),
    "--control",
    CONTROL,
    "--control-scale",
    scale,
  ];

  it("scale 0 gives the plain image exactly, scale 1 changes it", async () => {
    const [plain, zero, one] = ["plain.png", "zero.png", "one.png"].map((f) => join(dir, f)) as [
      string,
      string,
      string,
    ];
    for (const [out, extra] of [
      [plain, []],
      [zero, adapter("0")],
      [one, adapter("1")],
    ] as const) {
      const r = await run(args(out, [...extra]));
      expect(r.err).not.toContain("error");
      expect(r.code).toBe(0);
    }
    expect(Buffer.compare(await readFile(plain), await readFile(zero))).toBe(0);
    expect(Buffer.compare(await readFile(plain), await readFile(one))).not.toBe(0);
  });

  it("wants one --control for the adapter, and documents the flag", async () => {
    const r = await run(args(join(dir, "x.png"), ["--t2i-adapter", join(FIXTURE, "adapter")]));
    expect(r.code).not.toBe(0);
    expect(r.err).toContain("one control image per --controlnet and --t2i-adapter (1)");
    expect((await run(["image", "--help"])).out).toContain("--t2i-adapter <dir>");
  });
});
