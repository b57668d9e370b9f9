/**
 * Training noise schedules as diffusers builds them, in float32 (diffusers 0.26.3: the `__init__` of
 * each scheduler; `betas_for_alpha_bar` and `rescale_zero_terminal_snr` in scheduling_ddpm.py).
 *
 * - "linear": torch.linspace(beta_start, beta_end, N, float32)
 * - "scaled_linear": torch.linspace(sqrt(beta_start), sqrt(beta_end), N, float32) ** 2
 * - "squaredcos_cap_v2": betas_for_alpha_bar(N) (Nichol & Dhariwal's cosine schedule, computed in
 *   double, capped at 0.999, then cast to float32)
 * - "sigmoid" (DDPM only): sigmoid(torch.linspace(-6, 6, N)) * (beta_end - beta_start) + beta_start
 * - alphas_cumprod = torch.cumprod(1 - betas) (double accumulator on CPU, see numeric.ts)
 */
import { ConfigError } from "../errors.js";
import type { BaseSchedulerConfig } from "./config.js";
import { cumprodF32, torchLinspaceF32 } from "./numeric.js";

const f32 = Math.fround;

/**
 * betas_{i} = min(1 - alpha_bar((i + 1) / N) / alpha_bar(i / N), maxBeta), with
 * alpha_bar(t) = cos((t + 0.008) / 1.008 * pi / 2)^2 ("cosine") or exp(-12 t) ("exp").
 */
export function betasForAlphaBar(
  numDiffusionTimesteps: number,
  maxBeta = 0.999,
  alphaTransformType: "cosine" | "exp" = "cosine",
): Float32Array {
  const alphaBar =
    alphaTransformType === "cosine"
      ? (t: number): number => Math.cos((((t + 0.008) / 1.008) * Math.PI) / 2) ** 2
      : (t: number): number => Math.exp(t * -12.0);
  const out = new Float32Array(numDiffusionTimesteps);
  for (let i = 0; i < numDiffusionTimesteps; i++) {
    const t1 = i / numDiffusionTimesteps;
    const t2 = (i + 1) / numDiffusionTimesteps;
    out[i] = Math.min(1 - alphaBar(t2) / alphaBar(t1), maxBeta);
  }
  return out;
}

/** The float32 betas of a config (`trained_betas` wins over `beta_schedule`, as in diffusers). */
export function makeBetas(config: BaseSchedulerConfig, file = "scheduler_config.json"): Float32Array {
  const n = config.num_train_timesteps;
  if (config.trained_betas !== null) return Float32Array.from(config.trained_betas);
  switch (config.beta_schedule) {
    case "linear":
      return torchLinspaceF32(config.beta_start, config.beta_end, n);
    case "scaled_linear": {
      const roots = torchLinspaceF32(Math.sqrt(config.beta_start), Math.sqrt(config.beta_end), n);
      return roots.map((r) => f32(r * r));
    }
    case "squaredcos_cap_v2":
      return betasForAlphaBar(n);
    case "sigmoid": {
      const x = torchLinspaceF32(-6, 6, n);
      const range = f32(config.beta_end - config.beta_start);
      const start = f32(config.beta_start);
      return x.map((v) => f32(f32(f32(1 / f32(1 + f32(Math.exp(-v)))) * range) + start));
    }
    default:
      throw new ConfigError(file, "beta_schedule", "a known beta schedule", config.beta_schedule);
  }
}

/** alphas = 1 - betas (float32). */
export function alphasFromBetas(betas: Float32Array): Float32Array {
  return betas.map((b) => f32(1 - b));
}

/** alphas_cumprod = cumprod(1 - betas), as torch computes it on CPU. */
export function alphasCumprodFromBetas(betas: Float32Array): Float32Array {
  return cumprodF32(alphasFromBetas(betas));
}

/**
 * Rescales betas so the last timestep has zero SNR (Lin et al. 2023, "Common Diffusion Noise
 * Schedules and Sample Steps are Flawed", Algorithm 1): shift sqrt(alpha_bar) so its last value is
 * 0, scale it so its first value is unchanged, and convert back to betas. float32 throughout.
 */
export function rescaleZeroTerminalSnr(betas: Float32Array): Float32Array {
  const n = betas.length;
  const sqrtBar = alphasCumprodFromBetas(betas).map((a) => f32(Math.sqrt(a)));
  const first = sqrtBar[0] ?? 0;
  const last = sqrtBar[n - 1] ?? 0;
  const scale = f32(first / f32(first - last));
  const bar = sqrtBar.map((s) => {
    const shifted = f32(f32(s - last) * scale);
    return f32(shifted * shifted);
  });
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const alpha = i === 0 ? (bar[0] ?? 0) : f32((bar[i] ?? 0) / (bar[i - 1] ?? 1));
    out[i] = f32(1 - alpha);
  }
  return out;
}

/** betas and alphas_cumprod for a config, with the optional zero-terminal-SNR rescale applied. */
export function makeNoiseTables(
  config: BaseSchedulerConfig & { readonly rescale_betas_zero_snr?: boolean },
  file?: string,
): { betas: Float32Array; alphasCumprod: Float32Array } {
  let betas = makeBetas(config, file);
  if (config.rescale_betas_zero_snr === true) betas = rescaleZeroTerminalSnr(betas);
  return { betas, alphasCumprod: alphasCumprodFromBetas(betas) };
}
