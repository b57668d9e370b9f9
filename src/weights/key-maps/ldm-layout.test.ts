import { describe, expect, it } from "vitest";
import { expectError } from "../../../test/helpers/run-graph.js";
import { ConfigError, UnsupportedError } from "../../errors.js";
import { ldmLayout } from "./ldm-layout.js";

describe("ldmLayout (config fields as plain data)", () => {
  it("reads layers_per_block, up_block_types and block_out_channels per component", () => {
    const unet = { layers_per_block: [2, 2, 2], up_block_types: ["UpBlock2D", "CrossAttnUpBlock2D"] };
    expect(ldmLayout("unet", "unet/config.json", unet)).toEqual({
      layersPerBlock: 2,
      upBlockHasAttention: [false, true],
      vaeLevels: 1,
    });
    expect(ldmLayout("controlnet", "c.json", { layers_per_block: 1 }).layersPerBlock).toBe(1);
    expect(ldmLayout("vae", "vae/config.json", { block_out_channels: [8, 16, 32, 32] }).vaeLevels).toBe(4);
    expect(ldmLayout("text_encoder", "t.json", {})).toEqual({
      layersPerBlock: 1,
      upBlockHasAttention: [],
      vaeLevels: 1,
    });
  });

  it("names a missing field (ConfigError) and per-level layers_per_block (UnsupportedError)", async () => {
    await expectError(
      () => ldmLayout("unet", "unet/config.json", { layers_per_block: 2 }),
      ConfigError,
      "E_CONFIG",
      'unet/config.json: field "up_block_types"',
    );
    await expectError(
      () => ldmLayout("vae", "vae/config.json", {}),
      ConfigError,
      "E_CONFIG",
      "block_out_channels",
    );
    await expectError(
      () => ldmLayout("unet", "u.json", { layers_per_block: [1, 2], up_block_types: [] }),
      UnsupportedError,
      "E_UNSUPPORTED",
      "layers_per_block [1,2] in u.json",
    );
  });
});
