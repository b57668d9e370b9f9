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

/** `store`, with `model_ema.*` keys read from `ema`. */
function emaView(store: WeightStore, ema: WeightStore): WeightStore {
  if (store === ema) return store;
  const isEma = (key: string): boolean => key.startsWith("model_ema.");
  return {
    name: store.name,
    keys: () => store.keys(),
    info: (key) => (isEma(key) ? ema.info(key) : store.info(key)),
    source: (key) => (isEma(key) ? ema.source(key) : store.source(key)),
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

export interface SplitSingleFileOptions {
  /**
   * (optional, default false) diffusers' `extract_ema=True`: when the file holds more than 100
   * `model_ema.*` keys, each UNet weight `model.diffusion_model.<a>.<b>...` is taken from its EMA copy
   * `model_ema.diffusion_model<a><b>...` (dots dropped, as LDM's EMA module names them) instead.
   * `emaStore` (default `store`) is where those keys are looked up.
   */
  readonly extractEma?: boolean;
  readonly emaStore?: WeightStore;
}

/** The EMA key diffusers reads for a `model.diffusion_model.*` key (convert_ldm_unet_checkpoint). */
export function flatEmaKey(key: string): string {
  return `model_ema.${key.split(".").slice(1).join("")}`;
}

/** Splits an opened single-file checkpoint into per-component stores under diffusers keys. */
export function splitSingleFile(
  store: WeightStore,
  layout: LdmLayout,
  options: SplitSingleFileOptions = {},
): SingleFileStores {
  const keys = [...store.keys()];
  const result = mapLdmCheckpoint(keys, layout);
  let mappings = result.mappings;
  if (options.extractEma === true) {
    const ema = options.emaStore ?? store;
    const emaCount = [...ema.keys()].filter((k) => k.startsWith("model_ema")).length;
    if (emaCount > 100) {
      mappings = mappings.map((m) => {
        if (m.component !== "unet" || !m.source.startsWith("model.diffusion_model.")) return m;
        const flat = flatEmaKey(m.source);
        if (ema.info(flat) === undefined) {
          throw new UnsupportedError(`extract_ema: ${store.name} has no EMA copy "${flat}" of ${m.source}`);
        }
        return { ...m, source: flat };
      });
      store = emaView(store, ema);
    }
  }
  const components = new Map<LdmComponent, WeightStore>();
  for (const component of new Set(mappings.map((m) => m.component))) {
    components.set(component, componentStore(store, component, mappings));
  }
  return { components, unmapped: result.unmapped, ignored: result.ignored };
}
