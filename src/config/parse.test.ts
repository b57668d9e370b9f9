import { describe, expect, it } from "vitest";
import { ConfigError, CorruptFileError, FileNotFoundError } from "../errors.js";
import { readAutoencoderKLConfig } from "../models/vae/config.js";
import { readCLIPTextConfig } from "../models/clip/config.js";
import { readControlNetModelConfig } from "../models/controlnet/config.js";
import { parseUNet2DConditionModelConfig, readUNet2DConditionModelConfig } from "../models/unet/config.js";
import { field, parseConfig, parseJson, readJsonFile } from "./parse.js";

const TINY = "test/fixtures/golden/tiny-sd";

describe("parseConfig", () => {
  const specs = {
    a: field.int(1),
    mode: field.oneOf(["x", "y"], "x"),
    list: field.oneOrList(field.int(0), 2),
  } as const;

  it("fills defaults, keeps given values and ignores _-keys", () => {
    const { config, warnings } = parseConfig("c.json", { a: 5, list: [1, 2], _class_name: "X" }, specs);
    expect(config).toEqual({ a: 5, mode: "x", list: [1, 2] });
    expect(warnings).toEqual([]);
  });

  it("warns about unknown keys, or refuses them under strict", () => {
    expect(parseConfig("c.json", { extra: 1 }, specs).warnings).toEqual([
      'c.json: unknown field "extra" ignored',
    ]);
    expect(() => parseConfig("c.json", { extra: 1 }, specs, { strict: true })).toThrow(ConfigError);
  });

  it.each([
    [{ a: 1.5 }, 'c.json: field "a" should be an integer but is 1.5'],
    [{ mode: "z" }, 'field "mode" should be one of "x", "y" but is "z"'],
    [{ list: [1, "2"] }, 'field "list[1]" should be an integer'],
    [[1], 'field "(root)" should be a JSON object'],
  ])("names the field of a bad value %j", (json, message) => {
    expect(() => parseConfig("c.json", json, specs)).toThrow(ConfigError);
    expect(() => parseConfig("c.json", json, specs)).toThrow(message);
  });

  it("checks numeric ranges and names them", () => {
    const ranged = {
      order: field.int(2, { min: 1, max: 3 }),
      count: field.int(1000, { min: 2 }),
      ratio: field.number(0.5, { max: 1 }),
      floor: field.number(-Infinity, { infinite: true }),
      size: field.number(1),
    } as const;
    expect(parseConfig("c.json", { order: 3, floor: -Infinity }, ranged).config).toEqual({
      order: 3,
      count: 1000,
      ratio: 0.5,
      floor: -Infinity,
      size: 1,
    });
    for (const [json, message] of [
      [{ order: 4 }, 'field "order" should be an integer in [1, 3] but is 4'],
      [{ count: 1 }, 'field "count" should be an integer >= 2'],
      [{ ratio: 1.5 }, 'field "ratio" should be a number <= 1'],
      [{ size: Infinity }, 'field "size" should be a number but is'],
      [{ floor: NaN }, 'field "floor" should be a number but is'],
    ] as const) {
      expect(() => parseConfig("c.json", json, ranged)).toThrow(ConfigError);
      expect(() => parseConfig("c.json", json, ranged)).toThrow(message);
    }
  });

  it("names the owner class in what it says about unknown keys", () => {
    expect(parseConfig("s.json", { extra: 1 }, specs, { owner: "DDIMScheduler" }).warnings).toEqual([
      's.json: DDIMScheduler does not take "extra"; ignored',
    ]);
    const strict = (): unknown => parseConfig("s.json", { extra: 1 }, specs, { strict: true, owner: "X" });
    expect(strict).toThrow(ConfigError);
    expect(strict).toThrow('s.json: field "extra" should be a field X takes');
  });

  it("treats keys named like Object.prototype members as unknown", () => {
    expect(parseConfig("c.json", JSON.parse('{"toString": 1, "constructor": 2}'), specs).warnings).toEqual([
      'c.json: unknown field "toString" ignored',
      'c.json: unknown field "constructor" ignored',
    ]);
  });

  it("parses Python's NaN/Infinity tokens by default, and refuses them when strict", () => {
    const text = '{"lambda_min_clipped": -Infinity, "x": [NaN, Infinity], "s": "NaN"}';
    expect(parseJson(text, "s.json")).toEqual({
      lambda_min_clipped: -Infinity,
      x: [NaN, Infinity],
      s: "NaN",
    });
    const strict = (): unknown => parseJson(text, "s.json", { pythonFloats: false });
    expect(strict).toThrow(CorruptFileError);
    expect(strict).toThrow("s.json: not valid JSON");
    try {
      parseJson('{"a": }', "broken.json");
      expect.unreachable();
    } catch (e) {
      expect(e instanceof CorruptFileError && e.code).toBe("E_CORRUPT_FILE");
    }
  });

  it("names missing and broken JSON files", async () => {
    await expect(readJsonFile("nope/config.json")).rejects.toThrow(FileNotFoundError);
    await expect(readJsonFile("test/fixtures/golden/tiny-sd/tokenizer/merges.txt")).rejects.toThrow(
      CorruptFileError,
    );
  });
});

describe("model configs", () => {
  it("reads the tiny UNet config with every field known", async () => {
    const { config, warnings } = await readUNet2DConditionModelConfig(`${TINY}/unet/config.json`, {
      strict: true,
    });
    expect(warnings).toEqual([]);
    expect(config.block_out_channels).toEqual([32, 64]);
    expect(config.attention_head_dim).toBe(8);
    expect(config.cross_attention_dim).toBe(32);
    expect(config.down_block_types).toEqual(["CrossAttnDownBlock2D", "DownBlock2D"]);
  });

  it("gives the diffusers defaults for an empty UNet config (SD1.5 shape)", () => {
    const { config } = parseUNet2DConditionModelConfig("unet/config.json", {});
    expect(config.block_out_channels).toEqual([320, 640, 1280, 1280]);
    expect(config.cross_attention_dim).toBe(1280);
    expect(config.norm_eps).toBe(1e-5);
    expect(config.use_linear_projection).toBe(false);
    expect(config.num_attention_heads).toBeNull();
  });

  it("reads the tiny VAE, ControlNet and CLIP configs strictly", async () => {
    const vae = await readAutoencoderKLConfig(`${TINY}/vae/config.json`, { strict: true });
    expect(vae.config.scaling_factor).toBe(0.18215);
    const cn = await readControlNetModelConfig(`${TINY}/controlnet/config.json`, { strict: true });
    expect(cn.config.conditioning_embedding_out_channels).toEqual([8, 16]);
    const clip = await readCLIPTextConfig(`${TINY}/text_encoder/config.json`, { strict: true });
    expect(clip.config.hidden_act).toBe("quick_gelu");
    expect(clip.config.intermediate_size).toBe(37);
  });
});
