/**
 * LoRAs applied *unfused*, with live scales: the model's weights stay the base ones, each LoRA's
 * factors are added to the store under the layer they act on (`<module>.lora_live.<n>.down` / `.up`),
 * and the store carries the low-rank branches (src/nn/low-rank.ts) every model bound to it adds to its
 * Linear and Conv2d layers. Each LoRA file has one scale input (`lora_scale_<file>`) whose value is read
 * from `LiveLoraScales` on every run, so changing a scale needs no new model: the compiled model's
 * identity names the files, not their scales (the fused path, ./store.ts, bakes the scales in).
 */
import { InvalidArgumentError } from "../../errors.js";
import type { LowRankBranch, LowRankBranches } from "../../nn/low-rank.js";
import type { WeightStore } from "../../nn/weight-store.js";
import type { MappedLoraModule } from "./key-map.js";

/** The live scale of every LoRA file of a load, shared by all the models the files touch. */
export class LiveLoraScales {
  private readonly values: number[];

  constructor(initial: readonly number[]) {
    this.values = [...initial];
  }

  /** The scales, by file in load order. */
  get scales(): readonly number[] {
    return [...this.values];
  }

  /** Sets file `index`'s scale; the next run of every model uses it. */
  set(index: number, scale: number): void {
    if (!(Number.isInteger(index) && index >= 0 && index < this.values.length))
      throw new InvalidArgumentError("lora index", `0..${this.values.length - 1}`, index);
    if (!Number.isFinite(scale))
      throw new InvalidArgumentError(`lora ${index} scale`, "a finite number", scale);
    this.values[index] = scale;
  }

  /** The graph input holding file `index`'s scale. */
  static inputName(index: number): string {
    return `lora_scale_${index}`;
  }

  valueOf(input: string): number {
    const m = /^lora_scale_(\d+)$/.exec(input);
    const v = m ? this.values[Number(m[1])] : undefined;
    if (v === undefined) throw new InvalidArgumentError("live input", "a lora_scale_<file> input", input);
    return v;
  }
}

/** A placed LoRA module, the store of its file and the file's index in the load. */
export interface LiveLoraModule {
  readonly module: MappedLoraModule;
  readonly store: WeightStore;
  readonly fileIndex: number;
}

/** `base` plus the factors of `modules` and their branches (`base` itself when there are none). */
export function loraLiveStore(
  base: WeightStore,
  modules: readonly LiveLoraModule[],
  scales: LiveLoraScales,
): WeightStore {
  if (modules.length === 0) return base;
  const branchesOf = new Map<string, LowRankBranch[]>();
  const factors = new Map<string, { store: WeightStore; key: string }>();
  for (const m of modules) {
    const list = branchesOf.get(m.module.module) ?? [];
    const name = `lora_live.${list.length}`;
    list.push({
      name,
      rank: m.module.rank,
      multiplier: m.module.factor,
      scaleInput: LiveLoraScales.inputName(m.fileIndex),
    });
    branchesOf.set(m.module.module, list);
    factors.set(`${m.module.module}.${name}.down`, { store: m.store, key: m.module.downKey });
    factors.set(`${m.module.module}.${name}.up`, { store: m.store, key: m.module.upKey });
  }
  const lowRank: LowRankBranches = {
    forModule: (path) => branchesOf.get(path) ?? [],
    scaleOf: (input) => scales.valueOf(input),
  };
  const files = [...new Set(modules.map((m) => m.module.file))];
  return {
    name: `${base.name} + live LoRA ${files.join(", ")}`,
    keys: function* () {
      yield* base.keys();
      yield* factors.keys();
    },
    info: (key) => {
      const f = factors.get(key);
      return f === undefined ? base.info(key) : f.store.info(f.key);
    },
    source: (key) => {
      const f = factors.get(key);
      return f === undefined ? base.source(key) : f.store.source(f.key);
    },
    ...(base.synthesize ? { synthesize: base.synthesize.bind(base) } : {}),
    lowRank,
  };
}
