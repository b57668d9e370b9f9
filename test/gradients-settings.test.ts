/**
 * The `gradients` conformance runners read every setting of a case's call (tuples, strings, module
 * options) and refuse the ones the engine does not build; every reference tensor gets a row. The
 * references here are computed on the host (float64) or derived from the public golden fixture.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { UnsupportedError } from "../src/errors.js";
import { kw, kwNum } from "../src/conformance/kinds/gradients-call-args.js";
import { runGradientCase, runGradientOpsFixture } from "../src/conformance/kinds/gradients-ops.js";
import { CallArgs, findCall, parseLiteral } from "../src/conformance/kinds/gradients-call-args.js";
import {
  predictionRuns,
  runUNetLossFixture,
  trainingTarget,
} from "../src/conformance/kinds/gradients-unet.js";
import type { ConformanceRow } from "../src/conformance/types.js";
import { type HostTensor, tensor } from "../src/tensor.js";
import { writeSafetensors } from "../src/weights/safetensors.js";
import { GOLDEN, openGoldenFixture, readCaseJson } from "./helpers/golden-fixture.js";

const OPS = join(GOLDEN, "gradients/ops");
const UNET = join(GOLDEN, "gradients/unet_loss");

/** Deterministic values in [-scale, scale). */
function random(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32 - 0.5) * 2 * scale;
  });
}

const f32 = (shape: number[], data: ArrayLike<number>): HostTensor<"float32"> =>
  tensor("float32", shape, Float32Array.from(data));

function failures(rows: readonly ConformanceRow[]): string[] {
  return rows
    .filter((r) => !r.pass)
    .map((r) => `${r.tensor}: ${r.maxAbsError} > ${r.tolerance} ${r.note ?? ""}`);
}

/** A one-case spec: inputs (requires_grad), one output with its upstream gradient, bounds. */
function spec(
  name: string,
  call: string,
  inputs: Record<string, HostTensor>,
  grads: readonly string[],
  tol: Record<string, number>,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    family: "test",
    call,
    inputs: Object.fromEntries(
      Object.entries(inputs).map(([k, t]) => [k, { shape: t.shape, requires_grad: grads.includes(k) }]),
    ),
    outputs: ["output"],
    upstream_gradients: { output: `${name}.grad_output.output` },
    gradients: grads.map((k) => `grad.${k}`),
    max_abs_err: tol,
    ...extra,
  };
}

const prefixed = (name: string, m: Record<string, HostTensor>): Map<string, HostTensor> =>
  new Map(Object.entries(m).map(([k, v]) => [`${name}.${k}`, v]));

