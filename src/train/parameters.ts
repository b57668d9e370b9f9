/**
 * Trainable parameters of a graph built from a WeightStore: which initializers to train (by
 * diffusers-key patterns), their initial values in the graph's layout, and the way back to the
 * checkpoint layout. Some modules store a weight in another layout than the checkpoint (Linear
 * keeps W^T, see nn/linear.ts); a store wrapped with `trackLayouts` remembers which sources it gave
 * out, so a parameter whose initializer source is not one of them was transformed (transposed, and
 * maybe reshaped from a 1x1 conv) and its gradient is transposed back.
 */
import { GraphError } from "../errors.js";
import type { GraphBuilder, Value } from "../graph/builder.js";
import { type ParameterPattern, promoteToInputs, selectParameters } from "../graph/autodiff/index.js";
import type { WeightSource } from "../graph/weight-source.js";
import type { WeightStore } from "../nn/weight-store.js";
import { type HostTensor, type Shape, numel, tensor, toFloat32 } from "../tensor.js";

/** A store that remembers the sources it handed out (see the file comment). */
export interface LayoutTracker {
  readonly store: WeightStore;
  /** True when `source` is the store's own source (the initializer holds the checkpoint layout). */
  storedAsIs(source: WeightSource): boolean;
}

export function trackLayouts(store: WeightStore): LayoutTracker {
  const given = new Map<string, WeightSource>();
  const known = new Set<WeightSource>();
  const tracked: WeightStore = {
    name: store.name,
    keys: () => store.keys(),
    info: (key) => store.info(key),
    source: (key) => {
      let s = given.get(key);
      if (!s) {
        s = store.source(key);
        given.set(key, s);
        known.add(s);
      }
      return s;
    },
    ...(store.synthesize ? { synthesize: store.synthesize.bind(store) } : {}),
  };
  return { store: tracked, storedAsIs: (source) => known.has(source) };
}

/** One trainable parameter: a graph input of the training graph. */
export interface TrainableParameter {
  /** The diffusers key (= initializer / input name). */
  readonly name: string;
  readonly value: Value;
  /** Shape in the checkpoint. */
  readonly storedShape: Shape;
  /** The graph holds the 2-D transpose of the (reshaped) checkpoint tensor. */
  readonly transposed: boolean;
  /** The initial value in the graph's layout (float32). */
  initial(): Promise<HostTensor<"float32">>;
}

/**
 * Turns the initializers selected by `patterns` (all float ones when undefined) into graph inputs
 * and describes them (`unmatched`: see selectParameters). Call after the forward graph is built and `WeightScope.finish()` passed.
 */
export function makeTrainable(
  g: GraphBuilder,
  tracker: LayoutTracker,
  patterns?: readonly ParameterPattern[],
  unmatched: "refuse" | "ignore" = "refuse",
): TrainableParameter[] {
  const chosen = selectParameters(g, patterns, unmatched);
  return promoteToInputs(
    g,
    chosen.map((c) => c.name),
  ).map(({ record, value }) => {
    const asIs = tracker.storedAsIs(record.source);
    const info = tracker.store.info(record.name);
    const storedShape = info?.shape ?? record.shape;
    if (!asIs && record.shape.length !== 2) {
      throw new GraphError(
        "makeTrainable",
        `${record.name}: a transformed weight of rank ${record.shape.length} is not a transposed matrix`,
      );
    }
    return {
      name: record.name,
      value,
      storedShape,
      transposed: !asIs,
      initial: async () => toFloat32(await record.source.load()),
    };
  });
}

/** A tensor in the graph's layout of `p` -> the checkpoint layout (transpose back, reshape). */
export function toCheckpointLayout(p: TrainableParameter, t: HostTensor): HostTensor<"float32"> {
  const f = toFloat32(t);
  if (!p.transposed) return tensor("float32", p.storedShape, f.data);
  const [rows = 0, cols = 0] = f.shape;
  const out = new Float32Array(numel(f.shape));
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = f.data[r * cols + c] ?? 0;
  return tensor("float32", p.storedShape, out);
}
