/** The scheduler config the scheduler unit tests start from. */

/** The noise schedule of Stable Diffusion 1.x's scheduler_config.json. */
export const SD_SCHEDULER_CONFIG = {
  beta_schedule: "scaled_linear",
  beta_start: 0.00085,
  beta_end: 0.012,
  steps_offset: 1,
} as const;