describe("call-string arguments", () => {
  it("kw() keeps tuples, lists and strings whole and matches whole words only", () => {
    const call = "F.conv2d(x, weight, bias, stride=(2, 1), padding=(1, 0), dilation=[1, 2], mode='same')";
    expect(kw(call, "stride")).toBe("(2, 1)");
    expect(kw(call, "padding")).toBe("(1, 0)");
    expect(kw(call, "dilation")).toBe("[1, 2]");
    expect(kw(call, "mode")).toBe("'same'");
    expect(kw("Attention(query_dim=32, out_bias=False)", "bias")).toBeUndefined();
    expect(kw("Attention(query_dim=32, out_bias=False, bias=True)", "bias")).toBe("True");
    expect(kw("F.group_norm(x, num_groups=3, eps=1e-06)", "eps")).toBe("1e-06");
    expect(kw("IMLP(input_dim=2)(x)  # use_tanh=True", "use_tanh")).toBeUndefined();
  });

  it("kwNum() refuses what is not a number instead of reading NaN or a tuple's first part", () => {
    expect(kwNum("F.group_norm(x, num_groups=3)", "num_groups", 1)).toBe(3);
    expect(kwNum("F.group_norm(x, num_groups=None)", "num_groups", 1)).toBe(1);
    expect(() => kwNum("f(x, eps=(1, 2))", "eps", 1e-5)).toThrow(UnsupportedError);
    expect(() => kwNum("f(x, eps='small')", "eps", 1e-5)).toThrow(UnsupportedError);
  });

  it("findCall/CallArgs bind positional and keyword arguments by the Python signature", () => {
    const found = findCall(
      "diffusers.models.attention.FeedForward(16, mult=4, activation_fn='gelu')(x)  # dim_out=3",
      "FeedForward",
    );
    expect(found?.applied?.args).toEqual([{ name: "x" }]);
    const a = new CallArgs("FeedForward", found!.call, ["dim", "dim_out", "mult", "activation_fn"]);
    expect(a.num("dim", 0)).toBe(16);
    expect(a.optNum("dim_out")).toBeNull(); // comments are not code
    expect(a.str("activation_fn", "geglu")).toBe("gelu");
    const conv = findCall(
      "F.conv2d(F.pad(x, (0, 1, 0, 1)), weight, stride=(2, 1), padding='same')",
      "F.conv2d",
    );
    const c = new CallArgs("F.conv2d", conv!.call, ["input", "weight", "bias", "stride", "padding"]);
    expect(c.call("input")?.fn).toBe("F.pad");
    expect(c.perAxis("stride", 1, 2)).toEqual([2, 1]);
    expect(c.value("padding")).toBe("same");
    expect(() => c.perAxis("padding", 0, 2)).toThrow(UnsupportedError);
    expect(parseLiteral("(1, -2.5e-1, True, None, 'a')")).toEqual([1, -0.25, true, null, "a"]);
  });

  it("CallArgs refuses unknown arguments, extra positionals and values of the wrong type", () => {
    const call = (s: string) => findCall(s, "M")!.call;
    expect(() => new CallArgs("M", call("M(a=1, out_bias=2)"), ["a", "bias"])).toThrow(/out_bias=2/);
    expect(() => new CallArgs("M", call("M(1, 2, 3)"), ["a", "b"])).toThrow(UnsupportedError);
    expect(() => new CallArgs("M", call("M(1)"), ["a"], 0)).toThrow(/keyword arguments only/);
    expect(() => new CallArgs("M", call("M(1, a=2)"), ["a"])).toThrow(/given twice/);
    const a = new CallArgs("M", call("M(a='x', b=0.0)"), ["a", "b"]);
    expect(() => a.num("a", 0)).toThrow(UnsupportedError);
    expect(() => a.only("b", [0])).not.toThrow();
    expect(() => a.only("a", ["y"])).toThrow(/a='x'/);
  });
});

/** torch conv2d (float64) with per-axis stride / dilation and begin/end pads [t, l, b, r]. */
function conv2dReference(
  x: Float32Array,
  xs: readonly number[],
  w: Float32Array,
  ws: readonly number[],
  b: Float32Array,
  gy: (shape: number[]) => Float32Array,
  o: { stride: [number, number]; dilation: [number, number]; pads: [number, number, number, number] },
): { y: HostTensor; gx: HostTensor; gw: HostTensor; gb: HostTensor; gyT: HostTensor } {
  const [n = 0, c = 0, h = 0, wd = 0] = xs;
  const [m = 0, , kh = 0, kw_ = 0] = ws;
  const [pt, pl, pb, pr] = o.pads;
  const oh = Math.floor((h + pt + pb - o.dilation[0] * (kh - 1) - 1) / o.stride[0]) + 1;
  const ow = Math.floor((wd + pl + pr - o.dilation[1] * (kw_ - 1) - 1) / o.stride[1]) + 1;
  const yShape = [n, m, oh, ow];
  const g = gy(yShape);
  const y = new Float64Array(n * m * oh * ow);
  const gx = new Float64Array(x.length);
  const gw = new Float64Array(w.length);
  const gb = new Float64Array(m);
  for (let ni = 0; ni < n; ni++)
    for (let mi = 0; mi < m; mi++)
      for (let yi = 0; yi < oh; yi++)
        for (let xi = 0; xi < ow; xi++) {
          const yo = ((ni * m + mi) * oh + yi) * ow + xi;
          let acc = b[mi] ?? 0;
          const gv = g[yo] ?? 0;
          gb[mi] = (gb[mi] ?? 0) + gv;
          for (let ci = 0; ci < c; ci++)
            for (let a = 0; a < kh; a++)
              for (let bb = 0; bb < kw_; bb++) {
                const ih = yi * o.stride[0] - pt + a * o.dilation[0];
                const iw = xi * o.stride[1] - pl + bb * o.dilation[1];
                if (ih < 0 || ih >= h || iw < 0 || iw >= wd) continue;
                const xo = ((ni * c + ci) * h + ih) * wd + iw;
                const wo = ((mi * c + ci) * kh + a) * kw_ + bb;
                acc += (x[xo] ?? 0) * (w[wo] ?? 0);
                gx[xo] = (gx[xo] ?? 0) + gv * (w[wo] ?? 0);
                gw[wo] = (gw[wo] ?? 0) + gv * (x[xo] ?? 0);
              }
          y[yo] = acc;
        }
  return {
    y: f32(yShape, y),
    gx: f32([...xs], gx),
    gw: f32([...ws], gw),
    gb: f32([m], gb),
    gyT: f32(yShape, g),
  };
}

