/**
 * AutoencoderTiny (TAESD) runner: a fast stand-in for a Stable Diffusion VAE (about 1 M parameters
 * per half instead of 34 M/49 M; its decode of a 512x512 frame is a small fraction of the full VAE's).
 * Images are close to the full VAE's, not equal: TAESD is distilled from it. Loads:
 *
 * - a diffusers folder (`config.json` + `diffusion_pytorch_model.safetensors`, e.g. madebyollin/taesd),
 *   keys `encoder.layers.*` / `decoder.layers.*`;
 * - the original release files (`taesd_decoder.safetensors|.pth`, `taesd_encoder.*`), keys `<i>.*` of
 *   their Sequentials (the decoder's index 0 is its clamp, so `<i>` is `decoder.layers.<i-1>`), given
 *   as a file or as a folder holding one or both, with the diffusers default config.
 *
 * A half whose weights are absent is not built: `encode` without an encoder is refused, naming the fix.
 */
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { FileNotFoundError, GraphError, InvalidArgumentError, MissingWeightsError } from "../../errors.js";
import { readJsonFile } from "../../config/parse.js";
import { GraphBuilder } from "../../graph/builder.js";
import type { WeightStore } from "../../nn/weight-store.js";
import { WeightScope, type WeightReport } from "../../nn/weights.js";
import { describeProblems } from "../../nn/weights-hint.js";
import { type HostTensor, toFloat32 } from "../../tensor.js";
import { openCheckpointStore } from "../../weights/single-file.js";
import { concatBatch, splitBatch } from "../batch.js";
import type { ModelLoadOptions } from "../compiled-graph.js";
import { ModelRunner, RunnerGraph } from "../model-runner.js";
import {
  type AutoencoderTinyConfig,
  defaultAutoencoderTinyConfig,
  parseAutoencoderTinyConfig,
} from "./config.js";
import { DecoderTiny, EncoderTiny } from "./model.js";

const DECODER = "taesd_decoder";
const ENCODER = "taesd_encoder";

/** Weights of one or both halves, under diffusers keys (`keyMap` translates the store's). */
interface HalfWeights {
  readonly store: WeightStore;
  readonly keyMap?: (key: string) => string | undefined;
  readonly weightsId: string | null;
}

/** A config and the weights of each half present. */
export interface AutoencoderTinyParts {
  readonly config: AutoencoderTinyConfig;
  readonly configName: string;
  readonly decoder?: HalfWeights;
  readonly encoder?: HalfWeights;
}

const ORIGINAL = /^(\d+)\.(.+)$/;

/** Original-release keys: decoder `<i>.*` -> `decoder.layers.<i-1>.*`, encoder `<i>.*` -> `encoder.layers.<i>.*`. */
export function originalTaesdKeyMap(half: "encoder" | "decoder"): (key: string) => string | undefined {
  return (key) => {
    const m = ORIGINAL.exec(key);
    if (!m) return key;
    const i = Number(m[1]) - (half === "decoder" ? 1 : 0);
    return i < 0 ? key : `${half}.layers.${i}.${m[2]}`;
  };
}

/** Which half an original-release file holds: the encoder starts with a conv at 0, the decoder's 0 is its clamp. */
function originalHalf(store: WeightStore): "encoder" | "decoder" | undefined {
  const keys = new Set(store.keys());
  if (keys.has("0.weight")) return "encoder";
  if (keys.has("1.weight")) return "decoder";
  return undefined;
}

async function fileIdentity(path: string): Promise<string> {
  const info = await stat(path);
  return `${path}:${info.size}:${info.mtimeMs}`;
}

/** Opens one weights file: a diffusers state dict (both halves) or one original-release half. */
async function openFile(path: string): Promise<Omit<AutoencoderTinyParts, "config" | "configName">> {
  const store = await openCheckpointStore(path);
  const weightsId = await fileIdentity(path);
  const keys = [...store.keys()];
  if (keys.some((k) => k.startsWith("decoder.layers.") || k.startsWith("encoder.layers."))) {
    return {
      ...(keys.some((k) => k.startsWith("decoder.")) ? { decoder: { store, weightsId } } : {}),
      ...(keys.some((k) => k.startsWith("encoder.")) ? { encoder: { store, weightsId } } : {}),
    };
  }
  const half = originalHalf(store);
  if (half === undefined)
    throw new InvalidArgumentError(
      "--tiny-vae",
      "TAESD weights (diffusers AutoencoderTiny or taesd_*)",
      path,
      {
        hint: `the file has keys ${keys.slice(0, 4).join(", ")}${keys.length > 4 ? ", ..." : ""}; expected decoder.layers.* or the original 0.weight / 1.weight`,
      },
    );
  return { [half]: { store, weightsId, keyMap: originalTaesdKeyMap(half) } };
}

