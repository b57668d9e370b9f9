/**
 * Fresh AutoencoderKL weights as PyTorch initialises the diffusers modules: Conv2d and Linear
 * weights uniform in ±1/sqrt(fan_in) (torch's kaiming_uniform_(a=sqrt(5))), their biases uniform in
 * ±1/sqrt(fan_in) of the layer, GroupNorm scales 1 and shifts 0 (torch.nn.GroupNorm's reset). The
 * keys and shapes are those the graph builder requests; every key draws from its own torch-compatible
 * generator seeded from (seed, key), so values do not depend on the build order.
 */
import { createHash } from "node:crypto";
import { GraphBuilder } from "../../graph/builder.js";
import { lazySource } from "../../graph/weight-source.js";
import { Decoder } from "../../models/vae/decoder.js";
import { Encoder } from "../../models/vae/encoder.js";
import type { VaeSpec } from "../../models/vae/validate.js";
import { Conv2d } from "../../nn/conv.js";
import type { WeightStore } from "../../nn/weight-store.js";
import { WeightScope } from "../../nn/weights.js";
import { TorchGenerator } from "../../random/torch-generator.js";
import { type HostTensor, type Shape, numel, tensor } from "../../tensor.js";

/** Every parameter key of an AutoencoderKL and its checkpoint shape (builds the modules, loads nothing). */
export function vaeParameterShapes(spec: VaeSpec): Map<string, Shape> {
  const shapes = new Map<string, Shape>();
  const recorder = shapeRecorder(shapes);
  const c = spec.config;
  const g = new GraphBuilder({ name: "vae_shapes" });
  const w = WeightScope.bind(g, recorder);
  const side = 2 * spec.downsampleFactor; // the smallest image every level can halve
  const image = g.input("image", "float32", [1, c.in_channels, side, side]);
  new Encoder(w.at("encoder"), spec).forward(image);
  const m = 2 * c.latent_channels;
  new Conv2d(w.at("quant_conv"), { inChannels: m, outChannels: m, kernelSize: 1 });
  new Conv2d(w.at("post_quant_conv"), {
    inChannels: c.latent_channels,
    outChannels: c.latent_channels,
    kernelSize: 1,
  });
  const latents = g.input("latents", "float32", [1, c.latent_channels, 2, 2]);
  new Decoder(w.at("decoder"), spec).forward(latents);
  return shapes;
}

function keySeed(seed: bigint, key: string): bigint {
  const h = createHash("sha256").update(`${seed}:${key}`).digest();
  return h.readBigUInt64LE(0);
}

/** Fresh weights of an AutoencoderKL with diffusers keys (see the file comment). */
export function initVaeWeights(spec: VaeSpec, seed: bigint = 0n): Map<string, HostTensor<"float32">> {
  return initTorchDefault(vaeParameterShapes(spec), seed);
}

/**
 * PyTorch's default initialisation of every parameter in `shapes` (keys of a diffusers model): a
 * tensor whose layer has a matrix or kernel weight (conv, linear; also its bias) draws uniformly in
 * ±1/sqrt(fan_in) from a generator seeded by (seed, key); the rest (GroupNorm/LayerNorm) is weight 1,
 * bias 0.
 */
export function initTorchDefault(
  shapes: ReadonlyMap<string, Shape>,
  seed: bigint = 0n,
): Map<string, HostTensor<"float32">> {
  const out = new Map<string, HostTensor<"float32">>();
  for (const key of [...shapes.keys()].sort()) {
    const shape = shapes.get(key) ?? [];
    const n = numel(shape);
    const dot = key.lastIndexOf(".");
    const owner = key.slice(0, dot);
    const weightShape = shapes.get(`${owner}.weight`) ?? [];
    // A layer with a matrix or kernel weight (conv, linear): torch's default uniform init.
    if (weightShape.length >= 2) {
      const fanIn = numel(weightShape.slice(1));
      const bound = 1 / Math.sqrt(Math.max(1, fanIn));
      const u = new TorchGenerator(keySeed(seed, key)).rand(shape).data;
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = Math.fround(((u[i] ?? 0) * 2 - 1) * bound);
      out.set(key, tensor("float32", shape, data));
    } else {
      out.set(key, tensor("float32", shape, new Float32Array(n).fill(key.endsWith(".weight") ? 1 : 0)));
    }
  }
  return out;
}

/** A store that records the key and shape of every weight a graph builder asks for (loads nothing). */
export function shapeRecorder(shapes: Map<string, Shape>): WeightStore {
  return {
    name: "shape recorder",
    keys: () => [],
    info: () => undefined,
    source: () => {
      throw new Error("internal: the shape recorder only synthesizes");
    },
    synthesize: (key, shape, dtype) => {
      shapes.set(key, [...shape]);
      return lazySource(dtype, shape, () => Promise.resolve(tensor(dtype, shape)));
    },
  };
}
