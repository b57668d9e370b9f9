/**
 * LCM benchmark (issue 10): a 16-frame 512x512 ControlNet video with the LCM scheduler, 4 steps,
 * guidance 1 (no CFG batch, as LCM-LoRA is used), on full-size SD-1.5 random weights with a synthetic
 * 144-layer kohya LoRA (rank 64, fp16, the attention projections and feed-forward outputs of all 16
 * transformer blocks) fused into the UNet; and the time to fuse that file. `first` attention with the
 * anchor cache (frame 0's keys/values recorded once), frames decoded by a TAESD-architecture tiny
 * autoencoder (`--tiny-vae`; random weights) unless `tinyVae: false`. Runs in a child process
 * (lcm-session.ts). Goal: the whole video in <= 6 minutes on the 2-core machine.
 */
import { join } from "node:path";
import type { Strategy } from "../src/engine/strategies.js";
import { type HostTensor, tensor } from "../src/tensor.js";
import { writeSafetensors } from "../src/weights/safetensors.js";
import { runChild } from "./child.js";
import type { LcmJob, LcmResult } from "./lcm-session.js";
import { log } from "./stats.js";
import { writeSyntheticClip } from "./video.js";

export interface LcmBenchOptions {
  readonly threads: number;
  readonly dir: string;
  readonly size?: number;
  readonly frames?: number;
  readonly steps?: number;
  readonly batch?: number;
  /** (optional, default true) decode with a TAESD-architecture tiny autoencoder (`--tiny-vae`). */
  readonly tinyVae?: boolean;
}

/** The 16 transformer blocks of SD-1.5 and their widths. */
function transformerBlocks(): { path: string; width: number }[] {
  const out: { path: string; width: number }[] = [];
  const widths = [320, 640, 1280];
  for (let b = 0; b < 3; b++)
    for (let a = 0; a < 2; a++)
      out.push({ path: `down_blocks.${b}.attentions.${a}.transformer_blocks.0`, width: widths[b]! });
  out.push({ path: "mid_block.attentions.0.transformer_blocks.0", width: 1280 });
  for (let b = 1; b < 4; b++)
    for (let a = 0; a < 3; a++)
      out.push({ path: `up_blocks.${b}.attentions.${a}.transformer_blocks.0`, width: widths[3 - b]! });
  return out;
}

/** A kohya LoRA over 144 UNet layers: 9 per transformer block (attn1/attn2 q,k,v,out and ff.net.2). */
async function writeLora(path: string, rank: number): Promise<number> {
  const tensors: Record<string, HostTensor> = {};
  const half = (shape: number[]): HostTensor => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Uint16Array(n);
    for (let i = 0; i < n; i++) data[i] = 0x2000 + ((i * 2654435761) >>> 22); // small fp16 values
    return { dtype: "float16", shape, data } as HostTensor;
  };
  let layers = 0;
  for (const { path: block, width } of transformerBlocks()) {
    const layersOf: [string, number, number][] = [
      ["attn1.to_q", width, width],
      ["attn1.to_k", width, width],
      ["attn1.to_v", width, width],
      ["attn1.to_out.0", width, width],
      ["attn2.to_q", width, width],
      ["attn2.to_k", 768, width],
      ["attn2.to_v", 768, width],
      ["attn2.to_out.0", width, width],
      ["ff.net.2", 4 * width, width],
    ];
    for (const [name, inF, outF] of layersOf) {
      const key = `lora_unet_${`${block}.${name}`.replace(/\./g, "_")}`;
      tensors[`${key}.lora_down.weight`] = half([rank, inF]);
      tensors[`${key}.lora_up.weight`] = half([outF, rank]);
      tensors[`${key}.alpha`] = tensor("float16", [], new Uint16Array([0x5400])); // 64
      layers++;
    }
  }
  await writeSafetensors(path, tensors);
  return layers;
}

export async function benchLcm(
  options: LcmBenchOptions,
): Promise<LcmResult & { layers: number; goalSeconds: number; goalMet: boolean }> {
  const size = options.size ?? 512;
  const frames = options.frames ?? 16;
  const lora = join(options.dir, "lcm-lora-synthetic.safetensors");
  const layers = await writeLora(lora, 64);
  const source = await writeSyntheticClip(join(options.dir, "lcm-clip"), frames, size);
  log(`lcm: ${layers}-layer LoRA and a ${frames}-frame ${size}x${size} clip written`);
  const strategy: Strategy = { controlsFrom: "source", noise: "shared", attention: "first", fusion: "none" };
  const job: LcmJob = {
    threads: options.threads,
    dir: options.dir,
    lora,
    source,
    size,
    frames,
    steps: options.steps ?? 4,
    guidance: 1,
    batch: options.batch ?? 4,
    strategy,
    tinyVae: options.tinyVae ?? true,
  };
  const result = (await runChild("./lcm-session.ts", job)) as LcmResult;
  const goalSeconds = 360;
  return { ...result, layers, goalSeconds, goalMet: result.wallSeconds <= goalSeconds };
}
