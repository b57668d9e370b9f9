/** IP-Adapter (SD1.5 plain and plus file layouts): image projections, graph and runner. */
export * from "./image-projection.js";
export {
  IP_ADAPTER_INPUT,
  IP_ADAPTER_TOKENS,
  type IpAdapterLayout,
  buildIpAdapterGraph,
  ipAdapterLayout,
} from "./graph.js";
export {
  IpAdapterRunner,
  type IpAdapterLoadOptions,
  type IpAdapterOutputs,
  type IpAdapterSource,
  scaleIpValues,
} from "./runner.js";
