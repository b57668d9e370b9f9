/**
 * Every golden scheduler fixture (diffusers 0.26.3 reference runs, copied from shared/golden; LCM and
 * DDIM inverse included; the UniPC ones made by test/fixtures/golden/recipes/unipc_multistep.py) run
 * through the `schedulers` conformance kind: each row must pass. Also checks that the kind reports
 * what it cannot run instead of skipping it.
 */
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { schedulersKind } from "../src/conformance/kinds/schedulers.js";
import { readSafetensors } from "../src/weights/safetensors.js";

const root = join(import.meta.dirname, "fixtures/golden/schedulers");

async function loadCase(name: string): Promise<{ dir: string; caseJson: Record<string, unknown> }> {
  const dir = join(root, name);
  const parsed: unknown = JSON.parse(await readFile(join(dir, "case.json"), "utf8"));
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw new Error("bad case.json");
  return { dir, caseJson: { ...parsed } };
}

/** The fixtures made with torch 1.13 (the shared golden set), whose tables we reproduce bit for bit. */
const TORCH_1_13 = [
  "ddim",
  "ddim_inverse",
  "ddpm",
  "dpmsolver_multistep",
  "euler",
  "euler_ancestral",
  "lcm",
  "lms",
  "pndm",
];

const fixtures = (await readdir(root, { withFileTypes: true }))
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

describe("schedulers golden fixtures", () => {
  it("has all twelve fixture folders", () => {
    expect(fixtures).toEqual([
      ...TORCH_1_13,
      "unipc_multistep",
      "unipc_multistep_order3_bh1_karras",
      "unipc_multistep_vpred_noise",
    ]);
  });

  for (const name of fixtures) {
    it(`${name}: every row passes and every reference tensor is compared`, async () => {
      const { dir, caseJson } = await loadCase(name);
      const rows = await schedulersKind.run({ dir, caseJson });
      const failures = rows.filter((r) => !r.pass).map((r) => `${r.tensor}: ${r.note ?? r.maxAbsError}`);
      expect(failures).toEqual([]);
      const outputs = await readSafetensors(join(dir, "outputs.safetensors"));
      const compared = new Set(rows.map((r) => r.tensor));
      for (const key of outputs.keys()) expect(compared.has(key), key).toBe(true);
      // integer timesteps are exact; float tensors within the suggested tolerance
      for (const r of rows) {
        if (r.tensor.endsWith(".timesteps") && r.note === "exact integer timesteps")
          expect(r.maxAbsError).toBe(0);
      }
      expect(Math.max(...rows.map((r) => r.maxAbsError))).toBeLessThanOrEqual(5e-5);
    });
  }

  it("reproduces diffusers' float32 tables and loops bit for bit (torch 1.13 references)", async () => {
    for (const name of TORCH_1_13) {
      const { dir, caseJson } = await loadCase(name);
      const rows = await schedulersKind.run({ dir, caseJson });
      expect(Math.max(...rows.map((r) => r.maxAbsError)), name).toBe(0);
    }
  });

  // The UniPC references ran on torch 2.11, whose float32 linspace/cumprod give other last bits in the
  // beta tables (betas 1.9e-9, alphas_cumprod 6e-8 apart from torch 1.13's, which we reproduce): the
  // sigmas then differ by up to 2 ulp and every later tensor by ~1e-6. Anything wrong in the solver
  // (a coefficient, a rho, the corrector's order) is 1e-3 or more.
  it("follows the UniPC references to within the table difference (2e-6)", async () => {
    for (const name of fixtures.filter((n) => n.startsWith("unipc"))) {
      const { dir, caseJson } = await loadCase(name);
      const rows = await schedulersKind.run({ dir, caseJson });
      expect(Math.max(...rows.map((r) => r.maxAbsError)), name).toBeLessThanOrEqual(2e-6);
    }
  });
});

describe("schedulers kind reports what it cannot run", () => {
  it("fails rows for unknown case.json keys and an unsupported model_fn", async () => {
    const { dir, caseJson } = await loadCase("ddim");
    const rows = await schedulersKind.run({
      dir,
      caseJson: { ...caseJson, guidance: 7.5, model_fn: { python: "model_output = unet(model_input, t)" } },
    });
    expect(rows.find((r) => r.tensor === "guidance")?.pass).toBe(false);
    const fn = rows.find((r) => r.tensor === "model_fn");
    expect(fn?.pass).toBe(false);
    expect(fn?.note).toMatch(/not understood/);
    // the loop tensors were then never compared: each is reported
    expect(rows.find((r) => r.tensor === "loop_eta0.step00.prev_sample")?.note).toMatch(/not compared/);
  });

  it("fails when the scheduler does not match the reference (wrong config override)", async () => {
    const { dir, caseJson } = await loadCase("euler");
    const builtWith = { from_config: {}, overrides: { timestep_spacing: "leading" } };
    const rows = await schedulersKind.run({ dir, caseJson: { ...caseJson, built_with: builtWith } });
    expect(rows.some((r) => !r.pass && r.tensor === "set_timesteps.N4.timesteps")).toBe(true);
  });

  it("fails set_timesteps_call arguments and denoised tensors the scheduler cannot give", async () => {
    const { dir, caseJson } = await loadCase("lcm");
    const rows = await schedulersKind.run({
      dir,
      caseJson: { ...caseJson, scheduler_class: "DDIMScheduler" },
    });
    const strength = rows.find((r) => r.tensor === "set_timesteps.N4.strength0p5.timesteps");
    expect(strength?.note).toMatch(/does not take strength/);
    expect(rows.find((r) => r.tensor === "loop.step00.denoised")?.note).toMatch(/no denoised/);
    const sets = caseJson.set_timesteps as Record<string, Record<string, unknown>>;
    const custom = { ...sets.custom_timesteps, set_timesteps_call: { timesteps: [999, 1], device: "cpu" } };
    const again = await schedulersKind.run({
      dir,
      caseJson: { ...caseJson, set_timesteps: { ...sets, custom_timesteps: custom } },
    });
    const row = again.find((r) => r.tensor === "set_timesteps.custom_timesteps.timesteps");
    expect(row?.pass).toBe(false);
    expect(row?.note).toMatch(/device is not understood/);
  });

  it("fails a stochastic step whose recorded noise is missing", async () => {
    const { dir, caseJson } = await loadCase("ddpm");
    const loops = caseJson.loops;
    if (typeof loops !== "object" || loops === null || !("loop" in loops))
      throw new Error("unexpected case.json");
    const loop = { ...(loops.loop as Record<string, unknown>) };
    const steps = (loop.steps as Record<string, unknown>[]).map((s) => ({ ...s, noise_input: null }));
    const rows = await schedulersKind.run({
      dir,
      caseJson: { ...caseJson, loops: { loop: { ...loop, steps } } },
    });
    const row = rows.find((r) => r.tensor === "loop.step00.prev_sample" && !r.pass);
    expect(row?.note).toMatch(/options\.generator/);
  });
});
