/**
 * Training benchmark (issue 8): one training step of the full-size SD-1.5 UNet (random weights, fp32)
 * at 256x256 (latents 32x32, batch 1): the forward pass, the epsilon MSE loss and the gradients of
 * every parameter in one ONNX graph (src/graph/autodiff), timed against the inference step of the same
 * UNet at the same shape in the same run, and the training step again with recompute (one checkpoint
 * segment per UNet block) for peak memory. Each model runs in its own child process
 * (train-session.ts) so its peak RSS is its own.
 *
 * FLOPs: the forward count (src/graph/flops.ts) F; a training step with every weight trainable costs
 * about 3F (the backward computes the gradient of each matmul/conv input and weight: 2F), the usual
 * estimate. Throughput = 3F / step time, against F / inference time (goal: >= 50 %).
 */
import { join } from "node:path";
import { checkpointByScope, gradients, outputFlatGradients } from "../src/graph/autodiff/index.js";
import { GraphBuilder, type Value } from "../src/graph/builder.js";
import { ConcreteDimsGraphBuilder, countFlops } from "../src/graph/flops.js";
import * as op from "../src/graph/ops/index.js";
import { writeModel } from "../src/graph/serialize.js";
import { UNet2DConditionModel } from "../src/models/unet/unet-2d-condition.js";
import { randomWeights } from "../src/nn/weight-store.js";
import { WeightScope } from "../src/nn/weights.js";
import { runChild } from "./child.js";
import type { TrainRunJob, TrainRunResult } from "./train-session.js";
import { log, mib, round } from "./stats.js";
import { TEXT_LENGTH, sd15Config } from "./unet.js";

export interface TrainBenchOptions {
  readonly threads: number;
  readonly runs: number;
  /** Folder for the models; created by the caller. */
  readonly dir: string;
  /** Image size of the step (default 256). */
  readonly imageSize?: number;
}

/** Recompute segments: the UNet's top-level blocks. */
export const UNET_BLOCKS = [
  "conv_in",
  "time_embedding",
  "down_blocks.0",
  "down_blocks.1",
  "down_blocks.2",
  "down_blocks.3",
  "mid_block",
  "up_blocks.0",
  "up_blocks.1",
  "up_blocks.2",
  "up_blocks.3",
];

type Mode = "inference" | "train" | "train-recompute";

/** The UNet (and, for training, loss + every parameter's gradient) into `g`. */
export function build(g: GraphBuilder, mode: Mode, latent: number): void {
  const config = sd15Config();
  const w = WeightScope.bind(g, randomWeights({ seed: 0 }));
  const model = new UNet2DConditionModel(w, config);
  const sample = g.input("sample", "float32", [1, 4, latent, latent]);
  const timestep = g.input("timestep", "float32", [1]);
  const context = g.input("encoder_hidden_states", "float32", [
    1,
    TEXT_LENGTH,
    Number(config.cross_attention_dim),
  ]);
  const pred = model.forward({ sample, timestep, encoderHiddenStates: context });
  w.finish();
  if (mode === "inference") {
    g.output(pred, "noise_pred");
    return;
  }
  const target = g.input("target", "float32", [1, 4, latent, latent]);
  const d = op.Sub(g, pred, target);
  const loss = op.ReduceMean(g, op.Mul(g, d, d), [0, 1, 2, 3], { keepdims: false });
  const params: Value[] = g.initializers
    .filter((i) => i.dtype === "float32")
    .map((i) => g.value(i.name))
    .filter((v): v is Value => v !== undefined);
  const { grads } = gradients(
    g,
    loss,
    params,
    mode === "train-recompute" ? { checkpoint: checkpointByScope(UNET_BLOCKS) } : {},
  );
  g.output(loss, "loss");
  outputFlatGradients(g, grads);
}

export interface TrainReport {
  readonly config: string;
  readonly imageSize: number;
  readonly forwardTflop: number;
  readonly trainTflopEstimate: number;
  readonly runs: Record<Mode, TrainRunResult & { nodes: number; buildSeconds: number; writeSeconds: number }>;
  readonly inferenceGflops: number;
  readonly trainGflops: number;
  /** trainGflops / inferenceGflops (goal >= 0.5). */
  readonly trainOverInference: number;
  readonly recomputeGflops: number;
  /** Peak RSS of the training step without / with recompute (MiB). */
  readonly peakRssMiB: { readonly train: number; readonly recompute: number; readonly inference: number };
}

export async function benchTrain(options: TrainBenchOptions): Promise<TrainReport> {
  const imageSize = options.imageSize ?? 256;
  const latent = imageSize / 8;
  const dims = { batch: 1, sequence: TEXT_LENGTH, height: latent, width: latent };
  const counter = new ConcreteDimsGraphBuilder(dims, { name: "unet" });
  build(counter, "inference", latent);
  const flops = countFlops(counter, dims).flops;
  log(`forward ${round(flops / 1e12)} TFLOP at ${imageSize}x${imageSize}, batch 1`);
  const runs = {} as TrainReport["runs"];
  for (const mode of ["inference", "train", "train-recompute"] as const) {
    const t0 = performance.now();
    const g = new GraphBuilder({ name: `unet_${mode}` });
    build(g, mode, latent);
    const buildSeconds = (performance.now() - t0) / 1000;
    const modelPath = join(options.dir, `unet-${mode}.onnx`);
    const t1 = performance.now();
    const written = await writeModel(g, modelPath, { durable: false });
    const writeSeconds = (performance.now() - t1) / 1000;
    log(
      `${mode}: ${g.nodes.length} nodes, ${mib(written.dataBytes)} MiB, written in ${writeSeconds.toFixed(1)} s`,
    );
    const job: TrainRunJob = { label: mode, modelPath, threads: options.threads, runs: options.runs };
    const result = (await runChild("./train-session.ts", job)) as TrainRunResult;
    runs[mode] = {
      ...result,
      nodes: g.nodes.length,
      buildSeconds: round(buildSeconds),
      writeSeconds: round(writeSeconds),
    };
  }
  const inferenceGflops = flops / 1e9 / runs.inference.medianSeconds;
  const trainGflops = (3 * flops) / 1e9 / runs.train.medianSeconds;
  return {
    config:
      "SD-1.5 UNet2DConditionModel (diffusers defaults, cross_attention_dim 768), random weights, fp32, every parameter trainable",
    imageSize,
    forwardTflop: round(flops / 1e12),
    trainTflopEstimate: round((3 * flops) / 1e12),
    runs,
    inferenceGflops: round(inferenceGflops),
    trainGflops: round(trainGflops),
    trainOverInference: round(trainGflops / inferenceGflops, 3),
    recomputeGflops: round((3 * flops) / 1e9 / runs["train-recompute"].medianSeconds),
    peakRssMiB: {
      inference: runs.inference.peakRssMiB,
      train: runs.train.peakRssMiB,
      recompute: runs["train-recompute"].peakRssMiB,
    },
  };
}
