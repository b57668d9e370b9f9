/**
 * Original single-file checkpoints (`v1-5-pruned-emaonly.safetensors`, `.ckpt`, lllyasviel ControlNet
 * `.pth`) seen as one diffusers-keyed WeightStore per component. Keys are translated by the LDM key map
 * (./key-maps/ldm.ts) before binding; nothing is probed or guessed by catching errors. Pickled files go
 * through the safe unpickler (./pickle), never through Python.
 */
import { extname } from "node:path";
import { UnsupportedError } from "../errors.js";
import { reshapedSource, rowPartSource } from "../graph/weight-source.js";
import { mapStore, safetensorsStore, type WeightStore } from "../nn/weight-store.js";
import { readTorchStateDict } from "./pickle/index.js";
import { openSafetensors } from "./safetensors.js";
import { mapLdmCheckpoint, type KeyMapping, type LdmComponent, type LdmLayout } from "./key-maps/ldm.js";

const PICKLE_EXTENSIONS = [".ckpt", ".pth", ".pt", ".bin"];

/** Opens a .safetensors file lazily, or a PyTorch checkpoint through the safe unpickler. */
export async function openCheckpointStore(path: string): Promise<WeightStore> {
  const ext = extname(path).toLowerCase();
  if (ext === ".safetensors") return safetensorsStore(await openSafetensors(path));
  if (PICKLE_EXTENSIONS.includes(ext)) return mapStore(await readTorchStateDict(path), path);
  throw new UnsupportedError(`checkpoint file type "${ext || "(none)"}" (${path})`, {
    hint: "use a .safetensors, .ckpt, .pth or .pt file, or a diffusers folder with model_index.json",
  });
}

/** A view of `store` under diffusers names for one component. */
function componentStore(
  store: WeightStore,
  component: LdmComponent,
  mappings: readonly KeyMapping[],
): WeightStore {
  const byKey = new Map(mappings.filter((m) => m.component === component).map((m) => [m.key, m]));
  const squeeze = (shape: readonly number[]): readonly number[] =>
    shape.length === 4 && shape[2] === 1 && shape[3] === 1 ? shape.slice(0, 2) : shape;
  // A stacked source whose first dim does not split evenly is left whole: binding reports its shape.
  const split = (m: KeyMapping, shape: readonly number[]): KeyMapping["rows"] =>
    m.rows !== undefined && shape.length > 0 && (shape[0] ?? 0) % m.rows.of === 0 ? m.rows : undefined;
  return {
    name: `${store.name} (${component})`,
    keys: () => byKey.keys(),
    info: (key) => {
      const m = byKey.get(key);
      const info = m === undefined ? undefined : store.info(m.source);
      if (m === undefined || info === undefined) return undefined;
      const rows = split(m, info.shape);
      if (rows !== undefined) {
        return { dtype: info.dtype, shape: [(info.shape[0] ?? 0) / rows.of, ...info.shape.slice(1)] };
      }
      return m.squeeze1x1 ? { dtype: info.dtype, shape: squeeze(info.shape) } : info;
    },
    source: (key) => {
      const m = byKey.get(key);
      if (m === undefined) return store.source(key);
      const source = store.source(m.source);
      const rows = split(m, source.shape);
      if (rows !== undefined) return rowPartSource(source, rows.part, rows.of);
      return m.squeeze1x1 ? reshapedSource(source, squeeze(source.shape)) : source;
    },
  };
}

export interface SingleFileStores {
  /** Diffusers-keyed stores of the components present in the file. */
  readonly components: ReadonlyMap<LdmComponent, WeightStore>;
  /** Keys under a known prefix that no rule maps (they will be reported as unexpected). */
  readonly unmapped: readonly string[];
  /** Keys skipped on purpose (EMA copies, schedule buffers, position ids). */
  readonly ignored: readonly string[];
}

/** Splits an opened single-file checkpoint into per-component stores under diffusers keys. */
export function splitSingleFile(store: WeightStore, layout: LdmLayout): SingleFileStores {
  const keys = [...store.keys()];
  const result = mapLdmCheckpoint(keys, layout);
  const components = new Map<LdmComponent, WeightStore>();
  for (const component of new Set(result.mappings.map((m) => m.component))) {
    components.set(component, componentStore(store, component, result.mappings));
  }
  return { components, unmapped: result.unmapped, ignored: result.ignored };
}
