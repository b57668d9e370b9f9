/**
 * Per-layer training benchmark (issue 8): for single layers at the shapes of the SD-1.5 UNet at
 * 256x256 (latents 32x32, batch 1) and of the tiny test UNet's training step (latents [4, 4, 32, 32]),
 * the forward pass alone against a training graph: the forward plus src/graph/autodiff's backward
 * (the gradients of every input and weight given an upstream gradient), weights as graph inputs as
 * in src/train (no prepacking). ORT CPU, 1 intra-op thread, process CPU time (user + system) of the
 * fastest of 7 runs, so other processes on the cores disturb it less than wall time.
 * ratio = 3 x forward / train, as bench/train.ts rates the whole UNet (1 = the training graph runs at
 * the forward's FLOP rate; issue 8's goal for the UNet is 0.5).
 *
 *   node --import tsx bench/train-layers.ts [name filter]
 */
import ort from "onnxruntime-node";
import { backward } from "../src/graph/autodiff/index.js";
import { GraphBuilder, type Value } from "../src/graph/builder.js";
import * as op from "../src/graph/ops/index.js";
import { encodeModelInline } from "../src/graph/serialize.js";

interface Layer {
  readonly name: string;
  readonly shapes: readonly (readonly number[])[];
  readonly build: (g: GraphBuilder, xs: readonly Value[]) => Value;
}

const input = (xs: readonly Value[], i: number): Value => xs[i] as Value;

function conv(n: number, c: number, m: number, size: number, k: number, stride = 1): Layer {
  const p = (k - 1) / 2;
  return {
    name: `conv [${n}, ${c}, ${size}, ${size}] -> ${m}, ${k}x${k}${stride > 1 ? ` stride ${stride}` : ""}`,
    shapes: [[n, c, size, size], [m, c, k, k], [m]],
    build: (g, xs) =>
      op.Conv(g, input(xs, 0), input(xs, 1), input(xs, 2), { strides: [stride, stride], pads: [p, p, p, p] }),
  };
}

function attention(b: number, s: number, l: number, c: number, heads: number): Layer {
  return {
    name: `attention [${b}, ${s}, ${c}] x ${l} tokens, ${heads} heads`,
    shapes: [
      [b, s, c],
      [b, l, c],
      [b, l, c],
    ],
    build: (g, xs) => op.MultiHeadAttention(g, input(xs, 0), input(xs, 1), input(xs, 2), { numHeads: heads }),
  };
}

const LAYERS: readonly Layer[] = [
  conv(1, 320, 320, 32, 3),
  conv(1, 640, 640, 32, 3),
  conv(1, 640, 640, 16, 3),
  conv(1, 1280, 1280, 8, 3),
  conv(1, 1280, 1280, 4, 3),
  conv(1, 320, 320, 32, 3, 2),
  conv(1, 640, 320, 32, 1),
  attention(1, 1024, 1024, 320, 8),
  attention(1, 1024, 77, 320, 8),
  attention(1, 256, 256, 640, 8),
  conv(4, 32, 32, 32, 3),
  attention(4, 1024, 1024, 32, 8),
];

/** CPU seconds of the fastest of `runs` runs of the graph on random inputs. */
async function fastestRun(g: GraphBuilder, runs: number): Promise<number> {
  const session = await ort.InferenceSession.create(await encodeModelInline(g), {
    executionProviders: ["cpu"],
    intraOpNumThreads: 1,
    logSeverityLevel: 3,
  });
  const feeds: Record<string, ort.Tensor> = {};
  for (const v of g.inputs) {
    const shape = v.shape.map(Number);
    const data = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => Math.random() - 0.5);
    feeds[v.name] = new ort.Tensor("float32", data, shape);
  }
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < runs; i++) {
    const before = process.cpuUsage();
    await session.run(feeds);
    const used = process.cpuUsage(before);
    best = Math.min(best, (used.user + used.system) / 1e6);
  }
  await session.release();
  return best;
}

const filter = process.argv[2];
for (const layer of LAYERS) {
  if (filter !== undefined && !layer.name.includes(filter)) continue;
  const seconds: number[] = [];
  for (const train of [false, true]) {
    const g = new GraphBuilder({ name: "layer" });
    const xs = layer.shapes.map((s, i) => g.input(`x${i}`, "float32", [...s]));
    const y = layer.build(g, xs);
    if (train) {
      const dy = g.input("dy", "float32", y.shape.map(Number));
      backward(g, [{ value: y, grad: dy }], xs).grads.forEach((gr, i) => g.output(gr, `grad${i}`));
    } else g.output(y, "y");
    seconds.push(await fastestRun(g, 7));
  }
  const [forward = 0, train = 0] = seconds;
  const ms = (s: number): string => `${(s * 1000).toFixed(1)} ms`.padStart(10);
  console.log(
    `${layer.name.padEnd(46)} forward ${ms(forward)}  train ${ms(train)}  ratio ${((3 * forward) / train).toFixed(2)}`,
  );
}
