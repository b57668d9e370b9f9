import { describe, expect, it } from "vitest";
import { ANIMATEDIFF_RENAMES, isDroppedAnimateDiffKey, mapAnimateDiffKey } from "./animatediff.js";

const P = "down_blocks.0.motion_modules.0";
const T = `${P}.temporal_transformer`;
const D = `${P}.transformer_blocks.0`;

describe("AnimateDiff motion-module key map (convert_animatediff_motion_module_to_diffusers.py)", () => {
  it("renames every part of a motion module to the MotionAdapter layout", () => {
    const table: [string, string][] = [
      [`${T}.norm.weight`, `${P}.norm.weight`],
      [`${T}.norm.bias`, `${P}.norm.bias`],
      [`${T}.proj_in.weight`, `${P}.proj_in.weight`],
      [`${T}.proj_out.bias`, `${P}.proj_out.bias`],
      [`${T}.transformer_blocks.0.attention_blocks.0.to_q.weight`, `${D}.attn1.to_q.weight`],
      [`${T}.transformer_blocks.0.attention_blocks.0.to_k.weight`, `${D}.attn1.to_k.weight`],
      [`${T}.transformer_blocks.0.attention_blocks.0.to_v.weight`, `${D}.attn1.to_v.weight`],
      [`${T}.transformer_blocks.0.attention_blocks.0.to_out.0.weight`, `${D}.attn1.to_out.0.weight`],
      [`${T}.transformer_blocks.0.attention_blocks.1.to_out.0.bias`, `${D}.attn2.to_out.0.bias`],
      [`${T}.transformer_blocks.0.norms.0.weight`, `${D}.norm1.weight`],
      [`${T}.transformer_blocks.0.norms.1.bias`, `${D}.norm2.bias`],
      [`${T}.transformer_blocks.0.ff_norm.weight`, `${D}.norm3.weight`],
      [`${T}.transformer_blocks.0.ff.net.0.proj.weight`, `${D}.ff.net.0.proj.weight`],
      [`${T}.transformer_blocks.0.ff.net.2.bias`, `${D}.ff.net.2.bias`],
      [
        "mid_block.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.1.to_v.weight",
        "mid_block.motion_modules.0.transformer_blocks.0.attn2.to_v.weight",
      ],
      [
        "up_blocks.3.motion_modules.2.temporal_transformer.proj_in.bias",
        "up_blocks.3.motion_modules.2.proj_in.bias",
      ],
    ];
    for (const [original, diffusers] of table) expect(mapAnimateDiffKey(original), original).toBe(diffusers);
  });

  it("drops the stored positional tables (rebuilt from motion_max_seq_length)", () => {
    const key = `${T}.transformer_blocks.0.attention_blocks.0.pos_encoder.pe`;
    expect(isDroppedAnimateDiffKey(key)).toBe(true);
    expect(mapAnimateDiffKey(key)).toBeUndefined();
    expect(isDroppedAnimateDiffKey(`${D}.pos_embed.pe`)).toBe(false);
  });

  it("leaves keys already in the diffusers layout unchanged", () => {
    for (const key of [
      `${D}.attn1.to_q.weight`,
      `${D}.norm3.bias`,
      `${D}.pos_embed.pe`,
      `${P}.proj_in.weight`,
    ])
      expect(mapAnimateDiffKey(key)).toBe(key);
  });

  it("applies the script's six replacements in its order", () => {
    expect(ANIMATEDIFF_RENAMES.map(([from]) => from)).toEqual([
      ".norms.0",
      ".norms.1",
      ".ff_norm",
      ".attention_blocks.0",
      ".attention_blocks.1",
      ".temporal_transformer",
    ]);
  });
});
