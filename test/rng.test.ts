import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { rngKind } from "../src/conformance/kinds/rng.js";
import { TorchGenerator } from "../src/random/torch-generator.js";
import { readSafetensors } from "../src/weights/safetensors.js";
import { readCaseJson } from "./helpers/golden-fixture.js";

const dir = join(import.meta.dirname, "fixtures/golden/rng");

interface RngCase {
  readonly name: string;
  readonly seed: number;
  readonly call: "randn" | "rand";
  readonly shape: number[];
}

async function loadCase(): Promise<{ caseJson: Record<string, unknown>; cases: RngCase[] }> {
  const caseJson = await readCaseJson(dir);
  return { caseJson, cases: caseJson.cases as RngCase[] };
}

describe("rng golden fixture (torch 1.13 CPU generator)", () => {
  it("reproduces every randn/rand case bit for bit", async () => {
    const { cases } = await loadCase();
    const outputs = await readSafetensors(join(dir, "outputs.safetensors"));
    expect(cases.length).toBe(7);
    for (const c of cases) {
      const g = new TorchGenerator(c.seed);
      const actual = c.call === "randn" ? g.randn(c.shape) : g.rand(c.shape);
      const expected = outputs.get(c.name);
      expect(expected?.dtype, c.name).toBe("float32");
      expect(actual.shape, c.name).toEqual(expected?.shape);
      expect(expected?.data instanceof Float32Array && Array.from(expected.data), c.name).toEqual(
        Array.from(actual.data),
      );
    }
  });

  it("passes the rng conformance kind with one row per case", async () => {
    const { caseJson, cases } = await loadCase();
    const rows = await rngKind.run({ dir, caseJson });
    expect(rows.map((r) => r.tensor)).toEqual(cases.map((c) => c.name));
    for (const row of rows) {
      expect(row.pass, row.tensor).toBe(true);
      expect(row.maxAbsError).toBe(0);
      expect(row.tolerance).toBe(1e-6);
    }
  });

  it("turns an unknown call or a missing output into a failing row", async () => {
    const { caseJson, cases } = await loadCase();
    const first = cases[0];
    const edited = {
      ...caseJson,
      cases: [
        { ...first, call: "bernoulli" },
        { ...first, name: "no_such_tensor" },
      ],
    };
    const rows = await rngKind.run({ dir, caseJson: edited });
    expect(rows.map((r) => r.pass)).toEqual([false, false]);
    expect(rows[0]?.note).toContain('unsupported call "bernoulli"');
    expect(rows[1]?.note).toContain('no tensor "no_such_tensor"');
  });

  it("rejects a case.json without a tolerance (ConfigError)", async () => {
    const { caseJson } = await loadCase();
    await expect(rngKind.run({ dir, caseJson: { ...caseJson, tolerance: {} } })).rejects.toMatchObject({
      code: "E_CONFIG",
      message: expect.stringContaining("tolerance.max_abs"),
    });
  });
});
