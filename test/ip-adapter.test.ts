/**
 * IP-Adapter (issue 10 item 3): the `ip_adapter` and `ip_adapter_plus` golden fixtures (diffusers
 * 0.26.3 load_ip_adapter on the tiny UNet: projected tokens and noise_pred at two ip scales, CFG
 * batch with the uncond image embedding), plus the loader's and the UNet hook's checks.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ipAdapterKind, ipAdapterPlusKind } from "../src/conformance/kinds/ip-adapter.js";
import { runConformance } from "../src/conformance/run.js";
import { InvalidArgumentError, MissingWeightsError } from "../src/errors.js";
import { IpAdapterRunner } from "../src/models/ip-adapter/runner.js";
import { UNet2DConditionModel } from "../src/models/unet/unet-2d-condition.js";
import { mapStore } from "../src/nn/weight-store.js";
import { tensor } from "../src/tensor.js";
import { readSafetensors } from "../src/weights/safetensors.js";
import { GOLDEN } from "./helpers/golden-fixture.js";

for (const name of ["ip_adapter", "ip_adapter_plus"]) {
  describe(`${name} golden fixture (diffusers 0.26.3 load_ip_adapter)`, () => {
    it(`passes the ${name} conformance kind: tokens and noise_pred within 5e-5`, async () => {
      const dir = join(GOLDEN, name);
      const results = await runConformance([dir], { kinds: [ipAdapterKind, ipAdapterPlusKind] });
      const rows = results.flatMap((r) => r.rows);
      for (const r of rows)
        console.log(
          `${name} ${r.tensor}: max abs err ${r.maxAbsError.toExponential(2)} (tol ${r.tolerance}) ${r.note ?? ""}`,
        );
      expect(results.map((r) => r.kind)).toEqual([name]);
      expect(rows.filter((r) => !r.pass)).toEqual([]);
      const outputs = await readSafetensors(join(dir, "outputs.safetensors"));
      const tensors = new Set(rows.map((r) => r.tensor));
      for (const k of outputs.keys()) expect(tensors, k).toContain(k);
    });
  });
}

describe("IP-Adapter loading and the UNet hook", () => {
  it("numbers the UNet's cross-attentions as diffusers' attn_processors (down, up, then mid)", async () => {
    const unet = await UNet2DConditionModel.load(join(GOLDEN, "tiny-sd/unet"), {
      ipAdapter: true,
      compile: "first-use",
    });
    expect(unet.ipAdapterLayers.map((l) => `${l.path}:${l.innerDim}`)).toEqual([
      "down_blocks.0.attentions.0.transformer_blocks.0.attn2:32",
      "down_blocks.0.attentions.1.transformer_blocks.0.attn2:32",
      "up_blocks.1.attentions.0.transformer_blocks.0.attn2:32",
      "up_blocks.1.attentions.1.transformer_blocks.0.attn2:32",
      "up_blocks.1.attentions.2.transformer_blocks.0.attn2:32",
      "mid_block.attentions.0.transformer_blocks.0.attn2:64",
    ]);
    const file = await readSafetensors(join(GOLDEN, "ip_adapter/ip-adapter_sd15_tiny.safetensors"));
    file.delete("ip_adapter.11.to_v_ip.weight");
    await expect(IpAdapterRunner.load({ store: mapStore(file) }, unet)).rejects.toThrow(MissingWeightsError);
    await expect(
      unet.run({
        sample: tensor("float32", [1, 4, 8, 8]),
        timestep: 1,
        encoderHiddenStates: tensor("float32", [1, 77, 32]),
        ipAdapterKeyValues: { "ip_key.nowhere": tensor("float32", [1, 4, 32]) },
      }),
    ).rejects.toThrow(InvalidArgumentError);
    await unet.release();
  });

  it("refuses a UNet loaded without ipAdapter and image embeddings of the wrong width", async () => {
    const plain = await UNet2DConditionModel.load(join(GOLDEN, "tiny-sd/unet"), { compile: "first-use" });
    const path = join(GOLDEN, "ip_adapter/ip-adapter_sd15_tiny.safetensors");
    await expect(IpAdapterRunner.load(path, plain)).rejects.toThrow(/ipAdapter: true/);
    const unet = await UNet2DConditionModel.load(join(GOLDEN, "tiny-sd/unet"), {
      ipAdapter: true,
      compile: "first-use",
    });
    const adapter = await IpAdapterRunner.load(path, unet);
    expect(adapter.kind).toBe("plain");
    await expect(adapter.run(tensor("float32", [2, 1, 41]))).rejects.toThrow(/image_embeds/);
    // any finite ip scale, negative too (diffusers multiplies the values by it); not NaN
    const embeds = (await readSafetensors(join(GOLDEN, "ip_adapter/inputs.safetensors"))).get(
      "image_embeds",
    )!;
    const [one, minus] = [await adapter.keyValues(embeds, 1), await adapter.keyValues(embeds, -0.5)];
    const name = Object.keys(one).find((k) => k.startsWith("ip_value"))!;
    const [a, b] = [one[name]!.data, minus[name]!.data];
    expect(Math.max(...Array.from(a, Math.abs))).toBeGreaterThan(1e-3);
    for (let i = 0; i < a.length; i++) expect(b[i]).toBeCloseTo(-0.5 * (a[i] ?? 0), 6);
    await expect(adapter.keyValues(embeds, Number.NaN)).rejects.toThrow(InvalidArgumentError);
    await adapter.release();
    await unet.release();
    await plain.release();
  });
});
