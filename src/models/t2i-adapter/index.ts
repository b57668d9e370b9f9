/** T2IAdapter (diffusers full_adapter and light_adapter): config, graph module, graph builder and runner. */
export {
  type T2IAdapterConfig,
  T2I_ADAPTER_FIELDS,
  parseT2IAdapterConfig,
  readT2IAdapterConfig,
} from "./config.js";
export {
  type T2IAdapterLoadOptions,
  type T2IAdapterSource,
  T2IAdapterRunner,
  adapterResiduals,
  loadT2IAdapter,
} from "./runner.js";
export {
  AdapterBlock,
  AdapterResnetBlock,
  LightAdapterBlock,
  LightAdapterResnetBlock,
  T2IAdapter,
  T2I_ADAPTER_INPUT,
  adapterFeatureName,
  avgPool2x2Ceil,
  buildT2IAdapter,
  pixelUnshuffle,
} from "./t2i-adapter.js";
