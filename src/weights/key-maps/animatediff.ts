/**
 * Original AnimateDiff motion-module checkpoints (guoyww/AnimateDiff `mm_sd_v14.ckpt`,
 * `mm_sd_v15.ckpt`, `mm_sd_v15_v2.ckpt`) -> diffusers MotionAdapter keys.
 *
 * The rules are those of diffusers' scripts/convert_animatediff_motion_module_to_diffusers.py: drop
 * every `pos_encoder` key (the sinusoidal table is rebuilt from motion_max_seq_length), then rename by
 * plain substring replacement, in this order, everywhere in the key:
 *
 *   down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.1.to_q.weight
 *   -> down_blocks.0.motion_modules.0.transformer_blocks.0.attn2.to_q.weight
 */

/** [from, to] substring replacements, applied in order (Python str.replace: every occurrence). */
export const ANIMATEDIFF_RENAMES: readonly (readonly [string, string])[] = [
  [".norms.0", ".norm1"],
  [".norms.1", ".norm2"],
  [".ff_norm", ".norm3"],
  [".attention_blocks.0", ".attn1"],
  [".attention_blocks.1", ".attn2"],
  [".temporal_transformer", ""],
];

/** Keys the conversion drops: the stored positional tables ([1, 24 or 32, C] per attention). */
export function isDroppedAnimateDiffKey(key: string): boolean {
  return key.includes("pos_encoder");
}

/** The diffusers MotionAdapter key of an original AnimateDiff key, or undefined for a dropped key. */
export function mapAnimateDiffKey(key: string): string | undefined {
  if (isDroppedAnimateDiffKey(key)) return undefined;
  let out = key;
  for (const [from, to] of ANIMATEDIFF_RENAMES) out = out.split(from).join(to);
  return out;
}
