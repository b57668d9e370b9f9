/**
 * Host-side latent maths of AutoencoderKL: the DiagonalGaussianDistribution the encoder graph
 * parameterises (diffusers models/autoencoders/vae.py, 0.26.3: std = exp(0.5 * logvar), sample = mean
 * + std * randn_tensor(mean.shape, generator)) and the scaling between VAE latents and diffusion
 * latents (latents = sample * scaling_factor; decode(latents / scaling_factor)).
 */
import { InvalidArgumentError } from "../../errors.js";
import { TorchGenerator } from "../../random/torch-generator.js";
import { type HostTensor, shapeToString, shapesEqual, tensor, toFloat32 } from "../../tensor.js";
import { concatBatch } from "../batch.js";

/** The encoder's output: parameters of a diagonal Gaussian over latents, [B, latent_channels, h, w] each. */
export interface LatentDistribution {
  readonly mean: HostTensor;
  /** Already clamped to [-30, 20]. */
  readonly logvar: HostTensor;
}

export interface SampleOptions {
  /**
   * torch-compatible generator(s): one draws the whole batch (`torch.randn(shape, generator=g)`); a
   * list draws item i from generator i, as diffusers' randn_tensor does for a list of generators.
   */
  readonly generator?: TorchGenerator | readonly TorchGenerator[];
  /** Explicit standard-normal noise of the mean's shape (takes precedence over `generator`). */
  readonly noise?: HostTensor;
}

/** std = exp(0.5 * logvar). */
export function posteriorStd(logvar: HostTensor): HostTensor<"float32"> {
  const l = toFloat32(logvar).data;
  return tensor(
    "float32",
    logvar.shape,
    l.map((v) => Math.exp(0.5 * v)),
  );
}

/** Standard-normal noise of `shape` drawn like diffusers' randn_tensor (see SampleOptions.generator). */
export function drawNoise(
  shape: readonly number[],
  generator: TorchGenerator | readonly TorchGenerator[],
): HostTensor<"float32"> {
  if (generator instanceof TorchGenerator) return generator.randn(shape);
  const list = generator;
  const batch = shape[0] ?? 0;
  if (list.length !== batch) {
    throw new InvalidArgumentError(
      "generator",
      `a list of ${batch} generators (one per batch item)`,
      `${list.length} generators`,
    );
  }
  return toFloat32(concatBatch(list.map((g) => g.randn([1, ...shape.slice(1)]))));
}

/** sample = mean + std * noise, with the noise given or drawn (see SampleOptions). */
export function samplePosterior(
  dist: LatentDistribution,
  options: SampleOptions = {},
): HostTensor<"float32"> {
  const shape = dist.mean.shape;
  if (!shapesEqual(dist.logvar.shape, shape)) {
    throw new InvalidArgumentError(
      "logvar",
      `a tensor of the mean's shape ${shapeToString(shape)}`,
      shapeToString(dist.logvar.shape),
    );
  }
  let noise = options.noise;
  if (noise === undefined) {
    if (options.generator === undefined) {
      throw new InvalidArgumentError("options", "a generator or explicit noise", "neither", {
        hint: "pass { generator: new TorchGenerator(seed) } for torch-compatible sampling",
      });
    }
    noise = drawNoise(shape, options.generator);
  }
  if (!shapesEqual(noise.shape, shape)) {
    throw new InvalidArgumentError(
      "noise",
      `a tensor of shape ${shapeToString(shape)}`,
      shapeToString(noise.shape),
    );
  }
  const std = posteriorStd(dist.logvar);
  const n = toFloat32(noise).data;
  const m = toFloat32(dist.mean).data;
  const out = new Float32Array(m.length);
  for (let i = 0; i < out.length; i++)
    out[i] = (m[i] ?? NaN) + Math.fround((std.data[i] ?? NaN) * (n[i] ?? NaN));
  return tensor("float32", shape, out);
}

/** Multiplies every element by `factor` in float32 arithmetic (torch: `latents * scaling_factor`). */
export function scaleTensor(t: HostTensor, factor: number): HostTensor<"float32"> {
  const f = Math.fround(factor);
  return tensor(
    "float32",
    t.shape,
    toFloat32(t).data.map((v) => v * f),
  );
}

/** Divides every element by `divisor` in float32 arithmetic (torch: `latents / scaling_factor`). */
export function unscaleTensor(t: HostTensor, divisor: number): HostTensor<"float32"> {
  const d = Math.fround(divisor);
  return tensor(
    "float32",
    t.shape,
    toFloat32(t).data.map((v) => v / d),
  );
}
