/**
 * LoRAs applied by fusing into the weights at load: read every file (./reader.ts), place every module
 * on the UNet or the text encoder by their own keys (./key-map.ts), and wrap each model's store so the
 * touched weights come out fused (./store.ts). All problems of all files are thrown together in one
 * LoraMismatchError before anything is built. The fused models' cache identity names every LoRA file
 * (path, size, mtime) and its scale, so a cached model is never reused for another LoRA or scale.
 *
 *   const applied = await applyLoras([{ path: "style.safetensors", scale: 0.8 }], {
 *     unet: { store: unetStore, weightsId }, text_encoder: { store: textStore, weightsId: textId },
 *   });
 *   UNet2DConditionModel.load({ config, store: applied.models.unet.store, weightsId: applied.models.unet.weightsId });
 */
import { InvalidArgumentError, LoraMismatchError } from "../../errors.js";
import type { WeightStore } from "../../nn/weight-store.js";
import { type MappedLoraModule, indexModelModules, mapLoraFile, type ModelModules } from "./key-map.js";
import { type LoraFile, type LoraKeyProblem, type LoraModel, readLoraFile } from "./reader.js";
import { LiveLoraScales, loraLiveStore } from "./live.js";
import { type ScaledLoraModule, loraFusedStore } from "./store.js";

export type { LoraFile, LoraFileModule, LoraFormat, LoraKeyProblem, LoraModel } from "./reader.js";
export type { MappedLoraModule, ModelModules } from "./key-map.js";
export { readLoraFile, parseLoraKey } from "./reader.js";
export { indexModelModules, layerKind, mapLoraFile } from "./key-map.js";
export { fuseLoraDeltas, type LoraDelta } from "./fuse.js";
export { loraFusedStore, type ScaledLoraModule } from "./store.js";
export { LiveLoraScales, loraLiveStore, type LiveLoraModule } from "./live.js";

/** Bumped when the reading, mapping or fusion maths change: part of every fused model's identity. */
export const LORA_FUSION_VERSION = 1;

/** A LoRA file and its scale (`--lora file.safetensors:0.8`). */
export interface LoraSetting {
  readonly path: string;
  readonly scale: number;
}

/** A model's weights: its store and its cache identity (null: written afresh, deleted on release). */
export interface ModelWeights {
  readonly store: WeightStore;
  readonly weightsId: string | null;
}

export interface AppliedLoras {
  /** The models given, with their LoRA-fused stores and identities (unchanged when no LoRA touches them). */
  readonly models: Readonly<Partial<Record<LoraModel, ModelWeights>>>;
  /** Every placed module, file by file in the given order. */
  readonly modules: readonly MappedLoraModule[];
  /** With `live: true`: the scales the models read on every run (one per file, in the given order). */
  readonly live?: LiveLoraScales;
}

export interface ApplyLoraOptions {
  /**
   * (optional, default false) true: unfused, each file's scale a live model input (./live.ts) that
   * `AppliedLoras.live` changes without a new model; false: fused into the weights at load (faster).
   */
  readonly live?: boolean;
}

/** Checks a LoRA setting (a finite scale, a path). */
function checkSetting(lora: LoraSetting, i: number): void {
  if (typeof lora.path !== "string" || lora.path === "")
    throw new InvalidArgumentError(`loras[${i}].path`, "a LoRA file path", lora.path);
  if (typeof lora.scale !== "number" || !Number.isFinite(lora.scale))
    throw new InvalidArgumentError(`loras[${i}].scale`, "a finite number (1 = as trained)", lora.scale);
}

/**
 * Reads and places `loras` on `models`; throws one LoraMismatchError listing every key of every file
 * that has no known format, matches no module, or does not fit its weight.
 */
export async function applyLoras(
  loras: readonly LoraSetting[],
  models: Readonly<Partial<Record<LoraModel, ModelWeights>>>,
  options: ApplyLoraOptions = {},
): Promise<AppliedLoras> {
  loras.forEach(checkSetting);
  const files: LoraFile[] = [];
  for (const lora of loras) files.push(await readLoraFile(lora.path));
  const index: Partial<Record<LoraModel, ModelModules>> = {};
  for (const [name, weights] of Object.entries(models) as [LoraModel, ModelWeights][]) {
    index[name] = indexModelModules(weights.store.name, weights.store);
  }
  const problems: LoraKeyProblem[] = [];
  const placed: { file: LoraFile; scale: number; mapped: MappedLoraModule[] }[] = [];
  for (const [i, file] of files.entries()) {
    const { mapped, problems: unplaced } = mapLoraFile(file, index);
    problems.push(...file.problems, ...unplaced);
    placed.push({ file, scale: loras[i]?.scale ?? 1, mapped });
  }
  if (problems.length > 0) throw new LoraMismatchError(problems);

  if (options.live === true) return applyLive(placed, models);
  const result: Partial<Record<LoraModel, ModelWeights>> = {};
  for (const [name, weights] of Object.entries(models) as [LoraModel, ModelWeights][]) {
    const scaled: ScaledLoraModule[] = [];
    const ids: string[] = [];
    for (const p of placed) {
      const mine = p.mapped.filter((m) => m.model === name);
      if (mine.length === 0) continue;
      scaled.push(...mine.map((module) => ({ module, store: p.file.store, scale: p.scale })));
      ids.push(`${p.file.identity}@${p.scale}`);
    }
    result[name] =
      scaled.length === 0
        ? weights
        : {
            store: loraFusedStore(weights.store, scaled),
            weightsId:
              weights.weightsId === null
                ? null
                : `${weights.weightsId}|lora-v${LORA_FUSION_VERSION}:${ids.join("+")}`,
          };
  }
  return { models: result, modules: placed.flatMap((p) => p.mapped) };
}

/** The unfused form: stores with the factors and branches; identities name the files, not the scales. */
function applyLive(
  placed: readonly { file: LoraFile; scale: number; mapped: MappedLoraModule[] }[],
  models: Readonly<Partial<Record<LoraModel, ModelWeights>>>,
): AppliedLoras {
  const live = new LiveLoraScales(placed.map((p) => p.scale));
  const result: Partial<Record<LoraModel, ModelWeights>> = {};
  for (const [name, weights] of Object.entries(models) as [LoraModel, ModelWeights][]) {
    const mine = placed.flatMap((p, fileIndex) =>
      p.mapped.filter((m) => m.model === name).map((module) => ({ module, store: p.file.store, fileIndex })),
    );
    const ids = placed.map((p, i) => `${i}:${p.file.identity}`);
    result[name] =
      mine.length === 0
        ? weights
        : {
            store: loraLiveStore(weights.store, mine, live),
            weightsId:
              weights.weightsId === null
                ? null
                : `${weights.weightsId}|lora-live-v${LORA_FUSION_VERSION}:${ids.join("+")}`,
          };
  }
  return { models: result, modules: placed.flatMap((p) => p.mapped), live };
}
