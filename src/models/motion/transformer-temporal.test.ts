import { describe, expect, it } from "vitest";
import {
  erf,
  randomTensor,
  refAttention,
  refGroupNorm,
  refLayerNorm,
  refLinear,
} from "../../../test/helpers/graph-reference.js";
import { expectClose, runGraph } from "../../../test/helpers/run-graph.js";
import { GraphBuilder } from "../../graph/builder.js";
import { mapStore } from "../../nn/weight-store.js";
import { WeightScope } from "../../nn/weights.js";
import { type HostTensor, tensor } from "../../tensor.js";
import { sinusoidalPositionTable } from "../unet/embeddings.js";
import { TransformerTemporalModel } from "./transformer-temporal.js";

type F32 = HostTensor<"float32">;
const C = 8;
const GROUPS = 2;
const HEADS = 2;
const MAX_LEN = 5;

/** Random weights under the module's diffusers keys (pe = the diffusers table). */
function weights(): Map<string, F32> {
  const m = new Map<string, F32>();
  let seed = 1;
  const add = (key: string, shape: number[], scale = 0.4): void =>
    void m.set(key, randomTensor(shape, seed++, scale));
  add("norm.weight", [C]);
  add("norm.bias", [C]);
  add("proj_in.weight", [C, C]);
  add("proj_in.bias", [C]);
  add("proj_out.weight", [C, C]);
  add("proj_out.bias", [C]);
  const b = "transformer_blocks.0";
  for (const n of ["norm1", "norm2", "norm3"]) {
    add(`${b}.${n}.weight`, [C]);
    add(`${b}.${n}.bias`, [C]);
  }
  for (const a of ["attn1", "attn2"]) {
    for (const p of ["to_q", "to_k", "to_v"]) add(`${b}.${a}.${p}.weight`, [C, C]);
    add(`${b}.${a}.to_out.0.weight`, [C, C]);
    add(`${b}.${a}.to_out.0.bias`, [C]);
  }
  add(`${b}.ff.net.0.proj.weight`, [8 * C, C]);
  add(`${b}.ff.net.0.proj.bias`, [8 * C]);
  add(`${b}.ff.net.2.weight`, [C, 4 * C]);
  add(`${b}.ff.net.2.bias`, [C]);
  m.set(`${b}.pos_embed.pe`, tensor("float32", [1, MAX_LEN, C], sinusoidalPositionTable(C, MAX_LEN)));
  return m;
}

const get = (w: Map<string, F32>, k: string): F32 => {
  const t = w.get(k);
  if (!t) throw new Error(k);
  return t;
};

