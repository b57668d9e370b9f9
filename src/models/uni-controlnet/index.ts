/** Uni-ControlNet: config, local and global adapter graph modules, graph builders and runners. */
export {
  GLOBAL_ADAPTER_INPUT,
  GLOBAL_ADAPTER_OUTPUT,
  LOCAL_ADAPTER_INPUT,
  type UniBuildOptions,
  type UniGraphs,
  buildRandomUniControlNet,
  buildUniControlNetGraphs,
} from "./build.js";
export {
  UNI_LOCAL_CONDITIONS,
  UNI_V15_CONFIG,
  type UniControlNetConfig,
  inferUniConfig,
  parseUniControlNetConfig,
  uniUNetConfig,
} from "./config.js";
export { GlobalAdapter } from "./global-adapter.js";
export { FDN, FeatureExtractor, LocalAdapter, LocalResBlock } from "./local-adapter.js";
export {
  GlobalAdapterRunner,
  LocalAdapterRunner,
  type UniControlNet,
  type UniControlNetLoadOptions,
  type UniControlNetSource,
  checkUniControlNetStore,
  loadUniControlNet,
} from "./runner.js";
