/**
 * `steadyframe cache ls|clear [--cache-dir <dir>]`: the compiled-model cache (runtime/cache-store.ts)
 * seen from the command line: where it is, its entries with size and last use, the size cap; and
 * deleting it.
 */
import { InvalidArgumentError } from "../../errors.js";
import {
  CACHE_DIR_ENV,
  CACHE_MAX_ENV,
  cacheMaxBytes,
  clearCache,
  listCache,
  resolveCacheDir,
} from "../../runtime/cache-store.js";
import type { CliCommand } from "../command.js";
import { parseCommandArgs } from "./cli-options.js";

const usage = `Usage: steadyframe cache ls|clear [--cache-dir <dir>] [--json]

The compiled-model cache: every model 'image' (and 'conformance') builds is written there as ONNX
(about the size of its weights) and reused by later runs. Least recently used entries are deleted
when the folder grows past the cap.

  ls      list the entries (size, last use) and the total
  clear   delete every entry (do not run it while another steadyframe run is loading models)

Options:
  --cache-dir <dir>   the cache folder (default: $${CACHE_DIR_ENV}, else <os tmpdir>/steadyframe/models)
  --json              print JSON instead of a table

Environment:
  ${CACHE_DIR_ENV}       the cache folder when --cache-dir is not given
  ${CACHE_MAX_ENV}    size cap in GB (10^9 bytes; default 20)
`;

function human(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${(bytes / 1e3).toFixed(1)} kB`;
  return `${bytes} B`;
}

export const cacheCommand: CliCommand = {
  name: "cache",
  summary: "list or clear the compiled-model cache (ls | clear)",
  usage,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, {
      "cache-dir": { type: "string" },
      json: { type: "boolean", default: false },
    });
    const [action, ...rest] = positionals;
    if ((action !== "ls" && action !== "clear") || rest.length > 0) {
      throw new InvalidArgumentError("<action>", "ls or clear", positionals.join(" ") || undefined, {
        hint: "e.g. steadyframe cache ls",
      });
    }
    const dir = resolveCacheDir(values["cache-dir"]);
    const cap = cacheMaxBytes();
    if (action === "clear") {
      const removed = await clearCache(dir);
      const bytes = removed.reduce((s, i) => s + i.bytes, 0);
      if (values.json) {
        io.stdout.write(`${JSON.stringify({ dir, removed: removed.length, bytes }, null, 2)}\n`);
      } else {
        io.stdout.write(`removed ${removed.length} entries (${human(bytes)}) from ${dir}\n`);
      }
      return 0;
    }
    const items = await listCache(dir);
    const total = items.reduce((s, i) => s + i.bytes, 0);
    if (values.json) {
      const entries = items.map((i) => ({
        name: i.name,
        path: i.path,
        bytes: i.bytes,
        lastUsed: i.lastUsed.toISOString(),
        temporary: i.temporary,
      }));
      io.stdout.write(`${JSON.stringify({ dir, bytes: total, capBytes: cap, entries }, null, 2)}\n`);
      return 0;
    }
    const lines = [`${dir}: ${items.length} entries, ${human(total)} (cap ${human(cap)})`];
    for (const i of [...items].reverse()) {
      lines.push(
        `  ${human(i.bytes).padStart(10)}  ${i.lastUsed.toISOString().slice(0, 19).replace("T", " ")}  ${i.name}${i.temporary ? "  (temporary)" : ""}`,
      );
    }
    io.stdout.write(`${lines.join("\n")}\n`);
    return 0;
  },
};
