/**
 * Conformance kind `gradients`: reverse-mode gradients (src/graph/autodiff) against torch autograd.
 * `gradients/ops` (case.json `cases`: one op family per case, its call, inputs, upstream gradients
 * and per-tensor bounds) and `gradients/unet_loss` (case.json `weights`: a UNet training step).
 */
import type { FixtureKind } from "../types.js";
import { runGradientOpsFixture } from "./gradients-ops.js";
import { runUNetLossFixture } from "./gradients-unet.js";
import { isRecord } from "./model-fixture.js";

export const gradientsKind: FixtureKind = {
  kind: "gradients",
  description: "autodiff gradients of every op family and of a UNet denoising loss vs torch autograd",
  run: (ctx) => (isRecord(ctx.caseJson.cases) ? runGradientOpsFixture(ctx) : runUNetLossFixture(ctx)),
};
