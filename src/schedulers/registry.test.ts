import { describe, expect, it } from "vitest";
import { ConfigError, InvalidArgumentError } from "../errors.js";
import { DDIMScheduler } from "./ddim.js";
import { DPMSolverMultistepScheduler } from "./dpm-solver-multistep.js";
import {
  SCHEDULER_CLASS_NAMES,
  SCHEDULER_NAMES,
  fromConfig,
  fromConfigWithWarnings,
  resolveSchedulerName,
} from "./registry.js";

describe("scheduler registry", () => {
  it("resolves short names and diffusers class names", () => {
    expect(resolveSchedulerName("ddim")).toBe("DDIMScheduler");
    expect(resolveSchedulerName("dpmpp_2m")).toBe("DPMSolverMultistepScheduler");
    expect(resolveSchedulerName("euler_ancestral")).toBe("EulerAncestralDiscreteScheduler");
    expect(resolveSchedulerName("LMSDiscreteScheduler")).toBe("LMSDiscreteScheduler");
    expect(Object.keys(SCHEDULER_NAMES).sort()).toEqual([
      "ddim",
      "ddim_inverse",
      "ddpm",
      "dpmpp_2m",
      "dpmpp_2m_karras",
      "euler",
      "euler_ancestral",
      "lcm",
      "lms",
      "pndm",
      "unipc",
    ]);
    expect(resolveSchedulerName("lcm")).toBe("LCMScheduler");
    expect(resolveSchedulerName("ddim_inverse")).toBe("DDIMInverseScheduler");
  });

  it("builds every class from an empty config", () => {
    for (const name of SCHEDULER_CLASS_NAMES) {
      const s = fromConfig(name);
      expect(s.className).toBe(name);
      expect(s.betas).toHaveLength(1000);
      s.setTimesteps(5);
      expect(s.timesteps.length).toBeGreaterThanOrEqual(5);
    }
  });

  it("rejects unknown and wrongly-cased names, listing the valid ones", () => {
    for (const bad of ["ddimscheduler", "uni_pc", "constructor", "toString"]) {
      expect(() => resolveSchedulerName(bad)).toThrow(InvalidArgumentError);
    }
    const call = (): unknown => fromConfig("DDIM", {});
    expect(call).toThrow(
      /Expected one of ddim, ddpm, pndm, euler, euler_ancestral, dpmpp_2m, dpmpp_2m_karras, unipc, lms, lcm, ddim_inverse, DDIMScheduler/,
    );
    try {
      call();
    } catch (e) {
      expect(e instanceof InvalidArgumentError && e.code).toBe("E_INVALID_ARGUMENT");
    }
  });

  it("applies the config and returns ignored keys as warnings", () => {
    const { scheduler, warnings } = fromConfigWithWarnings("dpmpp_2m", {
      _class_name: "PNDMScheduler",
      solver_order: 1,
      skip_prk_steps: true,
    });
    expect(scheduler).toBeInstanceOf(DPMSolverMultistepScheduler);
    expect(scheduler instanceof DPMSolverMultistepScheduler && scheduler.config.solver_order).toBe(1);
    expect(warnings).toEqual([
      'scheduler_config.json: DPMSolverMultistepScheduler does not take "skip_prk_steps"; ignored',
    ]);
    expect(fromConfig("ddim", { set_alpha_to_one: false })).toBeInstanceOf(DDIMScheduler);
    expect(() => fromConfig("ddim", { skip_prk_steps: true }, { strict: true })).toThrow(ConfigError);
  });
});
