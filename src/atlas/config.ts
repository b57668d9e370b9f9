/**
 * Reading the release's config/config.json (ykasten/layered-neural-atlases) keys into the atlas
 * module's network specs and loss configuration; keys missing from `json` keep the release values.
 */
import { ConfigError } from "../errors.js";
import { type AtlasLossConfig, RELEASE_LOSS_CONFIG } from "./losses.js";
import { type AtlasNets, releaseNets } from "./networks.js";

type Json = Readonly<Record<string, unknown>>;

function num(file: string, json: Json, key: string, fallback: number): number {
  const v = json[key];
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v)) throw new ConfigError(file, key, "a number", v);
  return v;
}

/** AtlasLossConfig from config.json keys (rgb_coeff, optical_flow_coeff, ...). */
export function lossConfigFromJson(file: string, json: Json): AtlasLossConfig {
  const r = RELEASE_LOSS_CONFIG;
  return {
    uvMappingScale: num(file, json, "uv_mapping_scale", r.uvMappingScale),
    derivativeAmount: num(file, json, "derivative_amount", r.derivativeAmount),
    globalDerivativeFg: num(file, json, "global_rigidity_derivative_amount_fg", r.globalDerivativeFg),
    globalDerivativeBg: num(file, json, "global_rigidity_derivative_amount_bg", r.globalDerivativeBg),
    rigidityCoeff: num(file, json, "rigidity_coeff", r.rigidityCoeff),
    globalRigidityCoeffFg: num(file, json, "global_rigidity_coeff_fg", r.globalRigidityCoeffFg),
    globalRigidityCoeffBg: num(file, json, "global_rigidity_coeff_bg", r.globalRigidityCoeffBg),
    rgbCoeff: num(file, json, "rgb_coeff", r.rgbCoeff),
    opticalFlowCoeff: num(file, json, "optical_flow_coeff", r.opticalFlowCoeff),
    alphaBootstrappingFactor: num(file, json, "alpha_bootstrapping_factor", r.alphaBootstrappingFactor),
    alphaFlowFactor: num(file, json, "alpha_flow_factor", r.alphaFlowFactor),
    sparsityCoeff: num(file, json, "sparsity_coeff", r.sparsityCoeff),
    // use_gradient_loss false: train.py's gradient_loss is the constant 0.0
    gradientLossCoeff:
      json.use_gradient_loss === false ? 0 : num(file, json, "gradient_loss_coeff", r.gradientLossCoeff),
    stopGlobalRigidity:
      json.include_global_rigidity_loss === false
        ? -1
        : num(file, json, "stop_global_rigidity", r.stopGlobalRigidity),
    stopBootstrapping: num(file, json, "stop_bootstrapping_iteration", r.stopBootstrapping),
  };
}

/** Network specs from config.json keys (number_of_channels_*, number_of_layers_*, PE counts). */
export function netsFromJson(file: string, json: Json): AtlasNets {
  const base = releaseNets(256);
  const usePe = (key: string): boolean => json[key] === true;
  return {
    mapping1: {
      ...base.mapping1,
      hiddenDim: num(file, json, "number_of_channels_mapping1", 256),
      numLayers: num(file, json, "number_of_layers_mapping1", base.mapping1.numLayers),
      positional: usePe("use_positional_encoding_mapping1"),
      positionalDim: num(file, json, "number_of_positional_encoding_mapping1", base.mapping1.positionalDim),
    },
    mapping2: {
      ...base.mapping2,
      hiddenDim: num(file, json, "number_of_channels_mapping2", 256),
      numLayers: num(file, json, "number_of_layers_mapping2", base.mapping2.numLayers),
      positional: usePe("use_positional_encoding_mapping2"),
      positionalDim: num(file, json, "number_of_positional_encoding_mapping2", base.mapping2.positionalDim),
    },
    alpha: {
      ...base.alpha,
      hiddenDim: num(file, json, "number_of_channels_alpha", 256),
      numLayers: num(file, json, "number_of_layers_alpha", base.alpha.numLayers),
      positionalDim: num(file, json, "positional_encoding_num_alpha", base.alpha.positionalDim),
    },
    atlas: {
      ...base.atlas,
      hiddenDim: num(file, json, "number_of_channels_atlas", 256),
      numLayers: num(file, json, "number_of_layers_atlas", base.atlas.numLayers),
      positionalDim: num(file, json, "positional_encoding_num_atlas", base.atlas.positionalDim),
    },
  };
}
