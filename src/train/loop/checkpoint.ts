/**
 * Training checkpoints, one folder per save, written atomically (src/util/atomic-write.ts):
 *
 *   <out>/checkpoints/step-000040/
 *     unet/config.json, unet/diffusion_pytorch_model.safetensors   the full UNet in diffusers keys and
 *                                      layout (trained parameters merged into the base weights): a
 *                                      diffusers `unet` component folder (`controlnet/` when a
 *                                      ControlNet is trained; both when they train together)
 *     trainer_state.safetensors        optimiser buffers (`<param>.exp_avg`, ...)
 *     trainer_state.json               step, RNG state (seed + step: see rng.ts), loss history, the
 *                                      run's fingerprint and hyper-parameters
 *
 * A resume reads the newest complete folder (half-written ones carry a hidden temporary name) and
 * refuses a checkpoint whose fingerprint (UNet config, trainable parameters and their shapes, data,
 * batch, seed, objective) differs from the run's, naming the file and every difference.
 */
import { copyFile, readFile, readdir, rm, writeFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { CorruptFileError } from "../../errors.js";
import { type HostTensor, numel, tensor, toFloat32 } from "../../tensor.js";
import { withAtomicDir } from "../../util/atomic-write.js";
import type { TensorFileLike } from "../../nn/weight-store.js";
import { readSafetensors, serializeSafetensors } from "../../weights/safetensors.js";
import type { OptimizerState } from "../optim/index.js";
import { type TrainableParameter, toCheckpointLayout } from "../parameters.js";
import { CheckpointMismatchError } from "./errors.js";

export const CHECKPOINT_FORMAT = "steadyframe-train-1";
export const STATE_JSON = "trainer_state.json";
export const STATE_TENSORS = "trainer_state.safetensors";
export const WEIGHTS = "diffusion_pytorch_model.safetensors";

/** What must be equal for a checkpoint to continue a run exactly. */
export interface RunFingerprint {
  /** The trained component(s): "unet", "controlnet" or "unet+controlnet". */
  readonly component: string;
  /** The parsed UNet config (JSON). */
  readonly unetConfig: string;
  /** The parsed ControlNet config (JSON; "" when no ControlNet is trained). */
  readonly controlnetConfig: string;
  /** Trainable parameters: `name [shape]`. */
  readonly trainable: readonly string[];
  readonly latentShape: readonly number[];
  readonly data: string;
  readonly seed: string;
  readonly prediction: string;
  readonly noiseOffset: number;
  /** Share of captions replaced by the empty prompt (absent in runs before it existed: 0). */
  readonly emptyPrompts?: number;
}

export interface CheckpointRecord {
  readonly format: typeof CHECKPOINT_FORMAT;
  /** Optimisation steps done. */
  readonly step: number;
  /** Counter-based RNG: the next step's generators are derived from (seed, step) alone. */
  readonly rng: { readonly kind: "splitmix64-counter"; readonly seed: string; readonly nextStep: number };
  /** Loss of steps 1..step. */
  readonly losses: readonly number[];
  /** Global gradient norm (before clipping) of steps 1..step. */
  readonly gradNorms: readonly number[];
  readonly fingerprint: RunFingerprint;
  /** Hyper-parameters of the run (informational). */
  readonly hyper: Readonly<Record<string, unknown>>;
}

export interface LoadedCheckpoint {
  readonly dir: string;
  readonly record: CheckpointRecord;
  readonly optimizer: OptimizerState;
  /** Trained parameters in the graph's layout, by name. */
  readonly params: ReadonlyMap<string, Float32Array>;
}

export function checkpointName(step: number): string {
  return `step-${String(step).padStart(6, "0")}`;
}

/** Checkpoint folders under `root`, oldest first. */
export async function listCheckpoints(root: string): Promise<{ step: number; dir: string }[]> {
  const names = await readdir(root).catch(() => [] as string[]);
  return names
    .map((n) => /^step-(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ step: Number(m[1]), dir: join(root, m[0]) }))
    .sort((a, b) => a.step - b.step);
}

