/**
 * `steadyframe studio [--port N] [--models DIR] [--outputs DIR] [--host H]`: starts the local web
 * studio (src/studio/server.ts) and prints its address with this session's token; it runs until
 * Ctrl-C, which cancels the running render and stops the server.
 */
import { InvalidArgumentError } from "../../errors.js";
import { startStudio } from "../../studio/server.js";
import type { CliCommand, CliIO } from "../command.js";
import { deviceOption, intOption, parseCommandArgs } from "./cli-options.js";

const FLAGS = {
  port: { type: "string" },
  host: { type: "string" },
  models: { type: "string" },
  outputs: { type: "string" },
  clips: { type: "string" },
  depth: { type: "string" },
  "max-upload-mb": { type: "string" },
  "max-frames": { type: "string" },
  device: { type: "string" },
  "cache-dir": { type: "string" },
} as const;

const USAGE = `Usage: steadyframe studio [--port N] [--models DIR] [--outputs DIR] [--host H] [options]

A local web studio: open or upload a clip, preview its control maps (Canny edges, optical flow,
occlusion, depth with --depth), pick a model, choose strategies, watch renders arrive frame by frame,
cancel, compare strategies side by side with the study's metric plot and table, and browse earlier
runs. It prints an address with a session token: open it in a browser on this machine.

Options:
  --port N              port to listen on (default 7860; 0 = any free port)
  --models DIR          folder of model folders: diffusers pipelines and ControlNets (default ./models)
  --outputs DIR         folder the studio writes: runs/, compare/, clips/ (default ./studio-outputs)
  --clips DIR           folder of clips to open; uploads go there (default <outputs>/clips)
  --host H              address to listen on (default 127.0.0.1; anything else prints a warning:
                        the studio then accepts requests naming H from other machines)
  --depth MODEL.onnx    depth model: depth previews and depth ControlNets
  --max-upload-mb N     largest upload (default 500)
  --max-frames N        most frames of an uploaded clip and of a render (default 1000)
  --device cpu|cuda|webgpu  execution provider of the renders (default cpu)
  --cache-dir DIR       compiled-model cache folder

Models, clips and outputs are used only inside their folders: paths with "..", absolute paths and
symbolic links that lead out of a folder are refused. Every request needs the session token and
must come from the studio's own page (Host and Origin are checked).
`;

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1"]);

async function run(args: readonly string[], io: CliIO): Promise<number> {
  const { values: v, positionals } = parseCommandArgs(args, FLAGS);
  if (positionals.length > 0)
    throw new InvalidArgumentError("studio", "options only (see steadyframe studio --help)", positionals);
  const port = intOption("--port", v.port, 0) ?? 7860;
  if (port > 65535) throw new InvalidArgumentError("--port", "a port from 0 to 65535", v.port);
  const host = v.host ?? "127.0.0.1";
  if (!LOOPBACK.has(host))
    io.stderr.write(
      `warning: --host ${host}: the studio will accept connections from other machines that can reach ${host}; ` +
        "it has no encryption and the token is its only lock. Use it only on a network you trust.\n",
    );
  const mb = intOption("--max-upload-mb", v["max-upload-mb"], 1);
  const maxFrames = intOption("--max-frames", v["max-frames"], 2);
  const studio = await startStudio({
    port,
    host: host === "localhost" ? "127.0.0.1" : host,
    models: v.models ?? "models",
    outputs: v.outputs ?? "studio-outputs",
    ...(v.clips === undefined ? {} : { clips: v.clips }),
    ...(v.depth === undefined ? {} : { depthModel: v.depth }),
    ...(mb === undefined ? {} : { maxUploadBytes: mb * 1024 * 1024 }),
    ...(maxFrames === undefined ? {} : { maxFrames }),
    ...(v.device === undefined ? {} : { device: deviceOption(v.device) }),
    ...(v["cache-dir"] === undefined ? {} : { cacheDir: v["cache-dir"] }),
  });
  io.stdout.write(`Steadyframe Studio: ${studio.url}\n`);
  io.stderr.write("Open the address above in a browser on this machine; Ctrl-C stops the studio.\n");
  await new Promise<void>((resolve) => {
    if (io.signal.aborted) resolve();
    else io.signal.addEventListener("abort", () => resolve(), { once: true });
  });
  io.stderr.write("stopping the studio\n");
  await studio.close();
  return 0;
}

export const studioCommand: CliCommand = {
  name: "studio",
  summary: "a local web studio: previews, renders, live frames, comparisons, history",
  usage: USAGE,
  run,
};
