/**
 * Image-to-image (SDEdit) start of a denoising run, as diffusers 0.26.3
 * `StableDiffusionImg2ImgPipeline` does it: `get_timesteps` keeps the last `int(N * strength)` steps
 * of the schedule, and `prepare_latents` encodes the image (posterior sample drawn from the run's
 * generator), then noises it to the first kept timestep with `scheduler.add_noise` (no
 * `init_noise_sigma` scaling: `add_noise` already puts the latents at that noise level).
 */
import { InvalidArgumentError } from "../errors.js";
import type { NoiseGenerator, Scheduler } from "../schedulers/scheduler.js";
import { tensor, type HostTensor } from "../tensor.js";

/** What img2img needs from the VAE. */
export interface LatentEncoder {
  /** image [B, 3, H, W] in [-1, 1] -> diffusion latents (posterior sample * scaling_factor). */
  encode(image: HostTensor<"float32">, generator: NoiseGenerator): Promise<HostTensor<"float32">>;
}

/** Checks an img2img strength (diffusers: 0 <= strength <= 1). */
export function checkStrength(strength: number, name = "strength"): void {
  if (!(strength >= 0 && strength <= 1)) throw new InvalidArgumentError(name, "a number in [0, 1]", strength);
}

/**
 * The timesteps an img2img run visits after `scheduler.setTimesteps(steps)`: diffusers `get_timesteps`
 * (`t_start = N - min(int(N * strength), N)`, counted in solver steps of `scheduler.order` entries).
 */
export function img2imgTimesteps(scheduler: Scheduler, steps: number, strength: number): number[] {
  checkStrength(strength);
  const initTimestep = Math.min(Math.floor(steps * strength), steps);
  const tStart = Math.max(steps - initTimestep, 0);
  return scheduler.timesteps.slice(tStart * scheduler.order);
}

/** Noises clean latents [B, C, h, w] to `timestep` with fresh noise from `generator` (add_noise). */
export function noiseLatentsTo(
  scheduler: Scheduler,
  latents: HostTensor<"float32">,
  timestep: number,
  generator: NoiseGenerator,
): HostTensor<"float32"> {
  const noise = generator.randn(latents.shape);
  return scheduler.addNoise(latents, noise, [timestep]);
}

/** [0, 1] -> [-1, 1] (x * 2 - 1 in float32), the VAE's input range. */
export function toSignedRange(t: HostTensor<"float32">): HostTensor<"float32"> {
  return tensor(
    "float32",
    t.shape,
    t.data.map((x) => Math.fround(Math.fround(x * 2) - 1)),
  );
}