/** The graph layout of a checkpoint-layout tensor (inverse of toCheckpointLayout). */
export function fromCheckpointLayout(p: TrainableParameter, t: HostTensor): Float32Array {
  const f = toFloat32(t).data;
  if (!p.transposed) return Float32Array.from(f);
  const [rows = 0, cols = 0] = p.value.shape as readonly number[];
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = f[c * rows + r] ?? 0;
  return out;
}

/** One trained model of a run and where its parameters live in the training graph. */
export interface CheckpointComponent {
  /** Its folder name in the checkpoint and the pipeline ("unet" or "controlnet"). */
  readonly component: string;
  /** Graph key prefix of its parameters ("" or CONTROLNET_PREFIX). */
  readonly prefix: string;
  /** Its config.json, or (configText) the file's contents. */
  readonly configFile: string;
  readonly configText?: string;
  /** The base weights the trained parameters are merged into. */
  readonly baseWeights: TensorFileLike;
}

/** The component a graph parameter belongs to: the one with the longest prefix of its name. */
export function componentOf<T extends { readonly prefix: string }>(
  components: readonly T[],
  name: string,
): T | undefined {
  let best: T | undefined;
  for (const c of components) {
    if (name.startsWith(c.prefix) && (!best || c.prefix.length > best.prefix.length)) best = c;
  }
  return best;
}

export interface SaveCheckpointOptions {
  readonly root: string;
  readonly record: CheckpointRecord;
  /** The trained models (one folder each). */
  readonly components: readonly CheckpointComponent[];
  readonly params: readonly TrainableParameter[];
  /** Current values in the graph's layout. */
  readonly values: ReadonlyMap<string, Float32Array>;
  readonly optimizer: OptimizerState;
  /** (optional, default 2) checkpoints kept; older ones are removed after a save. */
  readonly keep?: number;
}

/** Writes `<root>/step-N` atomically and prunes old checkpoints; returns the folder. */
export async function saveCheckpoint(o: SaveCheckpointOptions): Promise<string> {
  const target = join(o.root, checkpointName(o.record.step));
  await withAtomicDir(
    target,
    async (temp) => {
      for (const c of o.components) {
        const trained = new Map(
          o.params
            .filter((p) => componentOf(o.components, p.name) === c)
            .map((p) => [p.name.slice(c.prefix.length), p]),
        );
        await mkdir(join(temp, c.component));
        if (c.configText === undefined) await copyFile(c.configFile, join(temp, c.component, "config.json"));
        else await writeFile(join(temp, c.component, "config.json"), c.configText);
        const merged = new Map<string, HostTensor>();
        for (const key of c.baseWeights.keys()) {
          const p = trained.get(key);
          const value = p ? o.values.get(p.name) : undefined;
          merged.set(
            key,
            p && value
              ? toCheckpointLayout(p, tensor("float32", p.value.shape as number[], value))
              : await c.baseWeights.read(key),
          );
        }
        await writeFile(join(temp, c.component, WEIGHTS), serializeSafetensors(merged, { format: "pt" }));
      }
      await writeFile(join(temp, STATE_TENSORS), serializeSafetensors(o.optimizer.tensors));
      await writeFile(join(temp, STATE_JSON), `${JSON.stringify(o.record, null, 1)}\n`);
    },
    { canReplace: () => undefined },
  );
  const all = await listCheckpoints(o.root);
  for (const old of all.slice(0, Math.max(0, all.length - (o.keep ?? 2)))) {
    await rm(old.dir, { recursive: true, force: true });
  }
  return target;
}

