/**
 * The `parse<Model>Config(file, json)` / `read<Model>Config(path)` pair every model config module
 * exports, made from its field table (see ../config/parse.ts for the parsing rules).
 */
import {
  type ConfigOf,
  type FieldSpec,
  type ParseOptions,
  type Parsed,
  parseConfig,
  readConfigFile,
} from "../config/parse.js";

export interface ConfigReaders<C> {
  /** Parses a config.json object; `file` names it in errors and warnings. */
  parse(file: string, json: unknown, options?: ParseOptions): Parsed<C>;
  /** Reads and parses a config.json file. */
  read(path: string, options?: ParseOptions): Promise<Parsed<C>>;
}

/** Readers for a field table; `ignore` lists keys that are known but irrelevant (never warned about). */
export function configReaders<S extends Record<string, FieldSpec<unknown>>>(
  specs: S,
  ignore: readonly string[] = [],
): ConfigReaders<ConfigOf<S>> {
  const withIgnored = (options: ParseOptions): ParseOptions =>
    ignore.length === 0 ? options : { ...options, ignore: [...ignore, ...(options.ignore ?? [])] };
  return {
    parse: (file, json, options = {}) => parseConfig(file, json, specs, withIgnored(options)),
    read: (path, options = {}) => readConfigFile(path, specs, withIgnored(options)),
  };
}