describe("gradients/ops: F.conv2d settings", () => {
  const x = random(1 * 2 * 7 * 8, 1);
  const w = random(3 * 2 * 2 * 3, 2);
  const b = random(3, 3);
  const xs = [1, 2, 7, 8];
  const ws = [3, 2, 2, 3];
  const tol = { "out.output": 1e-5, "grad.x": 1e-5, "grad.weight": 1e-5, "grad.bias": 1e-5 };

  async function check(
    call: string,
    o: { stride: [number, number]; dilation: [number, number]; pads: [number, number, number, number] },
  ): Promise<ConformanceRow[]> {
    const ref = conv2dReference(
      x,
      xs,
      w,
      ws,
      b,
      (s) =>
        random(
          s.reduce((p, q) => p * q, 1),
          4,
        ),
      o,
    );
    const inputs = { x: f32(xs, x), weight: f32(ws, w), bias: f32([3], b) };
    return runGradientCase(
      "conv",
      spec("conv", call, inputs, ["x", "weight", "bias"], tol),
      prefixed("conv", { ...inputs, "grad_output.output": ref.gyT }),
      prefixed("conv", {
        "out.output": ref.y,
        "grad.x": ref.gx,
        "grad.weight": ref.gw,
        "grad.bias": ref.gb,
      }),
    );
  }

  it("per-axis stride, padding and dilation tuples", async () => {
    const rows = await check("F.conv2d(x, weight, bias, stride=(2, 1), padding=(1, 0), dilation=(1, 2))", {
      stride: [2, 1],
      dilation: [1, 2],
      pads: [1, 0, 1, 0],
    });
    expect(rows.map((r) => r.tensor).sort()).toEqual(Object.keys(tol).sort());
    expect(failures(rows)).toEqual([]);
  });

  it("padding='same' (the odd extra pad goes after) and padding='valid'", async () => {
    // kernel 2x3, dilation (1, 2): totals 1 and 4 -> top 0, bottom 1, left 2, right 2
    const same = await check("F.conv2d(x, weight, bias, padding='same', dilation=(1, 2))", {
      stride: [1, 1],
      dilation: [1, 2],
      pads: [0, 2, 1, 2],
    });
    expect(failures(same)).toEqual([]);
    const valid = await check("F.conv2d(x, weight, bias, padding='valid', stride=2)", {
      stride: [2, 2],
      dilation: [1, 1],
      pads: [0, 0, 0, 0],
    });
    expect(failures(valid)).toEqual([]);
  });

  it("positional stride/padding, and what torch refuses or the engine cannot differentiate", async () => {
    const rows = await check("F.conv2d(x, weight, bias, (1, 2), 1)", {
      stride: [1, 2],
      dilation: [1, 1],
      pads: [1, 1, 1, 1],
    });
    expect(failures(rows)).toEqual([]);
    const o = { stride: [1, 1] as [number, number], dilation: [1, 1] as [number, number] };
    const pads: [number, number, number, number] = [0, 0, 0, 0];
    await expect(
      check("F.conv2d(x, weight, bias, stride=2, padding='same')", { ...o, pads }),
    ).rejects.toThrow(UnsupportedError);
    await expect(check("F.conv2d(x, weight, bias, padding='full')", { ...o, pads })).rejects.toThrow(
      UnsupportedError,
    );
    await expect(check("F.conv2d(x, weight, bias, stride=(1, 2, 3))", { ...o, pads })).rejects.toThrow(
      UnsupportedError,
    );
    await expect(
      check("F.conv2d(F.pad(x, (1, 1), mode='reflect'), weight, bias)", { ...o, pads }),
    ).rejects.toThrow(UnsupportedError);
  });
});