/** Resolves a path: a diffusers folder, a folder with the original files, or one weights file. */
export async function resolveAutoencoderTiny(path: string): Promise<AutoencoderTinyParts> {
  const info = await stat(path).catch(() => undefined);
  if (info === undefined) throw new FileNotFoundError(path, "tiny autoencoder (TAESD)");
  if (info.isFile())
    return {
      config: defaultAutoencoderTinyConfig(),
      configName: "AutoencoderTiny defaults",
      ...(await openFile(path)),
    };
  const names = await readdir(path);
  if (names.includes("config.json")) {
    const configName = join(path, "config.json");
    const { config } = parseAutoencoderTinyConfig(configName, await readJsonFile(configName, "model config"));
    const weights = ["diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"].find(
      (n) => names.includes(n),
    );
    if (weights === undefined)
      throw new FileNotFoundError(
        join(path, "diffusion_pytorch_model.safetensors"),
        "tiny autoencoder weights",
        {
          hint: `the folder holds ${names.join(", ") || "nothing"}`,
        },
      );
    return { config, configName, ...(await openFile(join(path, weights))) };
  }
  const pick = (half: string): string | undefined =>
    [".safetensors", ".pth", ".pt"].map((ext) => `taesd_${half}${ext}`).find((n) => names.includes(n));
  const [dec, enc] = [pick("decoder"), pick("encoder")];
  if (dec === undefined && enc === undefined)
    throw new FileNotFoundError(join(path, "config.json"), "tiny autoencoder (TAESD)", {
      hint: `give a diffusers AutoencoderTiny folder (config.json + diffusion_pytorch_model.safetensors) or the original taesd_decoder.safetensors / taesd_encoder.safetensors; the folder holds ${names.join(", ") || "nothing"}`,
    });
  return {
    config: defaultAutoencoderTinyConfig(),
    configName: "AutoencoderTiny defaults",
    ...(dec === undefined ? {} : await openFile(join(path, dec))),
    ...(enc === undefined ? {} : await openFile(join(path, enc))),
  };
}

export type AutoencoderTinyLoadOptions = ModelLoadOptions;

export interface TinyRunOptions {
  /** Batch items per session run (default: the whole batch). */
  readonly batchSize?: number;
  readonly signal?: AbortSignal;
}

function buildHalf(
  name: string,
  parts: AutoencoderTinyParts,
  half: "encoder" | "decoder",
): { graph: GraphBuilder; report: WeightReport; storeName: string; keys: string[] } {
  const weights = half === "decoder" ? parts.decoder : parts.encoder;
  if (weights === undefined) throw new GraphError(name, "internal: no weights for this half");
  const graph = new GraphBuilder({ name });
  const w = WeightScope.bind(graph, weights.store, weights.keyMap ? { keyMap: weights.keyMap } : {});
  const c = parts.config;
  if (half === "decoder") {
    const decoder = new DecoderTiny(w.at("decoder"), c, parts.configName);
    const latents = graph.input("latents", "float32", [
      "batch",
      c.latent_channels,
      "latent_height",
      "latent_width",
    ]);
    graph.output(decoder.forward(latents), "sample");
  } else {
    const encoder = new EncoderTiny(w.at("encoder"), c, parts.configName);
    const image = graph.input("image", "float32", ["batch", c.in_channels, "height", "width"]);
    graph.output(encoder.forward(image), "latents");
  }
  const other = half === "decoder" ? "encoder." : "decoder.";
  return {
    graph,
    report: w.report({ ignoreUnexpected: (k) => k.startsWith(other) }),
    storeName: weights.store.name,
    keys: [...weights.store.keys()],
  };
}

export class AutoencoderTiny extends ModelRunner {
  private constructor(
    graphs: readonly RunnerGraph[],
    readonly config: AutoencoderTinyConfig,
    /** True when the encoder half was loaded. */
    readonly hasEncoder: boolean,
  ) {
    super("AutoencoderTiny", graphs);
  }

