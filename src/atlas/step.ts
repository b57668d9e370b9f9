/**
 * One Neural Layered Atlases training step (./losses.ts) on ONNX Runtime, optionally data-parallel:
 * with `workers` > 1 the batch is split into equal shards, each shard's graph (the same step graph
 * at batch B/workers) runs in its own session concurrently (onnxruntime-node runs each session on
 * its own native threads), and the per-shard losses and gradients are summed. Every mean in the
 * graph divides by the whole batch's counts (`denominators`), so the sum is the single-process step
 * up to float rounding (summation order).
 */
import { cpus } from "node:os";
import { InvalidArgumentError } from "../errors.js";
import { GraphBuilder } from "../graph/builder.js";
import { type HostTensor, tensor, toFloat32 } from "../tensor.js";
import { type GraphSession, openGraphSession } from "../train/graph-session.js";
import { type SparseRows, sumRows } from "../train/optim/index.js";
import { type AtlasData, batchFeeds, batchTotals } from "./data.js";
import { type AtlasLossConfig, LOSS_NAMES, buildStepGraph } from "./losses.js";
import { type AtlasNets, modelParameterShapes } from "./networks.js";

export interface StepResult {
  /** Every {@link LOSS_NAMES} term of the whole batch. */
  readonly losses: Record<string, number>;
  /**
   * Gradient of the total loss per parameter (state_dict names); a grid table's as the rows the step
   * read ({@link SparseRows}, each row once).
   */
  readonly grads: Map<string, Float32Array | SparseRows>;
}

export interface StepRunner {
  readonly workers: number;
  run(
    params: ReadonlyMap<string, Float32Array>,
    indices: ArrayLike<number>,
    coefficients: Float32Array,
  ): Promise<StepResult>;
  release(): Promise<void>;
}

export interface StepRunnerOptions {
  /** (optional, default 1) shards run concurrently; must divide the batch. */
  readonly workers?: number;
  /** (optional) ONNX Runtime intra-op threads per session (default: cores / workers when workers > 1). */
  readonly threadsPerWorker?: number;
  /** (optional, default true) false: the graph without the global-rigidity points (see losses.ts). */
  readonly globalRigidity?: boolean;
}

/** Opens the step graph(s) for `batch` pixels per step. */
export async function openStepRunner(
  nets: AtlasNets,
  loss: AtlasLossConfig,
  data: AtlasData,
  batch: number,
  options: StepRunnerOptions = {},
): Promise<StepRunner> {
  const workers = options.workers ?? 1;
  if (!Number.isInteger(workers) || workers < 1 || batch % workers !== 0)
    throw new InvalidArgumentError("workers", `a positive integer dividing the batch (${batch})`, workers, {
      hint: "choose --workers so that --batch is a multiple of it",
    });
  const shard = batch / workers;
  const g = new GraphBuilder({ name: "nla_step" });
  const globalRigidity = options.globalRigidity ?? true;
  buildStepGraph(g, nets, { batch: shard, largerDim: data.largerDim }, loss, { globalRigidity });
  const threads =
    options.threadsPerWorker ?? (workers > 1 ? Math.max(1, Math.floor(cpus().length / workers)) : undefined);
  const sessions: GraphSession[] = [];
  try {
    for (let w = 0; w < workers; w++)
      sessions.push(await openGraphSession(g, threads === undefined ? {} : { intraOpNumThreads: threads }));
  } catch (error) {
    for (const s of sessions) await s.release();
    throw error;
  }
  const shapes = modelParameterShapes(nets);
  return {
    workers,
    async run(params, indices, coefficients) {
      if (indices.length !== batch)
        throw new InvalidArgumentError("batch indices", `${batch} indices`, indices.length);
      const totals = batchTotals(data, indices);
      const paramFeeds: Record<string, HostTensor> = {};
      for (const [name, shape] of shapes)
        paramFeeds[name] = tensor("float32", shape, params.get(name) as Float32Array);
      const outs = await Promise.all(
        sessions.map((s, w) => {
          const part = Array.from({ length: shard }, (_, i) => indices[w * shard + i] ?? 0);
          return s.run({
            ...batchFeeds(data, part, loss, coefficients, totals, globalRigidity),
            ...paramFeeds,
          });
        }),
      );
      const losses: Record<string, number> = {};
      for (const l of LOSS_NAMES)
        losses[l] = outs.reduce((a, o) => a + (toFloat32(o[`loss.${l}`] as HostTensor).data[0] ?? NaN), 0);
      const grads = new Map<string, Float32Array | SparseRows>();
      for (const [name, shape] of shapes) {
        if (outs[0]?.[`grad_rows.${name}`] !== undefined) {
          // a grid table: the rows every shard read, summed per row
          const rowSize = shape[1] ?? 1;
          const parts = outs.map((o) => ({
            index: (o[`grad_index.${name}`] as HostTensor).data as BigInt64Array,
            values: toFloat32(o[`grad_rows.${name}`] as HostTensor).data,
          }));
          const total = parts.reduce((a, p) => a + p.index.length, 0);
          const index = new Int32Array(total);
          const values = new Float32Array(total * rowSize);
          let at = 0;
          for (const p of parts) {
            index.set(lowWords(p.index), at);
            values.set(p.values, at * rowSize);
            at += p.index.length;
          }
          grads.set(name, sumRows(index, values, rowSize));
          continue;
        }
        const first = Float32Array.from(toFloat32(outs[0]?.[`grad.${name}`] as HostTensor).data);
        for (const o of outs.slice(1)) {
          const d = toFloat32(o[`grad.${name}`] as HostTensor).data;
          for (let i = 0; i < first.length; i++) first[i] = (first[i] ?? 0) + (d[i] ?? 0);
        }
        grads.set(name, first);
      }
      return { losses, grads };
    },
    async release() {
      for (const s of sessions) await s.release();
    },
  };
}

/**
 * Row numbers from ORT's int64 output as int32, read from the low words (a BigInt per element costs
 * several ms per step at the atlas fit's few hundred thousand rows). Every platform onnxruntime-node
 * runs on is little-endian.
 */
function lowWords(index: BigInt64Array): Int32Array {
  const words = new Int32Array(index.buffer, index.byteOffset, index.length * 2);
  const out = new Int32Array(index.length);
  for (let i = 0; i < out.length; i++) {
    const lo = words[2 * i] as number;
    if (words[2 * i + 1] !== 0 || lo < 0)
      throw new Error(`internal: grid row index ${index[i]} is not in [0, 2^31)`);
    out[i] = lo;
  }
  return out;
}
