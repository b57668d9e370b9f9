import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runConformance } from "../src/conformance/run.js";
import { tensor } from "../src/tensor.js";
import { readSafetensors, writeSafetensors } from "../src/weights/safetensors.js";
import { GOLDEN } from "./helpers/golden-fixture.js";

/** Max abs error per tensor family (rng.draw, step.<field>, vae_decode.*, ...), for the log. */
function families(rows: readonly { tensor: string; maxAbsError: number }[]): Record<string, string> {
  const worst = new Map<string, number>();
  for (const r of rows) {
    const family = r.tensor.replace(/^step\d+\./, "step.").replace(/^rng\.draw\d+$/, "rng.draw");
    worst.set(family, Math.max(worst.get(family) ?? 0, r.maxAbsError));
  }
  return Object.fromEntries([...worst].map(([k, v]) => [k, v.toExponential(2)]));
}

describe("AnimateDiff pipelines against diffusers 0.26.3", () => {
  for (const name of ["pipeline_animatediff", "pipeline_animatediff_v2v"]) {
    it(`${name}: every output tensor within the fixture's tolerance`, async () => {
      const results = await runConformance([join(GOLDEN, name)]);
      const rows = results.flatMap((r) => r.rows);
      console.log(name, JSON.stringify(families(rows)));
      expect(rows.length).toBeGreaterThan(20);
      expect(rows.filter((r) => !r.pass)).toEqual([]);
    }, 300_000);
  }

  it("fails an output tensor the pipeline does not produce", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sf-animatediff-"));
    try {
      const source = join(GOLDEN, "pipeline_animatediff");
      await cp(source, dir, { recursive: true });
      const caseJson = JSON.parse(await readFile(join(source, "case.json"), "utf8")) as {
        weights: Record<string, string>;
      };
      for (const [role, rel] of Object.entries(caseJson.weights)) caseJson.weights[role] = join(source, rel);
      await writeFile(join(dir, "case.json"), JSON.stringify(caseJson));
      const outputs = await readSafetensors(join(source, "outputs.safetensors"));
      outputs.set("step00.unknown_tensor", tensor("float32", [1]));
      await writeSafetensors(join(dir, "outputs.safetensors"), outputs);
      const rows = (await runConformance([dir])).flatMap((r) => r.rows);
      expect(rows.filter((r) => !r.pass).map((r) => [r.tensor, r.note])).toEqual([
        ["step00.unknown_tensor", "not produced by the pipeline"],
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
