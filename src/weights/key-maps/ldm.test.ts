import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { countHintConvs, mapLdmCheckpoint, mapVaeKey, type LdmLayout } from "./ldm.js";

// key_map.json lists every key of the tiny single-file checkpoint and ControlNet with its diffusers name,
// as diffusers 0.26.3's own converters produce them (see test/fixtures/golden/PROVENANCE.md).
const keyMap = JSON.parse(readFileSync("test/fixtures/golden/tiny-sd-single-file/key_map.json", "utf8")) as {
  model: Record<string, string>;
  controlnet: Record<string, string>;
};

const tinyLayout: LdmLayout = { layersPerBlock: 2, upBlockHasAttention: [false, true], vaeLevels: 2 };

describe("LDM single-file key map", () => {
  it.each(["model", "controlnet"] as const)("maps every %s key exactly as diffusers does", (part) => {
    const table = keyMap[part];
    const result = mapLdmCheckpoint(Object.keys(table), tinyLayout);
    expect(result.unmapped).toEqual([]);
    expect(result.ignored).toEqual([]);
    const got = Object.fromEntries(result.mappings.map((m) => [m.source, `${m.component}:${m.key}`]));
    expect(got).toEqual(table);
  });

  it("marks exactly the VAE mid-attention projection weights for squeezing", () => {
    const result = mapLdmCheckpoint(Object.keys(keyMap.model), tinyLayout);
    const squeezed = result.mappings
      .filter((m) => m.squeeze1x1)
      .map((m) => m.source)
      .sort();
    expect(squeezed).toEqual(
      ["decoder", "encoder"].flatMap((p) =>
        ["k", "proj_out", "q", "v"].map((n) => `first_stage_model.${p}.mid.attn_1.${n}.weight`),
      ),
    );
  });

  it("ignores EMA copies, schedule buffers and position ids, and reports unknown keys", () => {
    const result = mapLdmCheckpoint(
      [
        "model_ema.decay",
        "betas",
        "cond_stage_model.transformer.text_model.embeddings.position_ids",
        "model.diffusion_model.input_blocks.1.7.weight",
      ],
      tinyLayout,
    );
    expect(result.ignored).toHaveLength(3);
    expect(result.unmapped).toEqual(["model.diffusion_model.input_blocks.1.7.weight"]);
  });

  it("numbers VAE decoder levels in reverse for any level count", () => {
    const four: LdmLayout = { ...tinyLayout, vaeLevels: 4 };
    expect(mapVaeKey("decoder.up.3.block.0.conv1.weight", four)?.key).toBe(
      "decoder.up_blocks.0.resnets.0.conv1.weight",
    );
    expect(mapVaeKey("decoder.up.0.upsample.conv.bias", four)?.key).toBe(
      "decoder.up_blocks.3.upsamplers.0.conv.bias",
    );
  });

  it("derives the hint-block depth from the keys (real ControlNets have 6 inner convs)", () => {
    const keys = [0, 2, 4, 6, 8, 10, 12, 14].map((i) => `control_model.input_hint_block.${i}.weight`);
    expect(countHintConvs(keys)).toBe(6);
    const result = mapLdmCheckpoint(keys, tinyLayout);
    expect(result.mappings.at(-1)?.key).toBe("controlnet_cond_embedding.conv_out.weight");
    expect(result.mappings[3]?.key).toBe("controlnet_cond_embedding.blocks.2.weight");
  });
});
