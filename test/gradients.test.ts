import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readFile } from "node:fs/promises";
import { runConformance } from "../src/conformance/run.js";
import { runUNetLossFixture } from "../src/conformance/kinds/gradients-unet.js";
import { checkpointByScope } from "../src/graph/autodiff/index.js";
import { GOLDEN } from "./helpers/golden-fixture.js";

describe("gradients golden fixtures (torch 1.13 autograd)", () => {
  it("unet_loss: tiny UNet denoising-loss gradients wrt sample, context and all parameters", async () => {
    const rows = (await runConformance([join(GOLDEN, "gradients/unet_loss")])).flatMap((r) => r.rows);
    let failed = 0;
    for (const row of rows) {
      if (!row.pass) {
        failed++;
        console.log(
          `FAIL ${row.fixture} ${row.tensor}: ${row.maxAbsError.toExponential(2)} > ${row.tolerance} ${row.note ?? ""}`,
        );
      }
    }
    const worst = [...rows]
      .sort((a, b) => b.maxAbsError / b.tolerance - a.maxAbsError / a.tolerance)
      .slice(0, 8);
    for (const r of worst) console.log(`${r.tensor}: ${r.maxAbsError.toExponential(2)} (tol ${r.tolerance})`);
    expect(rows.length).toBeGreaterThan(300);
    expect(failed).toBe(0);
  }, 300_000);
});

describe("recompute (activation checkpointing)", () => {
  it("unet_loss with one recompute segment per UNet block still matches torch autograd", async () => {
    const dir = join(GOLDEN, "gradients/unet_loss");
    const caseJson = JSON.parse(await readFile(join(dir, "case.json"), "utf8")) as Record<string, unknown>;
    const blocks = [
      "conv_in",
      "time_embedding",
      "down_blocks.0",
      "down_blocks.1",
      "mid_block",
      "up_blocks.0",
      "up_blocks.1",
    ];
    let recomputed = 0;
    const rows = await runUNetLossFixture(
      { dir, caseJson },
      {
        checkpoint: checkpointByScope(blocks),
        onGraph: (g) => {
          recomputed = g.nodes.filter((n) => n.name.startsWith("recompute/")).length;
        },
      },
    );
    const failed = rows.filter((r) => !r.pass);
    for (const r of failed)
      console.log(`FAIL ${r.tensor}: ${r.maxAbsError.toExponential(2)} > ${r.tolerance}`);
    expect(rows.length).toBeGreaterThan(300);
    expect(failed.length).toBe(0);
    // every block's forward nodes were emitted again (hundreds of nodes), not zero
    expect(recomputed).toBeGreaterThan(200);
  }, 300_000);
});

describe("gradients/ops golden fixture", () => {
  it("every op family: outputs and gradients within each tensor's bound", async () => {
    const rows = (await runConformance([join(GOLDEN, "gradients/ops")])).flatMap((r) => r.rows);
    const failed = rows.filter((r) => !r.pass);
    for (const r of failed)
      console.log(
        `FAIL ${r.fixture} ${r.tensor}: ${r.maxAbsError.toExponential(2)} > ${r.tolerance} ${r.note ?? ""}`,
      );
    const byCase = new Map<string, number>();
    for (const r of rows)
      byCase.set(r.fixture, Math.max(byCase.get(r.fixture) ?? 0, r.maxAbsError / r.tolerance));
    for (const [k, v] of byCase) console.log(`${k}: worst error / bound ${v.toFixed(3)}`);
    expect(byCase.size).toBeGreaterThanOrEqual(40);
    expect(failed.length).toBe(0);
  }, 300_000);
});
