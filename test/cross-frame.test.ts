import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  crossFrameAttnKind,
  crossFrameBatchSize,
  crossFrameVideoLength,
} from "../src/conformance/kinds/cross-frame-attn.js";
import { InvalidArgumentError } from "../src/errors.js";
import { crossFrameTransform } from "../src/models/unet/build.js";
import type { UNetLoadOptions } from "../src/models/unet/runner.js";
import { UNet2DConditionModel } from "../src/models/unet/unet-2d-condition.js";
import type { HostTensor } from "../src/tensor.js";
import { GOLDEN, expectOutputsPass, fixtureTensor, openGoldenFixture } from "./helpers/golden-fixture.js";
import { expectClose, expectError } from "./helpers/run-graph.js";

const dir = join(GOLDEN, "cross_frame_attn");
const unetDir = join(GOLDEN, "tiny-sd/unet");
const TOL = 5e-5;

let cacheDir = "";
let caseJson: Record<string, unknown>;
let inputs: Map<string, HostTensor>;
let outputs: Map<string, HostTensor>;

/** Runs the tiny UNet on the fixture's 4 frames with a cross-frame setting. */
async function predict(options: UNetLoadOptions): Promise<HostTensor> {
  const unet = await UNet2DConditionModel.load(unetDir, { cacheDir, ...options });
  try {
    return await unet.forward({
      sample: fixtureTensor(inputs, "sample"),
      timestep: fixtureTensor(inputs, "timestep"),
      encoderHiddenStates: fixtureTensor(inputs, "encoder_hidden_states"),
    });
  } finally {
    await unet.release();
  }
}

beforeAll(async () => {
  cacheDir = await mkdtemp(join(tmpdir(), "sf-cross-frame-"));
  ({ caseJson, inputs, outputs } = await openGoldenFixture(dir));
});
afterAll(async () => {
  await rm(cacheDir, { recursive: true, force: true });
});

describe("cross_frame_attn golden fixture (diffusers CrossFrameAttnProcessor)", () => {
  it("passes the cross_frame_attn conformance kind within 5e-5", async () => {
    const rows = await crossFrameAttnKind.run({ dir, caseJson });
    expectOutputsPass(rows, outputs);
    expect(crossFrameBatchSize("unet.set_attn_processor(AttnProcessor())")).toBeNull();
    expect(crossFrameBatchSize("CrossFrameAttnProcessor(batch_size=2) (what the pipeline installs)")).toBe(2);
  });

  it("reads a call as diffusers' processor does: default batch_size 2, comments ignored", () => {
    expect(crossFrameBatchSize("unet.set_attn_processor(CrossFrameAttnProcessor())")).toBe(2);
    expect(crossFrameBatchSize("CrossFrameAttnProcessor2_0(batch_size=3)")).toBe(3);
    expect(crossFrameBatchSize("CrossFrameAttnProcessor(4)")).toBe(4);
    expect(crossFrameBatchSize("AttnProcessor()  # unlike CrossFrameAttnProcessor(batch_size=2)")).toBeNull();
    // frames per video = batch // batch_size; the batch must hold whole videos
    expect(crossFrameVideoLength("CrossFrameAttnProcessor(batch_size=2)", 2, 8)).toBe(4);
    expect(crossFrameVideoLength("CrossFrameAttnProcessor(batch_size=3)", 3, 8)).toBe(2);
    expect(crossFrameVideoLength("CrossFrameAttnProcessor(batch_size=3)", 3, 4)).toBe(1);
    expect(crossFrameVideoLength("CrossFrameAttnProcessor2_0(batch_size=5)", 5, 4)).toBe(1);
    expect(() => crossFrameVideoLength("CrossFrameAttnProcessor(batch_size=5)", 5, 4)).toThrow(
      /0 frames per video/,
    );
    expect(crossFrameVideoLength("CrossFrameAttnProcessor(batch_size=4)", 4, 6)).toBe(1);
    expect(() => crossFrameVideoLength("CrossFrameAttnProcessor(batch_size=2)", 2, 7)).toThrow(
      /7 is not a multiple of 3 frames/,
    );
  });

  it("a batch_size that leaves one frame per video is plain attention, as in diffusers", async () => {
    const call = "CrossFrameAttnProcessor(batch_size=3)";
    const frames = crossFrameVideoLength(call, 3, 4);
    expectClose(
      await predict({ crossFrame: { videoLength: frames } }),
      fixtureTensor(outputs, "noise_pred.default_attn"),
      { atol: TOL, rtol: 0 },
    );
  });

  it("videoLength (frames per video) gives the same as the equivalent batchSize", async () => {
    expectClose(
      await predict({ crossFrame: { videoLength: 4 } }),
      fixtureTensor(outputs, "noise_pred.cross_frame_batch_size1"),
      { atol: TOL, rtol: 0 },
    );
    expectClose(
      await predict({ crossFrame: { videoLength: 2 } }),
      fixtureTensor(outputs, "noise_pred.cross_frame_batch_size2"),
      { atol: TOL, rtol: 0 },
    );
  });

  it('"first-and-previous" equals "first" for 2-frame videos (first and previous frame coincide)', async () => {
    const out = await predict({ crossFrame: { batchSize: 2, mode: "first-and-previous" } });
    expectClose(out, fixtureTensor(outputs, "noise_pred.cross_frame_batch_size2"), { atol: TOL, rtol: 0 });
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
