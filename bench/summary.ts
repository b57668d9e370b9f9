/**
 * The headline figures of a bench report, with the goals they are judged against: achieved UNet
 * GFLOP/s >= 70 % of the measured MatMul rate, peak RSS <= 1.3 x the weights.
 */
import type { KernelReport } from "./kernels.js";
import { type Skipped, round } from "./stats.js";
import type { UNetReport } from "./unet.js";

export const GOALS = { ratioToMatMul: 0.7, rssOverWeights: 1.3 } as const;

export interface SummaryInput {
  readonly matmul: KernelReport | Skipped;
  readonly matmulAfter: KernelReport | Skipped;
  readonly unet: UNetReport | Skipped;
  readonly pipeline: Record<string, unknown> | Skipped;
  readonly video: Record<string, unknown> | Skipped;
}

const rate = (k: KernelReport | Skipped): number | null => ("maxGflops" in k ? k.maxGflops : null);

export function summarise(input: SummaryInput): Record<string, unknown> {
  const rates = [rate(input.matmul), rate(input.matmulAfter)].filter((r): r is number => r !== null);
  const best = rates.length > 0 ? Math.max(...rates) : null;
  const unet = "sizes" in input.unet ? input.unet : null;
  const cacheHit = unet?.cache["cachedCreateSeconds"];
  const profile = unet?.profile;
  return {
    matmulMaxGflops: { beforeUnet: rate(input.matmul), afterUnet: rate(input.matmulAfter), best },
    unetSteps: Object.fromEntries(
      (unet?.sizes ?? []).map((s) => {
        const ratio = best === null ? null : round(s.achievedGflops / best, 3);
        return [
          String(s.imageSize),
          {
            secondsPerStep: s.secondsPerStep,
            bestSeconds: s.bestSeconds,
            tflopPerStep: s.tflopPerStep,
            achievedGflops: s.achievedGflops,
            achievedGflopsBest: s.achievedGflopsBest,
            ratioToBestMatMul: ratio,
            goalMet: ratio === null ? null : ratio >= GOALS.ratioToMatMul,
            peakRssMiB: s.peakRssMiB,
          },
        ];
      }),
    ),
    memory: unet
      ? {
          weightsMiB: unet.weightsMiB,
          sessionMaxRssMiB: unet.session.maxRssMiB,
          ratio: unet.session.maxRssOverWeights,
          goalMet: unet.session.maxRssOverWeights <= GOALS.rssOverWeights,
        }
      : null,
    sessionCreateSeconds: unet
      ? {
          cold: unet.session.createSecondsCold,
          cacheWrite: unet.cache["firstCreateSeconds"] ?? null,
          cached: typeof cacheHit === "number" ? cacheHit : null,
        }
      : null,
    topOps:
      profile !== null && typeof profile === "object" && profile !== undefined && "byOpType" in profile
        ? profile.byOpType
        : null,
    pipeline:
      "result" in input.pipeline
        ? null
        : {
            estimated: input.pipeline["estimated"] ?? null,
            runSeconds: input.pipeline["runSeconds"] ?? null,
            coldSeconds: input.pipeline["coldSeconds"] ?? null,
          },
    video: "result" in input.video ? null : videoSummary(input.video),
    goals: { ratioToMatMul: `>= ${GOALS.ratioToMatMul}`, rssOverWeights: `<= ${GOALS.rssOverWeights}` },
  };
}

const field = (o: unknown, key: string): unknown =>
  typeof o === "object" && o !== null ? (o as Record<string, unknown>)[key] : undefined;

/**
 * The video part's headline lines: per size and batch, each family's seconds/frame and ratio to
 * per-frame attention (goal for first and first+previous: <= 1.15); the linearity ratio (goal within
 * 5 %) and the peak-RSS ratios (goal within 10 %), with the load average around the part.
 */
export function videoSummary(video: Record<string, unknown>): Record<string, unknown> {
  const strategies: Record<string, Record<string, Record<string, unknown>>> = {};
  for (const [size, batches] of Object.entries((video["strategies"] ?? {}) as Record<string, unknown>)) {
    strategies[size] = {};
    for (const [batch, families] of Object.entries((batches ?? {}) as Record<string, unknown>)) {
      strategies[size][batch] = Object.fromEntries(
        Object.entries((families ?? {}) as Record<string, unknown>).map(([family, row]) => [
          family,
          {
            secondsPerFrame: field(row, "secondsPerFrame") ?? null,
            ratioToPerFrame: field(row, "ratioToPerFrame") ?? null,
            slotsPerFrame: field(row, "slotsPerFrame") ?? null,
            ...(field(row, "goalMet") === undefined ? {} : { goalMet: field(row, "goalMet") }),
          },
        ]),
      );
    }
  }
  const linear = video["linear"];
  const rss = (video["rss"] ?? {}) as Record<string, unknown>;
  return {
    model: typeof video["model"] === "string" ? video["model"].split(":")[0] : null,
    steps: video["steps"] ?? null,
    frames: video["frames"] ?? null,
    loadAverage: video["loadAverage"] ?? null,
    secondsPerFrame: strategies,
    linear:
      field(linear, "ratio") === undefined
        ? null
        : {
            frames: field(linear, "frames"),
            secondsPerFrame: field(linear, "secondsPerFrame"),
            ratio: field(linear, "ratio"),
            goalMet: field(linear, "goalMet"),
            slotRatio: field(linear, "slotRatio"),
            frameStepRatio: field(linear, "frameStepRatio"),
          },
    peakRss: Object.fromEntries(
      Object.entries(rss).map(([name, r]) => [
        name,
        field(r, "ratio") === undefined
          ? null
          : {
              frames: field(r, "frames"),
              maxRssMiB: field(r, "maxRssMiB"),
              ratio: field(r, "ratio"),
              goalMet: field(r, "goalMet"),
            },
      ]),
    ),
    goals: video["goals"] ?? null,
  };
}
