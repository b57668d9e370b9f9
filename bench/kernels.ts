/**
 * Kernel rates of this machine, measured in the same run as the UNet: MatMul with a weight
 * initializer (prepacked by ORT, as every Linear in the UNet) and 3x3 Conv at UNet shapes. Each
 * graph is built with GraphBuilder, encoded inline, run on the CPU provider with
 * intra-op threads = os.availableParallelism(); warm-up runs, then the median of N timed runs.
 */
import ort from "onnxruntime-node";
import { GraphBuilder } from "../src/graph/builder.js";
import { countFlops } from "../src/graph/flops.js";
import * as op from "../src/graph/ops/index.js";
import { encodeModelInline } from "../src/graph/serialize.js";
import { tensorSource } from "../src/graph/weight-source.js";
import { type HostTensor, type Shape, numel, tensor } from "../src/tensor.js";
import { log, median, round } from "./stats.js";

export interface KernelResult {
  readonly shape: string;
  readonly gflop: number;
  readonly medianMs: number;
  readonly gflops: number;
}

export interface KernelReport {
  readonly threads: number;
  readonly runs: number;
  readonly shapes: readonly KernelResult[];
  /** Best GFLOP/s over the shapes. */
  readonly maxGflops: number;
}

export interface KernelOptions {
  readonly threads: number;
  /** Timed runs per shape (default 7); 2 warm-up runs come first. */
  readonly runs?: number;
}

/** Activation x weight shapes of the SD-1.5 UNet at 512x512 with CFG batch 2 (Linear weights are [in, out]). */
export const MATMUL_SHAPES: readonly (readonly [Shape, Shape])[] = [
  [
    [4096, 320],
    [320, 1280],
  ],
  [
    [2, 4096, 320],
    [320, 320],
  ], // attn1 to_q/to_k/to_v/to_out at 64x64
  [
    [2, 4096, 320],
    [320, 2560],
  ], // GEGLU proj at 64x64
  [
    [2, 4096, 1280],
    [1280, 320],
  ], // ff out at 64x64
  [
    [2, 1024, 640],
    [640, 640],
  ], // attention projections at 32x32
  [
    [2, 256, 1280],
    [1280, 1280],
  ], // attention projections at 16x16
];

/** Input [N, C, H, W] and output channels of 3x3 convs (padding 1) of the same UNet. */
export const CONV_SHAPES: readonly (readonly [Shape, number])[] = [
  [[2, 320, 64, 64], 320],
  [[2, 640, 32, 32], 640],
  [[2, 1280, 16, 16], 1280],
];

function randomTensor(shape: Shape): HostTensor<"float32"> {
  const data = new Float32Array(numel(shape));
  for (let i = 0; i < data.length; i++) data[i] = Math.random() * 2 - 1;
  return tensor("float32", shape, data);
}

async function measure(
  g: GraphBuilder,
  input: Shape,
  label: string,
  options: KernelOptions,
): Promise<KernelResult> {
  const flops = countFlops(g).flops;
  const bytes = await encodeModelInline(g);
  const session = await ort.InferenceSession.create(bytes, {
    executionProviders: ["cpu"],
    intraOpNumThreads: options.threads,
    graphOptimizationLevel: "all",
    logSeverityLevel: 3,
  });
  try {
    const x = randomTensor(input);
    const feeds = { x: new ort.Tensor("float32", x.data, [...input]) };
    for (let i = 0; i < 2; i++) await session.run(feeds);
    const times: number[] = [];
    for (let i = 0; i < (options.runs ?? 7); i++) {
      const started = performance.now();
      await session.run(feeds);
      times.push(performance.now() - started);
    }
    const ms = median(times);
    const result = {
      shape: label,
      gflop: round(flops / 1e9),
      medianMs: round(ms),
      gflops: round(flops / 1e9 / (ms / 1000)),
    };
    log(`${label}: ${result.gflops} GFLOP/s (${result.medianMs} ms)`);
    return result;
  } finally {
    await session.release();
  }
}

function report(shapes: KernelResult[], options: KernelOptions): KernelReport {
  return {
    threads: options.threads,
    runs: options.runs ?? 7,
    shapes,
    maxGflops: Math.max(...shapes.map((s) => s.gflops)),
  };
}

/** MatMul GFLOP/s per shape in MATMUL_SHAPES (weight as an initializer). */
export async function benchMatMul(options: KernelOptions): Promise<KernelReport> {
  const shapes: KernelResult[] = [];
  for (const [a, b] of MATMUL_SHAPES) {
    const g = new GraphBuilder({ name: "matmul" });
    const x = g.input("x", "float32", a);
    g.output(op.MatMul(g, x, g.initializer("w", tensorSource(randomTensor(b)))), "y");
    shapes.push(await measure(g, a, `[${a.join(", ")}] x [${b.join(", ")}]`, options));
  }
  return report(shapes, options);
}

/** Conv 3x3 (pad 1, with bias) GFLOP/s per shape in CONV_SHAPES. */
export async function benchConv(options: KernelOptions): Promise<KernelReport> {
  const shapes: KernelResult[] = [];
  for (const [input, outC] of CONV_SHAPES) {
    const g = new GraphBuilder({ name: "conv" });
    const x = g.input("x", "float32", input);
    const w = g.initializer("w", tensorSource(randomTensor([outC, input[1] ?? 1, 3, 3])));
    const b = g.initializer("b", tensorSource(randomTensor([outC])));
    g.output(op.Conv(g, x, w, b, { pads: [1, 1, 1, 1] }), "y");
    shapes.push(await measure(g, input, `conv3x3 [${input.join(", ")}] -> ${outC}`, options));
  }
  return report(shapes, options);
}