/** diffusers TransformerTemporalModel.forward in plain loops: x [B*F, C, H, W]. */
function reference(x: F32, w: Map<string, F32>, frames: number): F32 {
  const [n, , hh, ww] = x.shape as [number, number, number, number];
  const batch = n / frames;
  const hw = hh * ww;
  const v5 = new Float32Array(x.data.length); // [B, C, F, HW]
  for (let b = 0; b < batch; b++)
    for (let f = 0; f < frames; f++)
      for (let c = 0; c < C; c++)
        for (let p = 0; p < hw; p++)
          v5[((b * C + c) * frames + f) * hw + p] = x.data[((b * frames + f) * C + c) * hw + p] ?? NaN;
  const normed = refGroupNorm(
    tensor("float32", [batch, C, frames * hw], v5),
    GROUPS,
    1e-6,
    get(w, "norm.weight"),
    get(w, "norm.bias"),
  );
  const tok = new Float32Array(x.data.length); // [B*HW, F, C]
  for (let b = 0; b < batch; b++)
    for (let p = 0; p < hw; p++)
      for (let f = 0; f < frames; f++)
        for (let c = 0; c < C; c++)
          tok[((b * hw + p) * frames + f) * C + c] = normed.data[((b * C + c) * frames + f) * hw + p] ?? NaN;
  const add = (a: F32, b: F32): F32 =>
    tensor(
      "float32",
      a.shape,
      a.data.map((v, i) => v + (b.data[i] ?? NaN)),
    );
  const pe = get(w, "transformer_blocks.0.pos_embed.pe");
  const positioned = (t: F32): F32 =>
    tensor(
      "float32",
      t.shape,
      t.data.map((v, i) => v + (pe.data[i % (frames * C)] ?? NaN)),
    );
  const blk = (k: string): F32 => get(w, `transformer_blocks.0.${k}`);
  const ln = (t: F32, k: string): F32 => refLayerNorm(t, 1e-5, blk(`${k}.weight`), blk(`${k}.bias`));
  const attn = (t: F32, k: string): F32 => {
    const q = refLinear(t, blk(`${k}.to_q.weight`), null);
    const kk = refLinear(t, blk(`${k}.to_k.weight`), null);
    const v = refLinear(t, blk(`${k}.to_v.weight`), null);
    return refLinear(refAttention(q, kk, v, HEADS), blk(`${k}.to_out.0.weight`), blk(`${k}.to_out.0.bias`));
  };
  let h = refLinear(
    tensor("float32", [batch * hw, frames, C], tok),
    get(w, "proj_in.weight"),
    get(w, "proj_in.bias"),
  );
  h = add(attn(positioned(ln(h, "norm1")), "attn1"), h);
  h = add(attn(positioned(ln(h, "norm2")), "attn2"), h);
  const proj = refLinear(ln(h, "norm3"), blk("ff.net.0.proj.weight"), blk("ff.net.0.proj.bias"));
  const inner = 4 * C;
  const geglu = new Float32Array((proj.data.length / 2) | 0);
  for (let r = 0; r < geglu.length / inner; r++)
    for (let i = 0; i < inner; i++) {
      const gate = proj.data[r * 2 * inner + inner + i] ?? NaN;
      geglu[r * inner + i] =
        (proj.data[r * 2 * inner + i] ?? NaN) * 0.5 * gate * (1 + erf(gate / Math.SQRT2));
    }
  const ff = refLinear(
    tensor("float32", [batch * hw, frames, inner], geglu),
    blk("ff.net.2.weight"),
    blk("ff.net.2.bias"),
  );
  h = refLinear(add(ff, h), get(w, "proj_out.weight"), get(w, "proj_out.bias"));
  const out = new Float32Array(x.data.length);
  for (let b = 0; b < batch; b++)
    for (let f = 0; f < frames; f++)
      for (let c = 0; c < C; c++)
        for (let p = 0; p < hw; p++) {
          const i = ((b * frames + f) * C + c) * hw + p;
          out[i] = (h.data[((b * hw + p) * frames + f) * C + c] ?? NaN) + (x.data[i] ?? NaN);
        }
  return tensor("float32", x.shape, out);
}

function build(w: Map<string, F32>): { g: GraphBuilder; module: TransformerTemporalModel } {
  const g = new GraphBuilder();
  const module = new TransformerTemporalModel(WeightScope.bind(g, mapStore(w)), {
    inChannels: C,
    numHeads: HEADS,
    normNumGroups: GROUPS,
    maxSeqLength: MAX_LEN,
  });
  return { g, module };
}

describe("TransformerTemporalModel (diffusers motion module) against a plain-TS reference", () => {
  const w = weights();

  it("one graph takes any frame count: runtime frames 3 and 2, two videos, GroupNorm over all frames", async () => {
    const { g, module } = build(w);
    const x = g.input("x", "float32", ["n", C, "h", "w"]);
    const frames = g.input("frames", "int64", [1]);
    g.output(module.forward(x, frames), "y");
    for (const f of [3, 2]) {
      const input = randomTensor([2 * f, C, 2, 3], 40 + f);
      const out = await runGraph(g, {
        x: input,
        frames: tensor("int64", [1], BigInt64Array.from([BigInt(f)])),
      });
      expectClose(out.y, reference(input, w, f), { atol: 2e-5, rtol: 1e-4 });
    }
  });

  it("folds static frames into constant shapes (no Concat) with the same result", async () => {
    const { g, module } = build(w);
    const x = g.input("x", "float32", [4, C, 2, 2]);
    g.output(module.forward(x, g.int64s([4])), "y");
    expect(g.nodes.some((n) => n.opType === "Concat")).toBe(false);
    const input = randomTensor([4, C, 2, 2], 7);
    const out = await runGraph(g, { x: input });
    expectClose(out.y, reference(input, w, 4), { atol: 2e-5, rtol: 1e-4 });
  });

  it("binds exactly the diffusers keys of one motion module", () => {
    const { g } = build(w);
    expect(g.initializers.map((i) => i.name).sort()).toEqual([...w.keys()].sort());
  });
});
