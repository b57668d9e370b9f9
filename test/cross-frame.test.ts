import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { crossFrameAttnKind, crossFrameBatchSize } from "../src/conformance/kinds/cross-frame-attn.js";
import { InvalidArgumentError } from "../src/errors.js";
import { crossFrameTransform } from "../src/models/unet/build.js";
import type { UNetLoadOptions } from "../src/models/unet/runner.js";
import { UNet2DConditionModel } from "../src/models/unet/unet-2d-condition.js";
import type { HostTensor } from "../src/tensor.js";
import { readSafetensors } from "../src/weights/safetensors.js";
import { expectClose, expectError } from "./helpers/run-graph.js";

const golden = join(import.meta.dirname, "fixtures/golden");
const dir = join(golden, "cross_frame_attn");
const unetDir = join(golden, "tiny-sd/unet");
const TOL = 5e-5;

let cacheDir = "";
let inputs: Map<string, HostTensor>;
let outputs: Map<string, HostTensor>;
const get = (m: Map<string, HostTensor>, k: string): HostTensor => {
  const t = m.get(k);
  if (!t) throw new Error(`fixture tensor ${k} missing`);
  return t;
};

/** Runs the tiny UNet on the fixture's 4 frames with a cross-frame setting. */
async function predict(options: UNetLoadOptions): Promise<HostTensor> {
  const unet = await UNet2DConditionModel.load(unetDir, { cacheDir, ...options });
  try {
    return await unet.forward({
      sample: get(inputs, "sample"),
      timestep: get(inputs, "timestep"),
      encoderHiddenStates: get(inputs, "encoder_hidden_states"),
    });
  } finally {
    await unet.release();
  }
}

beforeAll(async () => {
  cacheDir = await mkdtemp(join(tmpdir(), "sf-cross-frame-"));
  inputs = await readSafetensors(join(dir, "inputs.safetensors"));
  outputs = await readSafetensors(join(dir, "outputs.safetensors"));
});
afterAll(async () => {
  await rm(cacheDir, { recursive: true, force: true });
});

describe("cross_frame_attn golden fixture (diffusers CrossFrameAttnProcessor)", () => {
  it("passes the cross_frame_attn conformance kind within 5e-5", async () => {
    const caseJson = JSON.parse(await readFile(join(dir, "case.json"), "utf8")) as Record<string, unknown>;
    const rows = await crossFrameAttnKind.run({ dir, caseJson });
    expect(rows.map((r) => r.tensor).sort()).toEqual([...outputs.keys()].sort());
    for (const row of rows) {
      console.log(`${row.tensor}: ${row.maxAbsError.toExponential(2)}`);
      expect(row.pass, `${row.tensor} ${row.note ?? ""}`).toBe(true);
    }
    expect(crossFrameBatchSize("unet.set_attn_processor(AttnProcessor())")).toBeNull();
    expect(crossFrameBatchSize("CrossFrameAttnProcessor(batch_size=2) (what the pipeline installs)")).toBe(2);
  });

  it("videoLength (frames per video) gives the same as the equivalent batchSize", async () => {
    expectClose(
      await predict({ crossFrame: { videoLength: 4 } }),
      get(outputs, "noise_pred.cross_frame_batch_size1"),
      { atol: TOL, rtol: 0 },
    );
    expectClose(
      await predict({ crossFrame: { videoLength: 2 } }),
      get(outputs, "noise_pred.cross_frame_batch_size2"),
      { atol: TOL, rtol: 0 },
    );
  });

  it('"first-and-previous" equals "first" for 2-frame videos (first and previous frame coincide)', async () => {
    const out = await predict({ crossFrame: { batchSize: 2, mode: "first-and-previous" } });
    expectClose(out, get(outputs, "noise_pred.cross_frame_batch_size2"), { atol: TOL, rtol: 0 });
  });

  it("refuses ambiguous settings and batches that are not whole videos", async () => {
    expect(() => crossFrameTransform({ videoLength: 2, batchSize: 2 })).toThrow(InvalidArgumentError);
    await expectError(
      () => crossFrameTransform({}),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "exactly one of videoLength and batchSize",
    );
    await expectError(
      () => crossFrameTransform({ videoLength: 0 }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "Expected a positive integer for crossFrame.videoLength",
    );
    await expectError(
      () => predict({ crossFrame: { batchSize: 3 } }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "a batch that is a multiple of the videos (batchSize 3)",
    );
  });
});
