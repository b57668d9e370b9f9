/**
 * AutoencoderKL runner: loads a VAE (component folder or config + weight store), builds its encoder
 * and decoder graphs (graphs.ts; weights are checked at load), and runs them on ONNX Runtime. Both are
 * compiled by the runner family's one policy (../model-runner.ts): at load, or with
 * `compile: "first-use"` each on its first call, so a decode-only pipeline never writes the encoder.
 *
 *   const vae = await AutoencoderKL.load("model/vae");
 *   const latents = await vae.encodeLatents(image, { generator: new TorchGenerator(0) }); // * scaling_factor
 *   const frames = await vae.decodeLatents(latents, { batchSize: 1 });                      // / scaling_factor
 */
import { GraphError, InvalidArgumentError, throwIfAborted } from "../../errors.js";
import type { LongTaskOptions } from "../../progress.js";
import { type HostTensor, toFloat16, toFloat32 } from "../../tensor.js";
import { concatBatch, splitBatch } from "../batch.js";
import type { ModelLoadOptions } from "../compiled-graph.js";
import { type ComponentSource, resolveComponent } from "../component-source.js";
import { ModelRunner, RunnerGraph } from "../model-runner.js";
import type { AutoencoderKLConfig } from "./config.js";
import { type AutoencoderKLGraphs, type VaeGraphOptions, buildAutoencoderKLGraphs } from "./graphs.js";
import {
  type LatentDistribution,
  type SampleOptions,
  samplePosterior,
  scaleTensor,
  unscaleTensor,
} from "./posterior.js";
import { type VaeSpec, resolveVaeSpec } from "./validate.js";

export interface AutoencoderKLLoadOptions
  extends ModelLoadOptions, Omit<VaeGraphOptions, "intermediates" | "keyValueTransform"> {}

export interface RunBatchOptions extends LongTaskOptions {
  /**
   * Batch items per session run (default: the whole batch). 1 decodes a video frame by frame, so
   * memory stays bounded by one frame's activations whatever the frame count.
   */
  readonly batchSize?: number;
}

export interface EncodeLatentsOptions extends RunBatchOptions, SampleOptions {
  /** "sample" (default): mean + std * noise; "mean": the distribution's mean (deterministic). */
  readonly mode?: "sample" | "mean";
}

/** The graph names (and model cache folder prefixes) of the two halves. */
const ENCODER = "vae_encoder";
const DECODER = "vae_decoder";

export class AutoencoderKL extends ModelRunner {
  private constructor(
    graphs: readonly RunnerGraph[],
    readonly spec: VaeSpec,
    /** Float dtype of the graphs ("float32" whenever force_upcast is set). */
    readonly dtype: "float32" | "float16",
  ) {
    // The decoder is the main graph (session, modelPath, reused): every pipeline decodes.
    super("AutoencoderKL", graphs);
  }

  /** Loads config and weights, validates the config and binds every weight (errors surface here). */
  static async load(source: ComponentSource, options: AutoencoderKLLoadOptions = {}): Promise<AutoencoderKL> {
    const component = await resolveComponent(source, "diffusers");
    const spec = resolveVaeSpec(component.configName, component.config);
    // diffusers pipelines run a force_upcast VAE in float32 even when the rest is float16.
    const dtype = options.dtype === "float16" && !spec.config.force_upcast ? "float16" : "float32";
    const graphs = buildAutoencoderKLGraphs(spec, component.store, {
      dtype,
      ...(options.attention === undefined ? {} : { attention: options.attention }),
      ...(options.groupNorm === undefined ? {} : { groupNorm: options.groupNorm }),
      ...(options.keyMap === undefined ? {} : { keyMap: options.keyMap }),
    });
    const graph = (name: string, g: AutoencoderKLGraphs["decoder"]): RunnerGraph =>
      new RunnerGraph(name, g, component.weightsId, options);
    return ModelRunner.opened(
      new AutoencoderKL([graph(DECODER, graphs.decoder), graph(ENCODER, graphs.encoder)], spec, dtype),
      options,
    );
  }