/** erf (Abramowitz-Stegun 7.1.26, |error| < 1.5e-7). */
function erf(v: number): number {
  const t = 1 / (1 + 0.3275911 * Math.abs(v));
  const y =
    1 -
    ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) *
      t *
      Math.exp(-v * v);
  return v >= 0 ? y : -y;
}

const ACTIVATIONS: Record<string, (v: number) => number> = {
  gelu: (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)),
  "gelu-approximate": (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))),
  "geglu-approximate": (v) => v / (1 + Math.exp(-1.702 * v)),
};

describe("gradients/ops: diffusers FeedForward settings", () => {
  const dim = 4;
  const rows = 6;
  const x = random(rows * dim, 11, 2);

  /** FeedForward(dim, ...)(x) with a plain (non-gated) activation, on the host. */
  function feedForward(
    act: (v: number) => number,
    inner: number,
    dimOut: number,
    p: Record<string, Float32Array>,
  ): Float64Array {
    const out = new Float64Array(rows * dimOut);
    for (let r = 0; r < rows; r++) {
      const h = Array.from({ length: inner }, (_, i) => {
        let s = p["net.0.proj.bias"]?.[i] ?? 0;
        for (let k = 0; k < dim; k++)
          s += (x[r * dim + k] ?? 0) * (p["net.0.proj.weight"]?.[i * dim + k] ?? 0);
        return act(s);
      });
      for (let o = 0; o < dimOut; o++) {
        let s = p["net.2.bias"]?.[o] ?? 0;
        for (let i = 0; i < inner; i++) s += (h[i] ?? 0) * (p["net.2.weight"]?.[o * inner + i] ?? 0);
        out[r * dimOut + o] = s;
      }
    }
    return out;
  }

  async function run(
    call: string,
    inner: number,
    dimOut: number,
    bias = true,
    reference = /activation_fn='([^']*)'/.exec(call)?.[1] ?? "",
  ): Promise<ConformanceRow[]> {
    const p: Record<string, Float32Array> = {
      "net.0.proj.weight": random(inner * dim, 12, 0.8),
      "net.2.weight": random(dimOut * inner, 13, 0.5),
      ...(bias ? { "net.0.proj.bias": random(inner, 14), "net.2.bias": random(dimOut, 15) } : {}),
    };
    const shapes: Record<string, number[]> = {
      "net.0.proj.weight": [inner, dim],
      "net.0.proj.bias": [inner],
      "net.2.weight": [dimOut, inner],
      "net.2.bias": [dimOut],
    };
    const act = ACTIVATIONS[reference] ?? ((v: number) => v);
    const inputs: Record<string, HostTensor> = {
      x: f32([2, 3, dim], x),
      ...Object.fromEntries(Object.entries(p).map(([k, v]) => [k, f32(shapes[k] ?? [], v)])),
    };
    return runGradientCase(
      "ff",
      spec("ff", call, inputs, [], { "out.output": 1e-5 }, { module_parameters: Object.keys(p) }),
      prefixed("ff", { ...inputs, "grad_output.output": f32([2, 3, dimOut], random(rows * dimOut, 16)) }),
      prefixed("ff", { "out.output": f32([2, 3, dimOut], feedForward(act, inner, dimOut, p)) }),
    );
  }

  it("activation_fn='gelu' computes gelu(proj(x)), not GEGLU", async () => {
    const rows_ = await run(
      "diffusers.models.attention.FeedForward(4, mult=4, activation_fn='gelu')(x)",
      16,
      4,
    );
    expect(rows_.map((r) => r.tensor)).toEqual(["out.output"]);
    expect(failures(rows_)).toEqual([]);
  });

  it("gelu-approximate (tanh), geglu-approximate (x sigmoid(1.702x)), dim_out, inner_dim, mult, bias", async () => {
    expect(failures(await run("FeedForward(4, mult=2, activation_fn='gelu-approximate')(x)", 8, 4))).toEqual(
      [],
    );
    expect(failures(await run("FeedForward(4, 3, activation_fn='geglu-approximate')(x)", 16, 3))).toEqual([]);
    expect(
      failures(
        await run("FeedForward(4, dim_out=5, inner_dim=6, activation_fn='gelu', bias=False)(x)", 6, 5, false),
      ),
    ).toEqual([]);
    expect(failures(await run("FeedForward(4, mult=1.5, activation_fn='gelu')(x)", 6, 4))).toEqual([]);
    // the erf and tanh forms differ by more than the bound here: the activation is really chosen
    const wrong = await run(
      "FeedForward(4, mult=2, activation_fn='gelu')(x)",
      8,
      4,
      true,
      "gelu-approximate",
    );
    expect(wrong[0]?.pass).toBe(false);
    const swapped = await run(
      "FeedForward(4, mult=2, activation_fn='gelu-approximate')(x)",
      8,
      4,
      true,
      "gelu",
    );
    expect(swapped[0]?.pass).toBe(false);
  });

  it("unknown activations, dropout and unknown arguments are refused", async () => {
    await expect(run("FeedForward(4, activation_fn='swiglu')(x)", 16, 4)).rejects.toThrow(/swiglu/);
    await expect(run("FeedForward(4, dropout=0.1, activation_fn='gelu')(x)", 16, 4)).rejects.toThrow(
      UnsupportedError,
    );
    await expect(run("FeedForward(4, activation='gelu')(x)", 16, 4)).rejects.toThrow(UnsupportedError);
  });
});

