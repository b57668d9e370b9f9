/**
 * Training recipes: named, seeded runs checked into the repository (`steadyframe train --recipe
 * demo`). A recipe names its base model, clips with captions, frame size, seed and one or more
 * stages (train the UNet, then a Canny ControlNet on top of it, ...). Stage i starts from the
 * diffusers folder stage i-1 wrote; each stage writes `<out>/<stage name>/` and the last one is the
 * result. Paths are relative to the repository root.
 */
import { stat } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import { fileURLToPath } from "node:url";
import { InvalidArgumentError } from "../../errors.js";
import type { TrainingClip } from "./data.js";
import { type TrainOptions, type TrainResult, trainDiffusion } from "./trainer.js";

export interface RecipeStage {
  /** Folder name of the stage's output under the recipe's --out. */
  readonly name: string;
  readonly train: "unet" | "controlnet";
  /** (optional) the ControlNet to start from: "from-unet", or a folder (see TrainOptions.controlnet). */
  readonly controlnet?: string;
  readonly steps: number;
  readonly lr: number;
  readonly batch: number;
  readonly saveEvery: number;
  readonly trainable?: readonly string[];
  readonly lrScheduler?: TrainOptions["lrScheduler"];
  readonly warmupSteps?: number;
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
  readonly stages: readonly RecipeStage[];
}

/** The recipes `--recipe` knows. */
export const RECIPES: Readonly<Record<string, TrainingRecipe>> = {
  demo: {
    name: "demo",
    description:
      "the demo model of issue 8: the UNet, then a Canny ControlNet, trained on every frame of the bundled clips only",
    model: "test/fixtures/golden/tiny-sd",
    clips: [
      { path: "test/fixtures/videos/car-turn-9f.mp4", prompt: "a red car turning on a road" },
      { path: "test/fixtures/videos/man-skiing-5f.mp4", prompt: "a man skiing down a snowy slope" },
    ],
    width: 64,
    height: 64,
    seed: 20261203n,
    stages: [
      {
        name: "unet",
        train: "unet",
        steps: 3000,
        lr: 5e-4,
        batch: 4,
        saveEvery: 250,
        lrScheduler: "cosine",
        warmupSteps: 100,
      },
      {
        name: "controlnet",
        train: "controlnet",
        controlnet: "from-unet",
        steps: 1500,
        lr: 1e-4,
        batch: 4,
        saveEvery: 250,
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
};

/** The trainDiffusion options of stage `index` (its base model is the previous stage's output). */
export function stageOptions(recipe: TrainingRecipe, index: number, run: RecipeRunOptions): TrainOptions {
  const stage = recipe.stages[index];
  if (!stage) throw new InvalidArgumentError("stage", `0..${recipe.stages.length - 1}`, index);
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
    const options = stageOptions(recipe, i, run);
    const done = await stat(join(options.out, "model_index.json")).then(
      () => true,
      () => false,
    );
    if (run.resume === true && done) continue;
    const started = await stat(join(options.out, "checkpoints")).then(
      () => true,
      () => false,
    );
    run.onStage?.(stage, i);
    results.push(await trainDiffusion({ ...options, resume: run.resume === true && started }));
  }
  return results;
}
