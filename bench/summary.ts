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
    goals: { ratioToMatMul: `>= ${GOALS.ratioToMatMul}`, rssOverWeights: `<= ${GOALS.rssOverWeights}` },
  };
}