describe("gradients/ops: settings of the public fixture's blocks", async () => {
  const fixture = await openGoldenFixture(OPS);
  const cases = fixture.caseJson.cases as Record<string, Record<string, unknown>>;

  /** The public case `name` with its call changed and every reference tensor mapped by `map`. */
  function variant(
    name: string,
    call: string,
    map: (t: HostTensor, key: string) => HostTensor = (t) => t,
  ): Promise<ConformanceRow[]> {
    const base = cases[name] ?? {};
    const outputs = new Map(
      [...fixture.outputs].filter(([k]) => k.startsWith(`${name}.`)).map(([k, t]) => [k, map(t, k)]),
    );
    return runGradientCase(name, { ...base, call }, fixture.inputs, outputs);
  }

  const scaled = (s: number) => (t: HostTensor) =>
    f32(
      [...t.shape],
      Array.from(t.data as Float32Array, (v) => v * s),
    );

  it("ResnetBlock2D output_scale_factor divides the output and every gradient", async () => {
    const call =
      "diffusers ResnetBlock2D(in_channels=8, out_channels=16, temb_channels=32, groups=4, eps=1e-05, output_scale_factor=2.0)(x, temb)";
    const rows = await variant("resnet_block2d", call, scaled(0.5));
    expect(rows.length).toBe(15);
    expect(failures(rows)).toEqual([]);
  });

  it("ResnetBlock2D non_linearity is applied (silu = swish; relu changes the output)", async () => {
    const base =
      "diffusers ResnetBlock2D(in_channels=8, out_channels=16, temb_channels=32, groups=4, eps=1e-05";
    expect(failures(await variant("resnet_block2d", `${base}, non_linearity='silu')(x, temb)`))).toEqual([]);
    const relu = await variant("resnet_block2d", `${base}, non_linearity='relu')(x, temb)`);
    expect(relu.find((r) => r.tensor === "out.output")?.pass).toBe(false);
    await expect(variant("resnet_block2d", `${base}, non_linearity='tanh')(x, temb)`)).rejects.toThrow(
      UnsupportedError,
    );
  });

  it("ResnetBlock2D settings the engine's module does not build are refused", async () => {
    const base =
      "diffusers ResnetBlock2D(in_channels=8, out_channels=16, temb_channels=32, groups=4, eps=1e-05";
    for (const extra of [
      "time_embedding_norm='scale_shift'",
      "up=True",
      "down=True",
      "groups_out=2",
      "use_in_shortcut=False",
      "conv_shortcut_bias=False",
      "conv_2d_out_channels=8",
      "skip_time_act=True",
      "dropout=0.1",
      "unknown_setting=1",
    ]) {
      await expect(variant("resnet_block2d", `${base}, ${extra})(x, temb)`), extra).rejects.toThrow(
        UnsupportedError,
      );
    }
    // accepted: settings diffusers 0.26.3 does not act on, and the defaults spelled out
    const same = `${base}, conv_shortcut=True, pre_norm=False, groups_out=4, use_in_shortcut=True, time_embedding_norm='default', dropout=0.0)(x, temb)`;
    expect(failures(await variant("resnet_block2d", same))).toEqual([]);
  });

  it("IMLP use_tanh=False drops the final tanh (in the call or its comment); apply_softmax is refused", async () => {
    const call =
      "implicit_neural_networks.IMLP(input_dim=3, output_dim=2, hidden_dim=16, use_positional=False, positional_dim=4, skip_layers=[], num_layers=6";
    const atanh = (t: HostTensor, key: string) =>
      key.endsWith(".out.output") ? f32([...t.shape], Array.from(t.data as Float32Array, Math.atanh)) : t;
    const noTanh = async (c: string): Promise<ConformanceRow | undefined> => {
      const rows = await variant("nla_imlp_mapping", c, atanh);
      return rows.find((r) => r.tensor === "out.output");
    };
    // the reference output without tanh = atanh of the stored one (|y| < 1; atanh magnifies its
    // float32 rounding, hence the looser check than the case's bound)
    for (const c of [`${call}, use_tanh=False)(x)`, `${call})(x)  # use_tanh=False`]) {
      const row = await noTanh(c);
      expect(row?.maxAbsError, c).toBeLessThan(1e-4);
    }
    expect((await noTanh(`${call})(x)  # use_tanh=True`))?.maxAbsError).toBeGreaterThan(1e-3);
    expect(failures(await variant("nla_imlp_mapping", `${call}, use_tanh=True, verbose=False)(x)`))).toEqual(
      [],
    );
    await expect(variant("nla_imlp_mapping", `${call}, apply_softmax=True)(x)`)).rejects.toThrow(/softmax/);
    await expect(
      variant("nla_imlp_mapping", `${call})(x)  # use_tanh=True, apply_softmax=True`),
    ).rejects.toThrow(UnsupportedError);
  });

  it("Attention settings map to the module's options; unknown ones are refused", async () => {
    const call = (extra: string) =>
      `diffusers.models.attention_processor.Attention(query_dim=32, cross_attention_dim=None, heads=4, dim_head=8, bias=False${extra}) with AttnProcessor(); output = attn(hidden_states)`;
    expect(failures(await variant("attention_module_self", call(", out_bias=True, dropout=0.0")))).toEqual(
      [],
    );
    const scaled2 = await variant("attention_module_self", call(", rescale_output_factor=2.0"), scaled(0.5));
    expect(failures(scaled2)).toEqual([]);
    await expect(variant("attention_module_self", call(", added_kv_proj_dim=4"))).rejects.toThrow(
      UnsupportedError,
    );
    await expect(variant("attention_module_self", call(", qk_norm='layer_norm'"))).rejects.toThrow(
      UnsupportedError,
    );
    await expect(
      variant("attention_module_self", call("").replace("AttnProcessor()", "SlicedAttnProcessor(2)")),
    ).rejects.toThrow(UnsupportedError);
  });

  it("a reference tensor the runner does not compute is a failing row", async () => {
    const name = "silu";
    const outputs = new Map([...fixture.outputs].filter(([k]) => k.startsWith(`${name}.`)));
    outputs.set(`${name}.grad.extra`, f32([1], [0]));
    const rows = await runGradientCase(name, cases[name] ?? {}, fixture.inputs, outputs);
    const extra = rows.find((r) => r.tensor === "grad.extra");
    expect(extra?.pass).toBe(false);
    expect(extra?.note).toMatch(/not computed by this runner/);
    expect(rows.filter((r) => r.pass).length).toBe(2);
  });
});

