/**
 * Training recipes: named, seeded runs checked into the repository (`steadyframe train --recipe
 * demo`). A recipe names its base model, clips with captions, frame size, seed and one or more
 * stages (a VAE, then the UNet, then a Canny ControlNet on top of it, or UNet and ControlNet
 * together, ...). Stage i starts from the diffusers folder stage i-1 wrote; each stage writes
 * `<out>/<stage name>/` (a whole pipeline folder, model_index.json last) and the last one is the
 * result. A "vae" stage trains an AutoencoderKL from scratch (src/train/vae) on the recipe's clips
 * and writes the base model with that VAE, the UNet's sample_size set to the recipe's frame size (or,
 * when the recipe names a `unet` config, a fresh UNet of that config with PyTorch's default init) and
 * no ControlNet (one made for another VAE factor would not fit). Paths are relative to the
 * repository root.
 */
import { cp, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import { fileURLToPath } from "node:url";
import { InvalidArgumentError } from "../../errors.js";
import { readPipelineFolder } from "../../pipeline/components.js";
import { withAtomicDir, writeFileAtomic } from "../../util/atomic-write.js";
import {
  DEMO_VAE_CONFIG,
  DEMO_VAE_TRAINING,
  VAE_TRAINING_FILE,
  type VaeStepInfo,
  trainVae,
  vaeSpecOf,
} from "../vae/index.js";
import { serializeSafetensors } from "../../weights/safetensors.js";
import { initUNet, unetConfigJson } from "../unet-init.js";
import type { TrainingClip } from "./data.js";
import { lossCurveSvg } from "./plot.js";
import { type TrainOptions, type TrainResult, type TrainedModels, trainDiffusion } from "./trainer.js";

export interface RecipeStage {
  /** Folder name of the stage's output under the recipe's --out. */
  readonly name: string;
  readonly train: TrainedModels | "vae";
  /** (optional) the ControlNet to start from: "from-unet", or a folder (see TrainOptions.controlnet). */
  readonly controlnet?: string;
  readonly steps: number;
  readonly lr: number;
  readonly batch: number;
  readonly saveEvery: number;
  readonly trainable?: readonly string[];
  readonly lrScheduler?: TrainOptions["lrScheduler"];
  readonly warmupSteps?: number;
  /** (optional) TrainOptions.emptyPrompts. */
  readonly emptyPrompts?: number;
  /** ("vae" stages) crop size of the VAE's training crops (default DEMO_VAE_TRAINING's). */
  readonly crop?: number;
}

export interface TrainingRecipe {
  readonly name: string;
  readonly description: string;
  /** The base diffusers folder (repository-relative unless absolute). */
  readonly model: string;
  readonly clips: readonly TrainingClip[];
  readonly width: number;
  readonly height: number;
  readonly seed: bigint;
  /** (optional) config.json fields of a fresh UNet the "vae" stage writes instead of the base model's. */
  readonly unet?: Readonly<Record<string, unknown>>;
  readonly stages: readonly RecipeStage[];
}

/** Optimisation steps of the demo's UNet + ControlNet stage. */
const DEMO_JOINT_STEPS = 1500;

/** The recipes `--recipe` knows. */
export const RECIPES: Readonly<Record<string, TrainingRecipe>> = {
  demo: {
    name: "demo",
    description:
      "the demo model of issue 8: a VAE, then the UNet and a Canny ControlNet together, trained on the frames of four bundled 128x128 clips (man-skiing held out)",
    model: "test/fixtures/golden/tiny-sd",
    clips: [
      { path: "data/demo-clips/car-turn-128.mp4", prompt: "a car turning on a mountain road" },
      { path: "data/demo-clips/blackswan-128.mp4", prompt: "a black swan swimming on a pond" },
      { path: "data/demo-clips/wolf-128.mp4", prompt: "a wolf in a forest" },
      { path: "data/demo-clips/truck-128.mp4", prompt: "a truck racing on a dirt track" },
    ],
    width: 128,
    height: 128,
    seed: 20261203n,
    // attention only at the 16x16 and 8x8 latent levels: 1024-token self-attention at 32x32 would
    // cost more than the whole rest of a training step
    unet: {
      in_channels: 4,
      out_channels: 4,
      block_out_channels: [32, 64, 64],
      down_block_types: ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
      up_block_types: ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
      layers_per_block: 2,
      attention_head_dim: 8,
      cross_attention_dim: 32,
      norm_num_groups: 32,
    },
    stages: [
      { name: "vae", train: "vae", steps: 1000, lr: 1e-3, batch: 4, saveEvery: 100, crop: 64 },
      {
        name: "unet-controlnet",
        train: "unet+controlnet",
        controlnet: "from-unet",
        steps: DEMO_JOINT_STEPS,
        lr: 5e-4,
        batch: 4,
        saveEvery: 100,
        lrScheduler: "cosine",
        warmupSteps: 100,
        emptyPrompts: 0.1,
      },
    ],
  },
};

/** The repository root (this file is src/train/loop/recipes.ts, or dist/train/loop/recipes.js). */
export const REPOSITORY_ROOT = fileURLToPath(new URL("../../../", import.meta.url));

export function findRecipe(name: string): TrainingRecipe {
  const recipe = RECIPES[name];
  if (!recipe) throw new InvalidArgumentError("--recipe", `one of ${Object.keys(RECIPES).join(", ")}`, name);
  return recipe;
}

const fromRoot = (p: string): string => (isAbsolute(p) ? p : join(REPOSITORY_ROOT, p));

/** What a caller adds to a recipe run: output, resume, callbacks, runtime options. */
export type RecipeRunOptions = Pick<
  TrainOptions,
  "out" | "resume" | "load" | "onProgress" | "onStep" | "signal" | "cacheDir"
> & {
  /** (optional) another base model than the recipe's. */
  readonly model?: string;
  /** (optional) called when a stage starts. */
  readonly onStage?: (stage: RecipeStage, index: number) => void;
  /** (optional) called after every step of a "vae" stage. */
  readonly onVaeStep?: (info: VaeStepInfo) => void;
};

/** The trainDiffusion options of stage `index` (its base model is the previous stage's output). */
export function stageOptions(recipe: TrainingRecipe, index: number, run: RecipeRunOptions): TrainOptions {
  const stage = recipe.stages[index];
  if (!stage) throw new InvalidArgumentError("stage", `0..${recipe.stages.length - 1}`, index);
  if (stage.train === "vae")
    throw new InvalidArgumentError("stage", "a UNet or ControlNet stage", stage.name);
  const previous = recipe.stages[index - 1];
  return {
    model: previous ? join(run.out, previous.name) : (run.model ?? fromRoot(recipe.model)),
    clips: recipe.clips.map((c) => ({ ...c, path: fromRoot(c.path) })),
    out: join(run.out, stage.name),
    steps: stage.steps,
    lr: stage.lr,
    batch: stage.batch,
    width: recipe.width,
    height: recipe.height,
    seed: recipe.seed,
    train: stage.train,
    saveEvery: stage.saveEvery,
    cacheDir: run.cacheDir ?? join(run.out, "cache"),
    ...(stage.trainable === undefined ? {} : { trainable: stage.trainable }),
    ...(stage.controlnet === undefined ? {} : { controlnet: stage.controlnet }),
    ...(stage.lrScheduler === undefined ? {} : { lrScheduler: stage.lrScheduler }),
    ...(stage.warmupSteps === undefined ? {} : { warmupSteps: stage.warmupSteps }),
    ...(stage.emptyPrompts === undefined ? {} : { emptyPrompts: stage.emptyPrompts }),
    ...(run.load === undefined ? {} : { load: run.load }),
    ...(run.onProgress === undefined ? {} : { onProgress: run.onProgress }),
    ...(run.onStep === undefined ? {} : { onStep: run.onStep }),
    ...(run.signal === undefined ? {} : { signal: run.signal }),
  };
}

/**
 * Runs every stage. With `resume`, a stage whose output folder is complete (model_index.json
 * written, which happens only when it finished) is skipped and the first unfinished one resumes.
 */
export async function runRecipe(recipe: TrainingRecipe, run: RecipeRunOptions): Promise<TrainResult[]> {
  const results: TrainResult[] = [];
  for (const [i, stage] of recipe.stages.entries()) {
    const out = join(run.out, stage.name);
    const done = await stat(join(out, "model_index.json")).then(
      () => true,
      () => false,
    );
    if (run.resume === true && done) continue;
    run.onStage?.(stage, i);
    if (stage.train === "vae") {
      results.push(await runVaeStage(recipe, i, run));
      continue;
    }
    const options = stageOptions(recipe, i, run);
    const started = await stat(join(options.out, "checkpoints")).then(
      () => true,
      () => false,
    );
    results.push(await trainDiffusion({ ...options, resume: run.resume === true && started }));
  }
  return results;
}

/**
 * A "vae" stage: trains the demo VAE from scratch on the recipe's clips (frames scaled to the
 * recipe's size, random crops), then writes the stage's pipeline folder (see the file comment). A VAE
 * already trained for the stage's steps and seed in the work folder is used as it is; an
 * interrupted one restarts from scratch (minutes of work). The VAE's lr is constant, so its save at
 * step N of a longer run equals an N-step run.
 */
async function readVaeRecord(
  dir: string,
): Promise<{ step: number; seed: string; losses: number[] } | undefined> {
  try {
    const record = JSON.parse(await readFile(join(dir, VAE_TRAINING_FILE), "utf8")) as Record<
      string,
      unknown
    >;
    return typeof record["step"] === "number" && Array.isArray(record["losses"])
      ? { step: record["step"], seed: String(record["seed"]), losses: record["losses"] as number[] }
      : undefined;
  } catch {
    return undefined;
  }
}

async function runVaeStage(
  recipe: TrainingRecipe,
  index: number,
  run: RecipeRunOptions,
): Promise<TrainResult> {
  const stage = recipe.stages[index];
  if (!stage) throw new InvalidArgumentError("stage", `0..${recipe.stages.length - 1}`, index);
  const base =
    index === 0 ? (run.model ?? fromRoot(recipe.model)) : join(run.out, recipe.stages[index - 1]?.name ?? "");
  const out = join(run.out, stage.name);
  const work = join(out, "..", `${stage.name}.training`);
  const trainedBefore = await readVaeRecord(join(work, "vae"));
  const result =
    trainedBefore && trainedBefore.step === stage.steps && trainedBefore.seed === String(recipe.seed)
      ? { steps: trainedBefore.step, losses: trainedBefore.losses, secondsPerStep: 0, trainableParameters: 0 }
      : await trainVae({
          ...DEMO_VAE_TRAINING,
          config: DEMO_VAE_CONFIG,
          clips: recipe.clips.map((c) => fromRoot(c.path)),
          out: join(work, "vae"),
          steps: stage.steps,
          lr: stage.lr,
          batch: stage.batch,
          size: stage.crop ?? DEMO_VAE_TRAINING.size,
          frameSize: Math.max(recipe.width, recipe.height),
          seed: recipe.seed,
          saveEvery: stage.saveEvery,
          ...(run.load?.intraOpNumThreads === undefined
            ? {}
            : { load: { intraOpNumThreads: run.load.intraOpNumThreads } }),
          ...(run.onVaeStep === undefined ? {} : { onStep: run.onVaeStep }),
          ...(run.signal === undefined ? {} : { signal: run.signal }),
        });
  const factor = 2 ** (vaeSpecOf(DEMO_VAE_CONFIG).config.block_out_channels.length - 1);
  const folder = await readPipelineFolder(base);
  const replace = { canReplace: () => undefined };
  for (const [name, c] of folder.components) {
    if (name === "vae" || name === "controlnet") continue;
    await withAtomicDir(
      join(out, name),
      async (temp) => {
        await cp(c.dir, temp, { recursive: true });
        if (name !== "unet") return;
        const sampleSize =
          recipe.width === recipe.height
            ? recipe.height / factor
            : [recipe.height / factor, recipe.width / factor];
        if (recipe.unet) {
          const fresh = initUNet(
            { ...recipe.unet, sample_size: sampleSize },
            recipe.seed,
            `recipe ${recipe.name} unet`,
          );
          await rm(temp, { recursive: true, force: true });
          await mkdir(temp);
          await writeFile(
            join(temp, "config.json"),
            `${JSON.stringify(unetConfigJson(fresh.config), null, 2)}\n`,
          );
          await writeFile(
            join(temp, "diffusion_pytorch_model.safetensors"),
            serializeSafetensors(fresh.weights, { format: "pt" }),
          );
          return;
        }
        const config = JSON.parse(await readFile(join(temp, "config.json"), "utf8")) as Record<
          string,
          unknown
        >;
        config["sample_size"] = sampleSize;
        await writeFile(join(temp, "config.json"), `${JSON.stringify(config, null, 2)}\n`);
      },
      replace,
    );
  }
  await withAtomicDir(join(out, "vae"), (temp) => cp(join(work, "vae"), temp, { recursive: true }), replace);
  const index_ = JSON.parse(await readFile(join(base, "model_index.json"), "utf8")) as Record<
    string,
    unknown
  >;
  delete index_["controlnet"];
  if (index_["_class_name"] === "StableDiffusionControlNetPipeline")
    index_["_class_name"] = "StableDiffusionPipeline";
  await writeFileAtomic(
    join(out, "loss.svg"),
    lossCurveSvg(result.losses, `VAE training loss (${result.steps} steps)`),
  );
  await writeFileAtomic(join(out, "model_index.json"), `${JSON.stringify(index_, null, 2)}\n`);
  return {
    out,
    steps: result.steps,
    losses: result.losses,
    gradNorms: [],
    checkpoint: join(work, "vae"),
    secondsPerStep: result.secondsPerStep,
    trainableParameters: result.trainableParameters,
  };
}
