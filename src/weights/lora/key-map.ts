/**
 * Where each LoRA module goes: the model's module whose `<module>.weight` it changes, found in the
 * model's own key set, and the check that its shapes fit that weight.
 *
 * kohya names are diffusers/transformers module paths with every "." turned into "_", which cannot be
 * undone by string rules alone (`transformer_blocks`, `to_out_0`, `ff_net_0_proj`, `time_emb_proj`,
 * `conv_shortcut`). diffusers 0.26.3 undoes it with a chain of replacements
 * (`lora_conversion_utils._convert_kohya_lora_to_diffusers`); here the map is built the other way
 * round: every weight key of the model, with "." replaced by "_", names its module. A name two
 * modules share is refused as ambiguous rather than guessed.
 *
 * Fit (diffusers `LoRACompatibleLinear` / `LoRACompatibleConv`): a Linear weight [out, in] takes down
 * [r, in] and up [out, r]; a conv weight [out, in, kh, kw] takes down [r, in, kh, kw] (the LoCon down
 * conv has the layer's kernel, stride and padding) and up [out, r, 1, 1]; 1x1 convs and Linear layers
 * accept each other's [.., 1, 1] / 2-D forms (same maths).
 */
import type { WeightStore } from "../../nn/weight-store.js";
import { type Shape, shapeToString } from "../../tensor.js";
import type { LoraFile, LoraFileModule, LoraKeyProblem, LoraModel } from "./reader.js";

/** A module of a LoRA file placed on its model's weight. */
export interface MappedLoraModule extends LoraFileModule {
  readonly file: string;
  /** The diffusers / transformers module path (`down_blocks.0.resnets.0.conv1`). */
  readonly module: string;
  /** The weight key it changes (`<module>.weight`). */
  readonly weightKey: string;
  readonly targetShape: Shape;
  /** alpha / rank (1 without alpha). */
  readonly factor: number;
  /** "linear", "conv1x1", "conv3x3", ... (from the weight's shape). */
  readonly kind: string;
}

/** The module index of one model: weight keys by module path and by kohya name. */
export interface ModelModules {
  readonly name: string;
  /** module path -> weight shape, for every `<module>.weight` of the store. */
  readonly weights: ReadonlyMap<string, Shape>;
  /** kohya name ("." -> "_") -> module paths (more than one = ambiguous). */
  readonly kohya: ReadonlyMap<string, readonly string[]>;
}

/** Indexes the `<module>.weight` keys of a model's store. */
export function indexModelModules(name: string, store: WeightStore): ModelModules {
  const weights = new Map<string, Shape>();
  const kohya = new Map<string, string[]>();
  for (const key of store.keys()) {
    if (!key.endsWith(".weight")) continue;
    const module = key.slice(0, -".weight".length);
    weights.set(module, store.info(key)?.shape ?? []);
    const flat = module.replaceAll(".", "_");
    kohya.set(flat, [...(kohya.get(flat) ?? []), module]);
  }
  return { name, weights, kohya };
}

/** "linear", "conv1x1", "conv3x3" for a weight shape. */
export function layerKind(shape: Shape): string {
  return shape.length === 4
    ? `conv${shape[2]}x${shape[3]}`
    : shape.length === 2
      ? "linear"
      : `${shape.length}-D`;
}

/** [o, i, 1, 1] -> [o, i]: 1x1 convs and Linear layers take the same LoRA. */
function squeezed(shape: Shape): Shape {
  return shape.length === 4 && shape[2] === 1 && shape[3] === 1 ? shape.slice(0, 2) : shape;
}

/** Why the LoRA pair does not fit a weight of `target` shape, or undefined when it does. */
export function misfit(down: Shape, up: Shape, target: Shape): string | undefined {
  const bad = (): string =>
    `down ${shapeToString(down)} / up ${shapeToString(up)} do not fit the weight ${shapeToString(target)}`;
  if (target.length !== 2 && target.length !== 4) return `${bad()} (not a Linear or Conv2d layer)`;
  const rank = down[0];
  const upSqueezed = squeezed(up);
  if (upSqueezed.length !== 2 || upSqueezed[1] !== rank || upSqueezed[0] !== target[0]) return bad();
  const downIn = squeezed(down).slice(1);
  const targetIn = squeezed(target).slice(1);
  if (downIn.length !== targetIn.length || downIn.some((d, i) => d !== targetIn[i])) return bad();
  return undefined;
}

const MODEL_NAMES: Readonly<Record<LoraModel, string>> = {
  unet: "UNet",
  text_encoder: "text encoder",
  text_encoder_2: "second text encoder (SDXL)",
};

/**
 * Places every module of `file` on the given models. Modules that cannot be placed become problems
 * (one per key of the module), never dropped.
 */
export function mapLoraFile(
  file: LoraFile,
  models: Readonly<Partial<Record<LoraModel, ModelModules>>>,
): { readonly mapped: MappedLoraModule[]; readonly problems: LoraKeyProblem[] } {
  const mapped: MappedLoraModule[] = [];
  const problems: LoraKeyProblem[] = [];
  const refuse = (m: LoraFileModule, reason: string): void => {
    for (const key of [m.downKey, m.upKey, m.alphaKey]) {
      if (key !== undefined) problems.push({ file: file.path, key, reason });
    }
  };
  for (const m of file.modules) {
    const model = models[m.model];
    if (model === undefined) {
      refuse(m, `this pipeline has no ${MODEL_NAMES[m.model]}`);
      continue;
    }
    let module: string | undefined;
    if (m.format === "kohya") {
      const candidates = model.kohya.get(m.name) ?? [];
      if (candidates.length > 1) {
        refuse(m, `ambiguous kohya name: ${model.name} modules ${candidates.join(", ")} all spell ${m.name}`);
        continue;
      }
      module = candidates[0];
    } else if (model.weights.has(m.name)) module = m.name;
    if (module === undefined) {
      refuse(
        m,
        `no ${MODEL_NAMES[m.model]} module ${m.format === "kohya" ? `spelled ${m.name}` : m.name} in ${model.name}`,
      );
      continue;
    }
    const targetShape = model.weights.get(module) ?? [];
    const why = misfit(m.downShape, m.upShape, targetShape);
    if (why !== undefined) {
      refuse(m, `${why} of ${module}.weight`);
      continue;
    }
    mapped.push({
      ...m,
      file: file.path,
      module,
      weightKey: `${module}.weight`,
      targetShape,
      factor: m.alpha === undefined ? 1 : m.alpha / m.rank,
      kind: layerKind(targetShape),
    });
  }
  return { mapped, problems };
}