describe("gradients fixtures written to disk", () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it("ops: a reference tensor of no case is a failing row", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sf-gradients-ops-"));
    dirs.push(dir);
    const fixture = await openGoldenFixture(OPS);
    const cases = fixture.caseJson.cases as Record<string, unknown>;
    const pick = (m: Map<string, HostTensor>) => new Map([...m].filter(([k]) => k.startsWith("silu.")));
    await writeSafetensors(join(dir, "inputs.safetensors"), pick(fixture.inputs));
    const outputs = pick(fixture.outputs);
    outputs.set("gelu_none.out.output", f32([1], [0]));
    await writeSafetensors(join(dir, "outputs.safetensors"), outputs);
    const rows = await runGradientOpsFixture({
      dir,
      caseJson: { fixture: "gradients/ops", cases: { silu: cases.silu } },
    });
    expect(rows.filter((r) => !r.pass).map((r) => [r.tensor, r.note])).toEqual([
      ["gelu_none.out.output", "not computed by this runner (no case of that name)"],
    ]);
  });

  it("unet_loss: prediction_type_main / _also choose the targets and the prefixes", async () => {
    const caseJson = await readCaseJson(UNET);
    const { outputs } = await openGoldenFixture(UNET);
    const tol = (caseJson.tolerance as { per_tensor_max_abs_err: Record<string, number> })
      .per_tensor_max_abs_err;
    // main = v_prediction (un-prefixed), also = epsilon (prefix "epsilon."), with its parameter gradients
    const mapped = new Map<string, HostTensor>();
    const bounds: Record<string, number> = {};
    for (const [k, t] of outputs) {
      const name = k.startsWith("v_prediction.")
        ? k.slice("v_prediction.".length)
        : k === "noisy_latents"
          ? k
          : `epsilon.${k}`;
      mapped.set(name, t);
      bounds[name] = tol[k] ?? 0;
    }
    mapped.set("epsilon.noisy_latents", outputs.get("noisy_latents")!);
    bounds["epsilon.noisy_latents"] = tol.noisy_latents ?? 0;
    mapped.set("unknown.loss", outputs.get("loss")!);
    bounds["unknown.loss"] = 1;
    const dir = await mkdtemp(join(tmpdir(), "sf-gradients-unet-"));
    dirs.push(dir);
    await writeSafetensors(join(dir, "inputs.safetensors"), (await openGoldenFixture(UNET)).inputs);
    await writeSafetensors(join(dir, "outputs.safetensors"), mapped);
    const rows = await runUNetLossFixture({
      dir,
      caseJson: {
        ...caseJson,
        weights: resolve(UNET, String(caseJson.weights)),
        scheduler_config: resolve(UNET, String(caseJson.scheduler_config)),
        prediction_type_main: "v_prediction",
        prediction_type_also: "epsilon",
        tolerance: { per_tensor_max_abs_err: bounds },
        outputs_file: { file: "outputs.safetensors" },
      },
    });
    expect(rows.length).toBe(mapped.size);
    expect(rows.filter((r) => !r.pass).map((r) => [r.tensor, r.note])).toEqual([
      ["unknown.loss", "not computed by this runner"],
    ]);
    expect(rows.some((r) => r.tensor === "epsilon.grad.conv_in.weight" && r.pass)).toBe(true);
    expect(rows.some((r) => r.tensor === "target" && r.pass)).toBe(true);
  }, 120_000);

  it("unet_loss prediction types: targets, runs and refusals", () => {
    const t = (v: number) => f32([1], [v]);
    const sources = { noise: t(1), velocity: t(2), latents: t(3) };
    expect(trainingTarget("epsilon", sources).data[0]).toBe(1);
    expect(trainingTarget("v_prediction", sources).data[0]).toBe(2);
    expect(trainingTarget("sample", sources).data[0]).toBe(3);
    expect(() => trainingTarget("flow", sources)).toThrow(UnsupportedError);
    const names = ["loss", "v_prediction.loss", "sample.loss"];
    expect(
      predictionRuns(
        { prediction_type_main: "epsilon", prediction_type_also: "v_prediction" },
        "c",
        "epsilon",
        names,
      ),
    ).toEqual([
      { predictionType: "epsilon", prefix: "" },
      { predictionType: "v_prediction", prefix: "v_prediction." },
    ]);
    expect(predictionRuns({}, "c", "v_prediction", names).map((r) => r.prefix)).toEqual(["", "sample."]);
    expect(predictionRuns({ prediction_type_also: null }, "c", "epsilon", names)).toHaveLength(1);
    expect(() => predictionRuns({ prediction_type_also: 3 }, "c", "epsilon", names)).toThrow(
      /prediction_type_also/,
    );
  });
});
