/**
 * DDIM inversion: the `ddim_inversion` golden fixture (diffusers 0.26.3 DDIMInverseScheduler + tiny
 * UNet, 8 steps, and the DDIMScheduler reconstruction) through its conformance kind, and
 * `invertLatents` / `reconstructLatents` on a stand-in UNet for hand-derived properties.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ddimInversionKind } from "../src/conformance/kinds/ddim-inversion.js";
import { FIXTURE_KINDS } from "../src/conformance/registry.js";
import { CancelledError, InvalidArgumentError } from "../src/errors.js";
import { invertLatents, reconstructLatents } from "../src/pipeline/ddim-inversion.js";
import type { DenoisingUNet, UNetInputs } from "../src/pipeline/types.js";
import type { ProgressEvent } from "../src/progress.js";
import { fromConfig } from "../src/schedulers/registry.js";
import { type HostTensor, maxAbsDiff, tensor } from "../src/tensor.js";
import { readSafetensors, writeSafetensors } from "../src/weights/safetensors.js";
import { GOLDEN, expectOutputsPass, openGoldenFixture } from "./helpers/golden-fixture.js";
import { pattern } from "./helpers/scheduler-tensors.js";

const dir = join(GOLDEN, "ddim_inversion");
const SD = {
  beta_schedule: "scaled_linear",
  beta_start: 0.00085,
  beta_end: 0.012,
  steps_offset: 1,
  clip_sample: false,
  set_alpha_to_one: false,
};

describe("ddim_inversion golden fixture (diffusers 0.26.3 DDIMInverseScheduler + DDIMScheduler)", () => {
  it("is a registered conformance kind", () => {
    expect(FIXTURE_KINDS.some((k) => k.kind === "ddim_inversion")).toBe(true);
  });

  it("passes: every step of the inversion and the reconstruction within 0.002, timesteps exact", async () => {
    const { caseJson, outputs } = await openGoldenFixture(dir);
    const rows = await ddimInversionKind.run({ dir, caseJson });
    expectOutputsPass(rows, outputs);
    for (const r of rows)
      expect(r.tolerance).toBe(r.tensor.endsWith("timestep") || r.tensor.endsWith("timesteps") ? 0 : 0.002);
    console.log(`ddim_inversion max abs err ${Math.max(...rows.map((r) => r.maxAbsError)).toExponential(2)}`);
  });

  it("fails rows for what it does not take and for a run that differs from the reference", async () => {
    const { caseJson } = await openGoldenFixture(dir);
    const call = {
      ...(caseJson.call as Record<string, unknown>),
      inversion_guidance_scale: 3,
      strength: 0.5,
    };
    const rows = await ddimInversionKind.run({ dir, caseJson: { ...caseJson, call, num_reg_steps: 2 } });
    expect(rows.find((r) => r.tensor === "num_reg_steps")?.pass).toBe(false);
    expect(rows.find((r) => r.tensor === "call.strength")?.pass).toBe(false);
    expect(rows.find((r) => r.tensor === "inversion.step03.latents_out")?.pass).toBe(false);
    // with guidance the UNet halves are traced; the fixture recorded none, so nothing else is reported
    expect(rows.some((r) => r.tensor.includes("noise_pred_uncond"))).toBe(false);
  });
});

/** The parts of the ddim_inversion case.json the strength test rewrites. */
interface InversionCase extends Record<string, unknown> {
  weights: Record<string, string>;
  call: Record<string, unknown>;
  inversion: { timesteps: number[]; source_timesteps_used_for_alpha_t: number[] };
  reconstruction: { timesteps: number[] };
  roundtrip_max_abs_diff_reconstructed_vs_clean?: number;
  outputs_file: { tensors: Record<string, unknown> };
}

