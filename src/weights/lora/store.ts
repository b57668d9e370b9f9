/**
 * A WeightStore that hands out LoRA-fused weights: the base store's keys, dtypes and shapes, with the
 * weights LoRAs touch fused (./fuse.ts) when the model is written. Model graph code reads weights by
 * diffusers key through a store (src/nn/weights.ts), so every model takes LoRAs without a change.
 * Fused weights are float32 (diffusers fuses in float32); the graph casts them to its own dtype.
 */
import { lazySource } from "../../graph/weight-source.js";
import type { WeightInfo, WeightStore } from "../../nn/weight-store.js";
import { isFloatDType } from "../../graph/dtype.js";
import { type LoraDelta, fuseLoraDeltas } from "./fuse.js";
import type { MappedLoraModule } from "./key-map.js";

/** A placed LoRA module with the store of its file and the scale it is applied with. */
export interface ScaledLoraModule {
  readonly module: MappedLoraModule;
  /** The LoRA file's tensors. */
  readonly store: WeightStore;
  readonly scale: number;
}

/** `base` with the weights of `modules` fused; `base` itself when `modules` is empty. */
export function loraFusedStore(base: WeightStore, modules: readonly ScaledLoraModule[]): WeightStore {
  if (modules.length === 0) return base;
  const byKey = new Map<string, ScaledLoraModule[]>();
  for (const m of modules) byKey.set(m.module.weightKey, [...(byKey.get(m.module.weightKey) ?? []), m]);
  const files = [...new Set(modules.map((m) => m.module.file))];
  const info = (key: string): WeightInfo | undefined => {
    const i = base.info(key);
    if (i === undefined || !byKey.has(key) || !isFloatDType(i.dtype)) return i;
    return { dtype: "float32", shape: i.shape };
  };
  return {
    name: `${base.name} + LoRA ${files.join(", ")}`,
    keys: () => base.keys(),
    info,
    source: (key) => {
      const patches = byKey.get(key);
      const i = info(key);
      if (patches === undefined || i === undefined) return base.source(key);
      return lazySource(i.dtype, i.shape, async () => {
        const deltas: LoraDelta[] = [];
        for (const p of patches) {
          deltas.push({
            down: await p.store.source(p.module.downKey).load(),
            up: await p.store.source(p.module.upKey).load(),
            multiplier: p.scale * p.module.factor,
          });
        }
        return fuseLoraDeltas(await base.source(key).load(), deltas);
      });
    },
    ...(base.synthesize ? { synthesize: base.synthesize.bind(base) } : {}),
  };
}