  get config(): AutoencoderKLConfig {
    return this.spec.config;
  }

  /** `scaling_factor` from the config: diffusion latents = VAE sample * scaling_factor. */
  get scalingFactor(): number {
    return this.spec.config.scaling_factor;
  }

  /** Image size / latent size: 2 ** (len(block_out_channels) - 1). */
  get downsampleFactor(): number {
    return this.spec.downsampleFactor;
  }

  /** image [B, in_channels, H, W] in [-1, 1] -> the latent distribution (mean, clamped logvar). */
  async encode(image: HostTensor, options: RunBatchOptions = {}): Promise<LatentDistribution> {
    const parts = await this.runBatched(ENCODER, "image", image, ["mean", "logvar"], options);
    return {
      mean: concatBatch(parts.map((p) => p[0] ?? missing("mean"))),
      logvar: concatBatch(parts.map((p) => p[1] ?? missing("logvar"))),
    };
  }

  /** mean + exp(0.5 logvar) * noise (torch-compatible generator or explicit noise). Not scaled. */
  sample(dist: LatentDistribution, options: SampleOptions): HostTensor<"float32"> {
    return samplePosterior(dist, options);
  }

  /** Diffusion latents of an image: encode, sample (or take the mean), multiply by scaling_factor. */
  async encodeLatents(image: HostTensor, options: EncodeLatentsOptions = {}): Promise<HostTensor<"float32">> {
    const dist = await this.encode(image, options);
    const z = options.mode === "mean" ? dist.mean : this.sample(dist, options);
    return scaleTensor(z, this.scalingFactor);
  }

  /** z [B, latent_channels, h, w] as the VAE sees it (not scaled) -> image [B, out_channels, H, W] (not clamped). */
  async decode(z: HostTensor, options: RunBatchOptions = {}): Promise<HostTensor<"float32">> {
    const parts = await this.runBatched(DECODER, "latents", z, ["sample"], options);
    return toFloat32(concatBatch(parts.map((p) => p[0] ?? missing("sample"))));
  }

  /** Decodes diffusion latents: decode(latents / scaling_factor). */
  decodeLatents(latents: HostTensor, options: RunBatchOptions = {}): Promise<HostTensor<"float32">> {
    return this.decode(unscaleTensor(latents, this.scalingFactor), options);
  }

  private async runBatched(
    graph: typeof ENCODER | typeof DECODER,
    input: string,
    x: HostTensor,
    outputs: readonly string[],
    options: RunBatchOptions,
  ): Promise<HostTensor[][]> {
    if (x.shape.length !== 4)
      throw new InvalidArgumentError(
        input,
        "a 4-D tensor [batch, channels, height, width]",
        `shape [${x.shape.join(", ")}]`,
      );
    const feed =
      this.dtype === "float16" ? toFloat16(toFloat32(x)) : x.dtype === "float32" ? x : toFloat32(x);
    const chunks = splitBatch(feed, options.batchSize ?? Math.max(1, x.shape[0] ?? 1));
    const task = `AutoencoderKL ${input === "image" ? "encode" : "decode"}`;
    const session = await this.openSession(graph);
    options.onProgress?.({ status: "start", task, total: chunks.length });
    const results: HostTensor[][] = [];
    for (const [i, chunk] of chunks.entries()) {
      throwIfAborted(options.signal, task);
      const out = await session.run(
        { [input]: chunk },
        { outputs, ...(options.signal === undefined ? {} : { signal: options.signal }) },
      );
      results.push(
        outputs
          .map((name) => out[name] ?? missing(name))
          .map((t) => (t.dtype === "float32" ? t : toFloat32(t))),
      );
      options.onProgress?.({ status: "progress", task, done: i + 1, total: chunks.length });
    }
    options.onProgress?.({ status: "done", task });
    return results;
  }
}

function missing(name: string): never {
  throw new GraphError("AutoencoderKL", `internal: the session returned no output "${name}"`);
}