describe("ddim_inversion with DiffEdit's inpaint_strength (a held-out setting)", () => {
  it("0.75 of 8 steps: the inversion is the reference's first 6 steps; the reconstruction starts there", async () => {
    const copy = await mkdtemp(join(tmpdir(), "sf-ddim-inv-"));
    try {
      await cp(dir, copy, { recursive: true });
      const caseJson = JSON.parse(await readFile(join(dir, "case.json"), "utf8")) as InversionCase;
      for (const [role, rel] of Object.entries(caseJson.weights)) caseJson.weights[role] = join(dir, rel);
      caseJson.call.inpaint_strength = 0.75; // t_start = 8 - floor(6) = 2
      const inverse = caseJson.inversion.timesteps;
      const forward = caseJson.reconstruction.timesteps;
      caseJson.inversion.timesteps = inverse.slice(0, 6);
      caseJson.inversion.source_timesteps_used_for_alpha_t =
        caseJson.inversion.source_timesteps_used_for_alpha_t.slice(0, 6);
      caseJson.reconstruction.timesteps = forward.slice(2);
      delete caseJson.roundtrip_max_abs_diff_reconstructed_vs_clean;
      // the reference's own tensors: the inverse loop's first 6 steps do not depend on the later ones;
      // the shortened reconstruction has no reference, so its tensors leave the outputs
      const outputs = await readSafetensors(join(dir, "outputs.safetensors"));
      for (const name of [...outputs.keys()])
        if (name.startsWith("reconstruct") || /^inversion\.step0[67]\./.test(name)) outputs.delete(name);
      outputs.set("inverted_latents", outputs.get("inversion.step05.latents_out")!);
      outputs.set(
        "inversion.timesteps",
        tensor("int64", [6], BigInt64Array.from(inverse.slice(0, 6), BigInt)),
      );
      caseJson.outputs_file.tensors = Object.fromEntries(
        [...outputs].map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape }]),
      );
      await writeFile(join(copy, "case.json"), JSON.stringify(caseJson));
      await writeSafetensors(join(copy, "outputs.safetensors"), outputs);
      const rows = await ddimInversionKind.run({ dir: copy, caseJson });
      expect(rows.filter((r) => !r.pass).map((r) => [r.tensor, r.note])).toEqual([]);
      expect(rows.filter((r) => r.tensor.startsWith("inversion.step")).length).toBe(6 * 4);
      // and it is read: the full-strength run's inverted latents are not these
      const full = await ddimInversionKind.run({
        dir: copy,
        caseJson: { ...caseJson, call: { ...caseJson.call, inpaint_strength: 1 } },
      });
      expect(full.find((r) => r.tensor === "inverted_latents")?.pass).toBe(false);
    } finally {
      await rm(copy, { recursive: true, force: true });
    }
  });
});

/** A stand-in UNet: eps = value(batch item) everywhere; records what it was given. */
class ConstantUNet implements DenoisingUNet {
  readonly calls: UNetInputs[] = [];
  constructor(private readonly value: (item: number) => number = () => 0) {}
  forward(inputs: UNetInputs): Promise<HostTensor<"float32">> {
    this.calls.push(inputs);
    const per = inputs.sample.data.length / (inputs.sample.shape[0] ?? 1);
    const data = new Float32Array(inputs.sample.data.length).map((_, i) => this.value(Math.floor(i / per)));
    return Promise.resolve(tensor("float32", inputs.sample.shape, data));
  }
}

const latents = pattern([1, 4, 2, 2], 3);
const embeds = pattern([1, 3, 8], 4);