function differences(saved: RunFingerprint, run: RunFingerprint): string[] {
  const out: string[] = [];
  const show = (v: unknown): string => {
    const s = typeof v === "string" ? v : (JSON.stringify(v) ?? "none");
    return s.length > 60 ? `${s.slice(0, 57)}...` : s;
  };
  if (saved.component !== run.component)
    out.push(`trained component: checkpoint ${saved.component}, this run ${run.component}`);
  for (const [field, what] of [
    ["unetConfig", "UNet"],
    ["controlnetConfig", "ControlNet"],
  ] as const) {
    if (saved[field] === run[field]) continue;
    const parse = (text: string): Record<string, unknown> =>
      text === "" ? {} : (JSON.parse(text) as Record<string, unknown>);
    const a = parse(saved[field]);
    const b = parse(run[field]);
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter(
      (k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]),
    );
    out.push(
      `${what} config (another architecture): ${keys
        .slice(0, 6)
        .map((k) => `${k} ${show(a[k])} vs ${show(b[k])}`)
        .join(", ")}`,
    );
  }
  if (saved.trainable.join("\n") !== run.trainable.join("\n")) {
    const missing = saved.trainable.filter((t) => !run.trainable.includes(t));
    const extra = run.trainable.filter((t) => !saved.trainable.includes(t));
    out.push(
      `trainable parameters: ${saved.trainable.length} in the checkpoint, ${run.trainable.length} in this run` +
        (missing.length ? `; only in the checkpoint: ${missing.slice(0, 3).join(", ")}` : "") +
        (extra.length ? `; only in this run: ${extra.slice(0, 3).join(", ")}` : ""),
    );
  }
  for (const k of ["latentShape", "data", "seed", "prediction", "noiseOffset"] as const) {
    if (JSON.stringify(saved[k]) !== JSON.stringify(run[k]))
      out.push(`${k}: checkpoint ${show(saved[k])}, this run ${show(run[k])}`);
  }
  if ((saved.emptyPrompts ?? 0) !== (run.emptyPrompts ?? 0))
    out.push(`emptyPrompts: checkpoint ${saved.emptyPrompts ?? 0}, this run ${run.emptyPrompts ?? 0}`);
  return out;
}

/** Reads a checkpoint folder and checks it against the run (CheckpointMismatchError when it differs). */
export async function loadCheckpoint(
  dir: string,
  run: RunFingerprint,
  params: readonly TrainableParameter[],
  components: readonly Pick<CheckpointComponent, "component" | "prefix">[],
): Promise<LoadedCheckpoint> {
  const jsonPath = join(dir, STATE_JSON);
  let record: CheckpointRecord;
  try {
    record = JSON.parse(await readFile(jsonPath, "utf8")) as CheckpointRecord;
  } catch (error) {
    throw new CorruptFileError(jsonPath, `not a training state (${String(error)})`, undefined, {
      hint: "remove this checkpoint folder to resume from the one before it, or start a new --out folder",
    });
  }
  if (record.format !== CHECKPOINT_FORMAT || typeof record.step !== "number" || !record.fingerprint) {
    throw new CorruptFileError(jsonPath, `not a ${CHECKPOINT_FORMAT} training state`);
  }
  const diff = differences(record.fingerprint, run);
  if (diff.length > 0) throw new CheckpointMismatchError(jsonPath, diff);
  const values = new Map<string, Float32Array>();
  for (const c of components) {
    const weightsPath = join(dir, c.component, WEIGHTS);
    const weights = await readSafetensors(weightsPath);
    for (const p of params) {
      if (componentOf(components, p.name) !== c) continue;
      const t = weights.get(p.name.slice(c.prefix.length));
      if (!t || numel(t.shape) !== numel(p.storedShape) || t.shape.join() !== p.storedShape.join()) {
        throw new CheckpointMismatchError(weightsPath, [
          `${p.name}: ${t ? `shape [${t.shape.join(", ")}]` : "missing"}, this run [${p.storedShape.join(", ")}]`,
        ]);
      }
      values.set(p.name, fromCheckpointLayout(p, t));
    }
  }
  const stateTensors = await readSafetensors(join(dir, STATE_TENSORS));
  const tensors: Record<string, HostTensor<"float32">> = {};
  for (const [k, t] of stateTensors) tensors[k] = toFloat32(t);
  return { dir, record, optimizer: { step: record.step, tensors }, params: values };
}
