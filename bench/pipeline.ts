/**
 * Whole-image benchmark: a `--steps`-step 512x512 text-to-image with full-size random-weight SD-1.5
 * components. "full" runs `textToImage` for real in a child process; "estimate" (default, keeps the
 * run short) measures the text encoder and the VAE decode and combines them with the UNet step
 * times of the unet part, and says so (`estimated: true`, with the formula).
 */
import type { BenchArgs } from "./args.js";
import { runChild } from "./child.js";
import type { PipelineJob } from "./pipeline-session.js";
import { type Skipped, round, skipped } from "./stats.js";
import type { UNetReport } from "./unet.js";

export const PIPELINE_IMAGE_SIZE = 512;

export interface PipelineBenchOptions {
  readonly args: BenchArgs;
  readonly unet: UNetReport | Skipped;
}

interface ComponentTimes {
  readonly textEncoderFirstSeconds: number;
  readonly textEncoderWarmSeconds: number;
  readonly vaeDecodeFirstSeconds: number;
  readonly vaeDecodeWarmSeconds: number;
  readonly maxRssMiB: number;
}

export async function benchPipeline(
  options: PipelineBenchOptions,
): Promise<Record<string, unknown> | Skipped> {
  const { args } = options;
  const job: PipelineJob = {
    mode: args.pipeline === "full" ? "full" : "components",
    threads: args.threads,
    steps: args.steps,
    imageSize: PIPELINE_IMAGE_SIZE,
  };
  const base = { imageSize: PIPELINE_IMAGE_SIZE, steps: args.steps, batch: 2, scheduler: "DDIMScheduler" };
  if (args.pipeline === "full") {
    const result = (await runChild("./pipeline-session.ts", job)) as Record<string, unknown>;
    const load = result["loadSeconds"];
    const run = result["runSeconds"];
    // runSeconds is textToImage's wall time: it includes the lazy session creation of the text encoder and VAE.
    const cold = typeof load === "number" && typeof run === "number" ? round(load + run) : null;
    return { ...base, estimated: false, coldSeconds: cold, ...result };
  }
  const unet = options.unet;
  const step = "sizes" in unet ? unet.sizes.find((s) => s.imageSize === PIPELINE_IMAGE_SIZE) : undefined;
  if (!("sizes" in unet) || step === undefined) {
    return skipped(
      `the estimate needs the UNet step time at ${PIPELINE_IMAGE_SIZE} (run the unet part with --size ${PIPELINE_IMAGE_SIZE}) or use --pipeline full`,
    );
  }
  const c = (await runChild("./pipeline-session.ts", job)) as ComponentTimes;
  const n = args.steps;
  const unetLoad = unet.writeSeconds + unet.session.createSecondsCold;
  return {
    ...base,
    estimated: true,
    /** Models loaded, every call warm. */
    runSeconds: round(c.textEncoderWarmSeconds + n * step.secondsPerStep + c.vaeDecodeWarmSeconds),
    runFormula: "textEncoderWarm + steps x unetSecondsPerStep + vaeDecodeWarm",
    /** From nothing: writing and loading every model, first calls. */
    coldSeconds: round(
      c.textEncoderFirstSeconds +
        unetLoad +
        step.warmupSeconds +
        (n - 1) * step.secondsPerStep +
        c.vaeDecodeFirstSeconds,
    ),
    coldFormula:
      "textEncoderFirst + unet(write + createCold + warm-up step) + (steps - 1) x unetSecondsPerStep + vaeDecodeFirst",
    parts: {
      textEncoderFirstSeconds: c.textEncoderFirstSeconds,
      textEncoderWarmSeconds: c.textEncoderWarmSeconds,
      unetSecondsPerStep: step.secondsPerStep,
      unetWarmupSeconds: step.warmupSeconds,
      unetLoadSeconds: round(unetLoad),
      vaeDecodeFirstSeconds: c.vaeDecodeFirstSeconds,
      vaeDecodeWarmSeconds: c.vaeDecodeWarmSeconds,
      componentsMaxRssMiB: c.maxRssMiB,
    },
  };
}