describe("invertLatents", () => {
  it("with eps = 0 scales x by sqrt(a_last / a_0): each step is x_t = sqrt(a_t / a_s) x_s", async () => {
    const scheduler = fromConfig("ddim_inverse", SD);
    const unet = new ConstantUNet();
    const events: ProgressEvent[] = [];
    const r = await invertLatents(
      { unet, scheduler },
      { latents, promptEmbeds: embeds, numInferenceSteps: 4, onProgress: (e) => events.push(e) },
    );
    expect(r.timesteps).toEqual([1, 251, 501, 751]);
    expect(r.steps).toHaveLength(4);
    expect(r.steps[3]).toBe(r.latents);
    const a = scheduler.alphasCumprod;
    const k = Math.sqrt((a[751] ?? NaN) / (a[0] ?? NaN));
    for (let i = 0; i < latents.data.length; i++)
      expect(r.latents.data[i]).toBeCloseTo((latents.data[i] ?? NaN) * k, 5);
    // the UNet sees each target timestep and the (unscaled) sample of the step
    expect(unet.calls.map((c) => c.timestep.data[0])).toEqual([1, 251, 501, 751]);
    expect(unet.calls[0]?.sample).toBe(latents);
    expect(events.map((e) => e.status)).toEqual([
      "start",
      "progress",
      "progress",
      "progress",
      "progress",
      "done",
    ]);
  });

  it("runs [uncond, cond] with guidance and repeats one embedding over the batch", async () => {
    const scheduler = fromConfig("ddim_inverse", SD);
    const frames = pattern([3, 4, 2, 2], 5);
    // batch items 0-2 are the unconditional half (eps 1), 3-5 the conditional one (eps 2)
    const unet = new ConstantUNet((item) => (item < 3 ? 1 : 2));
    const traced = new Map<string, HostTensor>();
    const r = await invertLatents(
      { unet, scheduler },
      {
        latents: frames,
        promptEmbeds: embeds,
        negativePromptEmbeds: pattern([1, 3, 8], 6),
        guidanceScale: 4,
        numInferenceSteps: 2,
        trace: (name, value) => traced.set(name, value),
      },
    );
    expect(unet.calls[0]?.sample.shape).toEqual([6, 4, 2, 2]);
    expect(unet.calls[0]?.encoderHiddenStates.shape).toEqual([6, 3, 8]);
    expect(traced.get("step00.noise_pred_uncond")?.data[0]).toBe(1);
    expect(traced.get("step00.noise_pred_text")?.data[0]).toBe(2);
    expect(traced.get("step01.timestep")?.data[0]).toBe(501n);
    // guided eps = 1 + 4 (2 - 1) = 5 for both steps: compare with the scheduler stepped by hand
    const check = fromConfig("ddim_inverse", SD);
    check.setTimesteps(2);
    const eps = tensor("float32", frames.shape, new Float32Array(frames.data.length).fill(5));
    const x1 = check.step(eps, 1, frames).prevSample;
    expect(maxAbsDiff(r.latents, check.step(eps, 501, x1).prevSample)).toBe(0);
  });

  it("refuses a forward scheduler, missing negative embeddings and mismatched batches", async () => {
    const unet = new ConstantUNet();
    await expect(
      invertLatents({ unet, scheduler: fromConfig("ddim", SD) }, { latents, promptEmbeds: embeds }),
    ).rejects.toThrow(/DDIMInverseScheduler/);
    const scheduler = fromConfig("ddim_inverse", SD);
    await expect(
      invertLatents({ unet, scheduler }, { latents, promptEmbeds: embeds, guidanceScale: 2 }),
    ).rejects.toThrow(InvalidArgumentError);
    await expect(
      invertLatents({ unet, scheduler }, { latents, promptEmbeds: pattern([2, 3, 8], 1) }),
    ).rejects.toThrow(/batch of 1 or 1/);
  });

  it("stops with CancelledError when the signal is aborted", async () => {
    const controller = new AbortController();
    controller.abort();
    const scheduler = fromConfig("ddim_inverse", SD);
    await expect(
      invertLatents(
        { unet: new ConstantUNet(), scheduler },
        { latents, promptEmbeds: embeds, signal: controller.signal },
      ),
    ).rejects.toThrow(CancelledError);
  });
});

describe("reconstructLatents", () => {
  it("undoes the inversion exactly when the model output does not depend on the sample", async () => {
    const unet = new ConstantUNet(() => 0.3);
    const opts = { promptEmbeds: embeds, numInferenceSteps: 5 };
    const inv = await invertLatents(
      { unet, scheduler: fromConfig("ddim_inverse", SD) },
      { ...opts, latents },
    );
    const rec = await reconstructLatents(
      { unet, scheduler: fromConfig("ddim", SD) },
      { ...opts, latents: inv.latents },
    );
    expect(rec.timesteps).toEqual([...inv.timesteps].reverse());
    expect(maxAbsDiff(rec.latents, latents)).toBeLessThan(1e-5);
    await expect(
      reconstructLatents({ unet, scheduler: fromConfig("ddim_inverse", SD) }, { ...opts, latents }),
    ).rejects.toThrow(InvalidArgumentError);
  });
});
