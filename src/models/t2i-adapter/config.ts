/**
 * T2IAdapter config: the fields of diffusers' `adapter/config.json`, verbatim, with the defaults of
 * `T2IAdapter.__init__` in diffusers 0.26.3 (src/diffusers/models/adapter.py). `adapter_type`
 * "full_adapter" and "light_adapter" (the SD 1.5 adapters) are built; "full_adapter_xl" is refused
 * when the graph is built (see t2i-adapter.ts).
 */
import { type ConfigOf, field } from "../../config/parse.js";
import { configReaders } from "../config-readers.js";

export const T2I_ADAPTER_FIELDS = {
  in_channels: field.int(3, { min: 1 }),
  channels: field.list(field.int(0, { min: 1 }), [320, 640, 1280, 1280]),
  num_res_blocks: field.int(2, { min: 0 }),
  downscale_factor: field.int(8, { min: 1 }),
  adapter_type: field.oneOf(["full_adapter", "full_adapter_xl", "light_adapter"], "full_adapter"),
} as const;

export type T2IAdapterConfig = ConfigOf<typeof T2I_ADAPTER_FIELDS>;

const T2I_ADAPTER_CONFIG = configReaders(T2I_ADAPTER_FIELDS);

/** Parses a T2IAdapter config.json object (`file` names it in errors). */
export const parseT2IAdapterConfig = T2I_ADAPTER_CONFIG.parse;

/** Reads and parses a T2IAdapter config.json file. */
export const readT2IAdapterConfig = T2I_ADAPTER_CONFIG.read;
