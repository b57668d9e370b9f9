import { describe, expect, it } from "vitest";
import {
  mapTensor,
  randomTensor,
  refConv2d,
  refGroupNorm,
  refLinear,
} from "../../../test/helpers/graph-reference.js";
import { expectClose, runGraph } from "../../../test/helpers/run-graph.js";
import { bindGraph } from "../../../test/helpers/tiny-sd.js";
import { TINY_UNET, tinyUNetNoise } from "../../../test/helpers/tiny-unet.js";
import { ConfigError, UnsupportedError } from "../../errors.js";
import { type WeightStore, mapStore, randomWeights } from "../../nn/weight-store.js";
import { type HostTensor, tensor } from "../../tensor.js";
import { parseUNet2DConditionModelConfig } from "./config.js";
import { buildUNet2DConditionModel } from "./build.js";
import { GaussianFourierProjection } from "./embeddings.js";
import { ResnetBlock2D } from "./resnet.js";
import { resolveEncoder } from "./block-config.js";

async function runTiny(
  json: Record<string, unknown>,
): Promise<{ out: HostTensor; keys: Map<string, number[]> }> {
  const base = randomWeights({ seed: 5 });
  const keys = new Map<string, number[]>();
  const store: WeightStore = {
    ...base,
    synthesize: (key, shape, dtype) => {
      keys.set(key, [...shape]);
      if (!base.synthesize) throw new Error("random weights synthesize");
      return base.synthesize(key, shape, dtype);
    },
  };
  return { out: await tinyUNetNoise(json, store), keys };
}

describe("UNet config variants (diffusers 0.26.3)", () => {
  it('ResnetBlock2D time_embedding_norm "scale_shift": norm2(h) * (1 + scale) + shift', async () => {
    const p = (shape: number[], seed: number): HostTensor<"float32"> => randomTensor(shape, seed, 0.5);
    const weights = {
      "r.norm1.weight": p([4], 1),
      "r.norm1.bias": p([4], 2),
      "r.conv1.weight": p([4, 4, 3, 3], 3),
      "r.conv1.bias": p([4], 4),
      "r.time_emb_proj.weight": p([8, 5], 5),
      "r.time_emb_proj.bias": p([8], 6),
      "r.norm2.weight": p([4], 7),
      "r.norm2.bias": p([4], 8),
      "r.conv2.weight": p([4, 4, 3, 3], 9),
      "r.conv2.bias": p([4], 10),
    };
    const { g, w } = bindGraph(mapStore(weights));
    const block = new ResnetBlock2D(w.at("r"), {
      inChannels: 4,
      tembChannels: 5,
      groups: 2,
      eps: 1e-5,
      timeEmbeddingNorm: "scale_shift",
    });
    expect(w.finish().bound).toBe(10);
    g.output(block.forward(g.input("x", "float32", [2, 4, 3, 3]), g.input("temb", "float32", [2, 5])), "y");
    const [x, temb] = [randomTensor([2, 4, 3, 3], 20), randomTensor([2, 5], 21)];
    const silu = (t: HostTensor<"float32">): HostTensor<"float32"> =>
      mapTensor(t, (v) => v / (1 + Math.exp(-v)));
    const pad = { pads: [1, 1, 1, 1] as const };
    let h = refConv2d(
      silu(refGroupNorm(x, 2, 1e-5, weights["r.norm1.weight"], weights["r.norm1.bias"])),
      weights["r.conv1.weight"],
      weights["r.conv1.bias"],
      pad,
    );
    const t = refLinear(silu(temb), weights["r.time_emb_proj.weight"], weights["r.time_emb_proj.bias"]);
    h = refGroupNorm(h, 2, 1e-5, weights["r.norm2.weight"], weights["r.norm2.bias"]);
    // [B, C, 3, 3]: element i is batch b = i / 36, channel c = (i / 9) % 4; t row b = [scale(4), shift(4)].
    h = mapTensor(h, (v, i) => {
      const b = Math.floor(i / 36);
      const c = Math.floor(i / 9) % 4;
      return v * (1 + (t.data[b * 8 + c] ?? 0)) + (t.data[b * 8 + 4 + c] ?? 0);
    });
    h = refConv2d(silu(h), weights["r.conv2.weight"], weights["r.conv2.bias"], pad);
    const expected = mapTensor(h, (v, i) => (x.data[i] ?? 0) + v);
    expectClose((await runGraph(g, { x, temb }))["y"], expected, { atol: 1e-5 });
  });

  it("GaussianFourierProjection (set_W_to_weight=False, log=False): t * w * 2 * pi, sin then cos", async () => {
    const weight = randomTensor([3], 4);
    for (const flip of [false, true]) {
      const { g, w } = bindGraph(mapStore({ "p.weight": weight }));
      const proj = new GaussianFourierProjection(w.at("p"), { embeddingSize: 3, flipSinToCos: flip });
      w.finish();
      g.output(proj.forward(g, g.input("t", "float32", [2])), "y");
      const t = [981, 0.5];
      const expected = t.flatMap((tv) => {
        const x = [0, 1, 2].map((i) => tv * (weight.data[i] ?? 0) * 2 * Math.PI);
        const [s, c] = [x.map(Math.sin), x.map(Math.cos)];
        return flip ? [...c, ...s] : [...s, ...c];
      });
      const out = await runGraph(g, { t: tensor("float32", [2], Float32Array.from(t)) });
      expectClose(out["y"], tensor("float32", [2, 6], Float32Array.from(expected)), { atol: 2e-3 });
    }
  });

  it('builds resnet_time_scale_shift "scale_shift" (time_emb_proj 2 * out) and changes the output', async () => {
    const shifted = await runTiny({ resnet_time_scale_shift: "scale_shift" });
    expect(shifted.keys.get("down_blocks.0.resnets.0.time_emb_proj.weight")).toEqual([16, 32]);
    expect(shifted.keys.get("mid_block.resnets.1.time_emb_proj.weight")).toEqual([32, 32]);
    expect(shifted.out.shape).toEqual([2, 4, 5, 7]);
    expect([...shifted.out.data].every((v) => Number.isFinite(Number(v)))).toBe(true);
  });

  it('builds time_embedding_type "fourier" (time_proj.weight [dim / 2], linear_1 from dim)', async () => {
    const fourier = await runTiny({ time_embedding_type: "fourier" });
    expect(fourier.keys.get("time_proj.weight")).toEqual([8]);
    expect(fourier.keys.get("time_embedding.linear_1.weight")).toEqual([16, 16]);
    expect(fourier.keys.get("down_blocks.0.resnets.0.time_emb_proj.weight")).toEqual([8, 16]);
    const sized = await runTiny({ time_embedding_type: "fourier", time_embedding_dim: 20 });
    expect(sized.keys.get("time_proj.weight")).toEqual([10]);
    expect(() =>
      buildUNet2DConditionModel(
        bindGraph(randomWeights()).w,
        parseUNet2DConditionModelConfig("c", {
          ...TINY_UNET,
          time_embedding_type: "fourier",
          time_embedding_dim: 9,
        }).config,
      ),
    ).toThrow(ConfigError);
  });

  it('keeps refusing "scale_shift" for models whose resnets are not verified with it', () => {
    const { config } = parseUNet2DConditionModelConfig("c", {
      ...TINY_UNET,
      resnet_time_scale_shift: "scale_shift",
    });
    expect(() => resolveEncoder("ControlNetModel", "c", config)).toThrow(UnsupportedError);
    expect(resolveEncoder("UNet2DConditionModel", "c", config).shared.resnetTimeScaleShift).toBe(
      "scale_shift",
    );
  });
});