  /** Loads a tiny autoencoder (see the file comment); every weight problem of both halves in one error. */
  static async load(
    source: string | AutoencoderTinyParts,
    options: AutoencoderTinyLoadOptions = {},
  ): Promise<AutoencoderTiny> {
    const parts = typeof source === "string" ? await resolveAutoencoderTiny(source) : source;
    if (parts.decoder === undefined)
      throw new InvalidArgumentError(
        "--tiny-vae",
        "weights with a decoder (taesd_decoder.* or decoder.layers.*)",
        "an encoder only",
        {
          hint: "give the decoder file (taesd_decoder.safetensors) or the diffusers folder",
        },
      );
    const built = [
      buildHalf(DECODER, parts, "decoder"),
      ...(parts.encoder ? [buildHalf(ENCODER, parts, "encoder")] : []),
    ];
    const missing = built.flatMap((b) => b.report.missing);
    const unexpected = built.flatMap((b) => b.report.unexpected);
    const misshaped = built.flatMap((b) => b.report.misshaped);
    const wrongDType = built.flatMap((b) => b.report.wrongDType);
    if (missing.length + unexpected.length + misshaped.length + wrongDType.length > 0) {
      const problems: WeightReport = { bound: 0, missing, unexpected, misshaped, wrongDType };
      throw new MissingWeightsError(built[0]!.storeName, missing, unexpected, misshaped, {
        hint: `AutoencoderTiny: ${describeProblems(
          problems,
          built.flatMap((b) => b.keys),
        )}`,
      });
    }
    const graphs = built.map(
      (b, i) =>
        new RunnerGraph(
          b.graph.name,
          b.graph,
          (i === 0 ? parts.decoder : parts.encoder)?.weightsId ?? null,
          options,
        ),
    );
    return ModelRunner.opened(
      new AutoencoderTiny(graphs, parts.config, parts.encoder !== undefined),
      options,
    );
  }

  /** `scaling_factor` (1.0 for TAESD: it reads and writes the diffusion latents themselves). */
  get scalingFactor(): number {
    return this.config.scaling_factor;
  }

  /** Image size / latent size. */
  get downsampleFactor(): number {
    return this.config.upsampling_scaling_factor ** (this.config.num_decoder_blocks.length - 1);
  }

  /** Latents divided by scaling_factor [B, C, h, w] -> image [B, 3, H, W] in [-1, 1] (not clamped). */
  async decode(z: HostTensor, options: TinyRunOptions = {}): Promise<HostTensor<"float32">> {
    return this.runBatched(DECODER, "latents", "sample", z, options);
  }

  /** Image [B, 3, H, W] in [-1, 1] -> latents (not yet times scaling_factor); no noise is drawn. */
  async encode(image: HostTensor, options: TinyRunOptions = {}): Promise<HostTensor<"float32">> {
    if (!this.hasEncoder)
      throw new InvalidArgumentError(
        "--tiny-vae",
        "a TAESD with an encoder for img2img starts",
        "a decoder only",
        {
          hint: "add taesd_encoder.safetensors next to the decoder, give the diffusers AutoencoderTiny folder, or drop --tiny-vae",
        },
      );
    return this.runBatched(ENCODER, "image", "latents", image, options);
  }

  private async runBatched(
    graph: string,
    input: string,
    output: string,
    x: HostTensor,
    options: TinyRunOptions,
  ): Promise<HostTensor<"float32">> {
    if (x.shape.length !== 4)
      throw new InvalidArgumentError(
        input,
        "a 4-D tensor [batch, channels, height, width]",
        `shape [${x.shape.join(", ")}]`,
      );
    const session = await this.openSession(graph);
    const parts: HostTensor[] = [];
    for (const chunk of splitBatch(toFloat32(x), options.batchSize ?? Math.max(1, x.shape[0] ?? 1))) {
      const out = await session.run({ [input]: chunk }, options.signal ? { signal: options.signal } : {});
      const t = out[output];
      if (t === undefined)
        throw new GraphError("AutoencoderTiny", `internal: the session returned no output "${output}"`);
      parts.push(t);
    }
    return toFloat32(concatBatch(parts));
  }
}
