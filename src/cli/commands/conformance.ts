/**
 * `steadyframe conformance <dir>...`: runs every fixture folder (a case.json) under the given folders
 * and prints fixture, tensor, max abs error, tolerance and pass/fail. Exits 1 on any failure.
 */
import { InvalidArgumentError } from "../../errors.js";
import { FIXTURE_KINDS } from "../../conformance/registry.js";
import { runConformance } from "../../conformance/run.js";
import { formatTable, summarize } from "../../conformance/table.js";
import { CACHE_DIR_ENV } from "../../runtime/cache-store.js";
import { DEVICE_ENV, EXECUTION_PROVIDERS, type ExecutionProvider } from "../../runtime/session.js";
import { writeFileAtomic } from "../../util/atomic-write.js";
import type { CliCommand } from "../command.js";
import { checkOutputPath } from "../output-path.js";
import { progressBar } from "../progress-bar.js";
import { parseCommandArgs } from "./cli-options.js";

const usage = `Usage: steadyframe conformance <dir>... [--kind <kind>]... [--device <d>] [--json <file>] [--list]

Finds every fixture folder (one with a case.json) below the given folders, runs it with the runner
for its kind, and compares each output with the tolerance in its case.json.

Options:
  --kind <kind>   only run fixtures of this kind (repeatable)
  --device <d>    cpu (default), webgpu or cuda: the ONNX Runtime execution provider of every model
                  the fixtures run (no fallback: a provider that cannot start fails the fixture)
  --json <file>   also write the results as JSON
  --cache-dir <d> compiled-model cache folder (default: $STEADYFRAME_CACHE_DIR, else
                  <os tmpdir>/steadyframe/models; see steadyframe cache --help)
  --list          list the fixture kinds this build can run
`;

export const conformanceCommand: CliCommand = {
  name: "conformance",
  summary: "check this build's numbers against reference fixtures (case.json folders)",
  usage,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, {
      kind: { type: "string", multiple: true },
      json: { type: "string" },
      list: { type: "boolean", default: false },
      "cache-dir": { type: "string" },
      device: { type: "string" },
    });
    if (values.list) {
      for (const k of FIXTURE_KINDS) io.stdout.write(`${k.kind.padEnd(20)} ${k.description}\n`);
      return 0;
    }
    if (positionals.length === 0) {
      throw new InvalidArgumentError("<dir>", "at least one fixture folder", undefined, {
        hint: "e.g. steadyframe conformance test/fixtures/golden",
      });
    }
    let device: ExecutionProvider = "cpu";
    if (values.device !== undefined) {
      const wanted = values.device;
      const found = EXECUTION_PROVIDERS.find((p) => p === wanted);
      if (found === undefined)
        throw new InvalidArgumentError("--device", `one of ${EXECUTION_PROVIDERS.join(", ")}`, wanted);
      device = found;
    }
    if (values.json !== undefined) await checkOutputPath("--json", values.json, "file");
    // The fixture runners load their models without naming a provider: they take this one.
    process.env[DEVICE_ENV] = device;
    // The fixture runners build their models with the default cache folder, which this sets.
    if (values["cache-dir"] !== undefined) process.env[CACHE_DIR_ENV] = values["cache-dir"];
    const results = await runConformance(positionals, {
      onProgress: progressBar(io.stderr, io.interactive),
      signal: io.signal,
      ...(values.kind === undefined ? {} : { onlyKinds: values.kind }),
    });
    if (results.length === 0) {
      io.stderr.write(`no fixture folders (with a case.json) found under ${positionals.join(", ")}\n`);
      return 2;
    }
    io.stdout.write(`${formatTable(results)}\n`);
    const { passed, failed, fixtures } = summarize(results);
    if (values.json !== undefined) {
      await writeFileAtomic(
        values.json,
        `${JSON.stringify({ device, passed, failed, fixtures: results }, null, 2)}\n`,
      );
    }
    io.stdout.write(`\n${fixtures} fixtures: ${passed} checks passed, ${failed} failed (device ${device})\n`);
    return failed === 0 ? 0 : 1;
  },
};
