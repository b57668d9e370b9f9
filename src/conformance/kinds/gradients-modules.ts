/**
 * Module cases of the `gradients/ops` fixture: diffusers 0.26.3 Attention, FeedForward,
 * TimestepEmbedding(Timesteps), ResnetBlock2D and the NLA IMLP, each built from its constructor call
 * read by Python signature (gradients-call-args.ts): a setting the engine's module does not build is
 * refused, never ignored.
 */
import { ConfigError, UnsupportedError } from "../../errors.js";
import { GraphBuilder, type Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import { TimestepEmbedding, Timesteps } from "../../models/unet/embeddings.js";
import { ResnetBlock2D } from "../../models/unet/resnet.js";
import { FeedForward } from "../../models/unet/transformer-2d.js";
import { ApproximateGELU, GEGLU, GELU, type ProjectedActivationOptions } from "../../nn/activations.js";
import { Attention } from "../../nn/attention.js";
import { Linear } from "../../nn/linear.js";
import { WeightScope } from "../../nn/weights.js";
import { CallArgs, argsOf, findCall, kw, parseLiteral, pyRepr } from "./gradients-call-args.js";
import type { CaseGraph } from "./gradients-ops.js";

/** The forward outputs of a case, by output name. */
export type Forward = Record<string, Value>;

/** diffusers 0.26.3 Attention.__init__ arguments. */
const ATTENTION = [
  "query_dim",
  "cross_attention_dim",
  "heads",
  "dim_head",
  "dropout",
  "bias",
  "upcast_attention",
  "upcast_softmax",
  "cross_attention_norm",
  "cross_attention_norm_num_groups",
  "added_kv_proj_dim",
  "norm_num_groups",
  "spatial_norm_dim",
  "out_bias",
  "scale_qk",
  "only_cross_attention",
  "eps",
  "rescale_output_factor",
  "residual_connection",
  "_from_deprecated_attn_block",
  "processor",
  "out_dim",
] as const;

/** Processors that compute AttnProcessor's math. */
const PLAIN_PROCESSORS = ["AttnProcessor", "AttnProcessor2_0"];

export function attentionModule(c: CaseGraph, call: string): Forward {
  const hidden = c.input("hidden_states");
  const a = argsOf(call, "Attention", ATTENTION, 1);
  a.only("dropout", [0], "dropout is random in training mode");
  for (const name of ["cross_attention_norm", "added_kv_proj_dim", "spatial_norm_dim"]) a.only(name, [null]);
  a.only("only_cross_attention", [false], "it needs added_kv_proj_dim");
  a.only("_from_deprecated_attn_block", [false]);
  // the processor: `Attention(..., processor=AttnProcessor())` or `Attention(...) with AttnProcessor()`
  const processor = a.has("processor")
    ? (a.call("processor")?.fn ?? pyRepr(a.value("processor")))
    : /\bwith\s+([\w.]+)\s*\(/.exec(call)?.[1];
  if (processor !== undefined && !PLAIN_PROCESSORS.includes(processor.replace(/^.*\./, "")))
    throw new UnsupportedError(`attention processor ${processor}`, { hint: PLAIN_PROCESSORS.join(" or ") });
  const forwardCall = findCall(call, "attn");
  const fwd = forwardCall
    ? new CallArgs("attn", forwardCall.call, [
        "hidden_states",
        "encoder_hidden_states",
        "attention_mask",
        "temb",
      ])
    : undefined;
  fwd?.only("attention_mask", [null]);
  fwd?.only("temb", [null]);
  const ehsName = fwd ? fwd.name("encoder_hidden_states") : undefined;
  const cross = a.optNum("cross_attention_dim");
  const outDim = a.optNum("out_dim");
  const groups = a.optNum("norm_num_groups");
  const { model, finish } = c.module(
    (w) =>
      new Attention(w, {
        queryDim: a.num("query_dim", Number(hidden.shape[2])),
        ...(cross === null ? {} : { crossAttentionDim: cross }),
        heads: a.num("heads", 8),
        dimHead: a.num("dim_head", 64),
        bias: a.bool("bias", false),
        outBias: a.bool("out_bias", true),
        ...(outDim === null ? {} : { outDim }),
        scaleQk: a.bool("scale_qk", true),
        upcastAttention: a.bool("upcast_attention", false),
        upcastSoftmax: a.bool("upcast_softmax", false),
        ...(groups === null ? {} : { normNumGroups: groups }),
        eps: a.num("eps", 1e-5),
        residualConnection: a.bool("residual_connection", false),
        rescaleOutputFactor: a.num("rescale_output_factor", 1),
      }),
  );
  const ehs = ehsName ? c.input(ehsName) : undefined;
  const output = model.forward(hidden, ehs ? { encoderHiddenStates: ehs } : {});
  finish();
  return { output };
}

/** diffusers 0.26.3 FeedForward.__init__ arguments. */
const FEED_FORWARD = [
  "dim",
  "dim_out",
  "mult",
  "dropout",
  "activation_fn",
  "final_dropout",
  "inner_dim",
  "bias",
] as const;

/** FeedForward's `net.0` for each activation_fn diffusers 0.26.3 builds. */
const FEED_FORWARD_ACTIVATIONS: Record<
  string,
  (w: WeightScope, o: ProjectedActivationOptions) => { forward(x: Value): Value }
> = {
  gelu: (w, o) => new GELU(w, o),
  "gelu-approximate": (w, o) => new GELU(w, { ...o, approximate: "tanh" }),
  geglu: (w, o) => new GEGLU(w, o),
  "geglu-approximate": (w, o) => new ApproximateGELU(w, o),
};

/**
 * diffusers FeedForward(dim, dim_out, mult, dropout, activation_fn, final_dropout, inner_dim, bias):
 * net.0 = the activation's projection to inner_dim (int(dim * mult) by default), net.2 = Linear to
 * dim_out. The engine's own FeedForward (GEGLU, dim_out = dim) when the settings are its.
 */
export function feedForward(c: CaseGraph, call: string): Forward {
  const x = c.input("x");
  const a = argsOf(call, "FeedForward", FEED_FORWARD);
  a.only("dropout", [0], "dropout is random in training mode");
  a.bool("final_dropout", false); // a Dropout(0): the identity
  const dim = a.num("dim", Number(x.shape[x.rank - 1]));
  const dimOut = a.optNum("dim_out") ?? dim;
  const mult = a.num("mult", 4);
  const inner = a.optNum("inner_dim") ?? Math.trunc(dim * mult);
  const bias = a.bool("bias", true);
  const activation = a.str("activation_fn", "geglu");
  const makeAct = FEED_FORWARD_ACTIVATIONS[activation];
  if (!makeAct)
    throw new UnsupportedError(`FeedForward activation_fn='${activation}'`, {
      hint: `diffusers 0.26.3 builds ${Object.keys(FEED_FORWARD_ACTIVATIONS).join(", ")}`,
    });
  const engineOwn = activation === "geglu" && bias && dimOut === dim && inner === dim * mult;
  const { model, finish } = c.module((w) => {
    if (engineOwn) return new FeedForward(w, dim, mult);
    const act = makeAct(w.at("net").at(0), { dimIn: dim, dimOut: inner, bias });
    const out = new Linear(w.at("net").at(2), { inFeatures: inner, outFeatures: dimOut, bias });
    return { forward: (v: Value): Value => out.forward(act.forward(v)) };
  });
  const output = model.forward(x);
  finish();
  return { output };
}

const TIMESTEPS = ["num_channels", "flip_sin_to_cos", "downscale_freq_shift", "scale"] as const;
const TIMESTEP_EMBEDDING = [
  "in_channels",
  "time_embed_dim",
  "act_fn",
  "out_dim",
  "post_act_fn",
  "cond_proj_dim",
  "sample_proj_bias",
] as const;

/** diffusers TimestepEmbedding(...)(Timesteps(...)(timesteps)). */
export function timestepEmbedding(c: CaseGraph, call: string): Forward {
  const t = argsOf(call, "Timesteps", TIMESTEPS);
  const e = argsOf(call, "TimestepEmbedding", TIMESTEP_EMBEDDING);
  e.only("cond_proj_dim", [null], "the call passes no condition");
  e.only("sample_proj_bias", [true]);
  const inChannels = e.num("in_channels", 0);
  const proj = new Timesteps({
    numChannels: t.num("num_channels", inChannels),
    flipSinToCos: t.bool("flip_sin_to_cos", true),
    downscaleFreqShift: t.num("downscale_freq_shift", 1),
    scale: t.num("scale", 1),
  });
  const outDim = e.optNum("out_dim");
  const post = e.value("post_act_fn");
  const { model, finish } = c.module(
    (w) =>
      new TimestepEmbedding(w, {
        inChannels,
        timeEmbedDim: e.num("time_embed_dim", 0),
        ...(outDim === null ? {} : { outDim }),
        actFn: e.str("act_fn", "silu"),
        postActFn: post === undefined || post === null ? null : e.str("post_act_fn", ""),
      }),
  );
  const output = model.forward(proj.forward(c.g, c.input("timesteps")));
  finish();
  return { output };
}

/** diffusers 0.26.3 ResnetBlock2D.__init__ arguments (keyword-only). */
const RESNET_BLOCK_2D = [
  "in_channels",
  "out_channels",
  "conv_shortcut",
  "dropout",
  "temb_channels",
  "groups",
  "groups_out",
  "pre_norm",
  "eps",
  "non_linearity",
  "skip_time_act",
  "time_embedding_norm",
  "kernel",
  "output_scale_factor",
  "use_in_shortcut",
  "up",
  "down",
  "conv_shortcut_bias",
  "conv_2d_out_channels",
] as const;

/**
 * diffusers ResnetBlock2D(...)(x, temb) as the engine's module builds it: output_scale_factor,
 * non_linearity and temb_channels (None: no time_emb_proj) pass through; settings the module does
 * not build (time_embedding_norm other than "default", up/down, a different groups_out or
 * conv_2d_out_channels, forced shortcuts, skip_time_act, dropout) are refused.
 */
export function resnetBlock(c: CaseGraph, call: string): Forward {
  const x = c.input("x");
  const a = argsOf(call, "ResnetBlock2D", RESNET_BLOCK_2D, 0);
  const inChannels = a.num("in_channels", Number(x.shape[1]));
  const outChannels = a.optNum("out_channels") ?? inChannels;
  const groups = a.num("groups", 32);
  const tembChannels = a.value("temb_channels") === null ? null : a.num("temb_channels", 512);
  a.only("dropout", [0], "dropout is random in training mode");
  a.only("time_embedding_norm", ["default"], "the engine's ResnetBlock2D adds the time embedding");
  a.only("up", [false]);
  a.only("down", [false]);
  a.only("skip_time_act", [false]);
  a.only("groups_out", [null, groups], "norm2 uses `groups` groups");
  a.only("conv_2d_out_channels", [null, outChannels], "conv2 has out_channels outputs");
  a.only("use_in_shortcut", [null, inChannels !== outChannels], "the shortcut conv exists iff in != out");
  if (inChannels !== outChannels) a.only("conv_shortcut_bias", [true]);
  a.bool("conv_shortcut", false); // stored but unused by diffusers 0.26.3 ResnetBlock2D (always 1x1)
  a.bool("pre_norm", true); // diffusers 0.26.3 sets pre_norm = True whatever it is given
  // `kernel` only chooses the up/down resampler (fir, sde_vp): without up/down it changes nothing
  const { model, finish } = c.module(
    (w) =>
      new ResnetBlock2D(w, {
        inChannels,
        outChannels,
        tembChannels,
        groups,
        eps: a.num("eps", 1e-6),
        actFn: a.str("non_linearity", "swish"),
        outputScaleFactor: a.num("output_scale_factor", 1),
      }),
  );
  const temb = tembChannels !== null && c.tryTensor("temb") ? c.input("temb") : null;
  const output = model.forward(x, temb);
  finish();
  return { output };
}

export function positionalEncoding(g: GraphBuilder, x: Value, b: Value): Value {
  // [N, d] -> [N, d, L] -> cat(sin, cos) on dim 1 -> [N, 2d, L] -> transpose -> [N, L * 2d]
  const proj = op.Mul(g, op.Unsqueeze(g, x, [2]), b);
  const both = op.Concat(g, [op.Sin(g, proj), op.Cos(g, proj)], 1);
  return op.Reshape(g, op.Transpose(g, both, [0, 2, 1]), [Number(x.shape[0]), -1]);
}

/** NLA IMLP.__init__ arguments (implicit_neural_networks.py). */
const IMLP = [
  "input_dim",
  "output_dim",
  "hidden_dim",
  "use_positional",
  "positional_dim",
  "skip_layers",
  "num_layers",
  "verbose",
  "use_tanh",
  "apply_softmax",
] as const;

/**
 * A boolean IMLP setting: from the call, else from its comment (the fixtures note the defaults
 * there: `IMLP(...)(x)  # use_tanh=True`), else `fallback`.
 */
function imlpFlag(a: CallArgs, call: string, name: string, fallback: boolean): boolean {
  if (a.value(name) !== undefined) return a.bool(name, fallback);
  const comment = call.includes("#") ? call.slice(call.indexOf("#") + 1) : "";
  const noted = kw(comment, name);
  if (noted === undefined) return fallback;
  const v = parseLiteral(noted);
  if (typeof v !== "boolean") throw new UnsupportedError(`IMLP ${name}=${noted}`, { hint: "True or False" });
  return v;
}

export function imlp(c: CaseGraph, call: string): Forward {
  const g = c.g;
  const x = c.input("x");
  const a = argsOf(call, "IMLP", IMLP);
  const numLayers = a.num("num_layers", 8);
  const outputDim = a.optNum("output_dim");
  if (outputDim === null)
    throw new ConfigError("case.json", `cases.${c.name}.call`, "an IMLP call with output_dim", call);
  const hidden = a.num("hidden_dim", 256);
  const positional = a.bool("use_positional", true);
  const positionalDim = a.num("positional_dim", 10);
  const skips = a.numbers("skip_layers", [4, 6]);
  const inputDim = a.num("input_dim", Number(x.shape[1]));
  a.bool("verbose", true); // prints the parameter count
  // src/atlas/networks.ts builds IMLPs with or without the final tanh, never with a softmax
  const tanh = imlpFlag(a, call, "use_tanh", true);
  if (imlpFlag(a, call, "apply_softmax", false))
    throw new UnsupportedError("IMLP apply_softmax=True", {
      hint: "the atlas networks (src/atlas/networks.ts) have no softmax output",
    });
  const b = Float32Array.from({ length: positionalDim }, (_, j) => 2 ** j * Math.PI);
  const encode = (v: Value): Value =>
    positional
      ? positionalEncoding(g, v, g.constant({ dtype: "float32", shape: [positionalDim], data: b }))
      : v;
  // IMLP.forward: input = x.detach() (the skip path carries no gradient): a second, undifferentiated feed
  const detached = encode(c.input("x", "x_detached"));
  const enc = positional ? 2 * inputDim * positionalDim : inputDim;
  const { model: layers, finish } = c.module((w) =>
    Array.from({ length: numLayers }, (_, i) => {
      const inF = i === 0 ? enc : skips.includes(i) ? hidden + enc : hidden;
      return new Linear(w.at("hidden").at(i), {
        inFeatures: inF,
        outFeatures: i === numLayers - 1 ? outputDim : hidden,
      });
    }),
  );
  let h = encode(x);
  layers.forEach((layer, i) => {
    if (i > 0) h = op.Relu(g, h);
    if (skips.includes(i)) h = op.Concat(g, [h, detached], 1);
    h = layer.forward(h);
  });
  finish();
  return { output: tanh ? op.Tanh(g, h) : h };
}
