/**
 * Runs a training graph (forward + loss + backward in one GraphBuilder) on ONNX Runtime: writes it
 * with external data into a fresh temporary folder, opens a session, removes the folder on release.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { GraphBuilder } from "../graph/builder.js";
import { writeModel } from "../graph/serialize.js";
import {
  type CreateSessionOptions,
  type RunOptions,
  type Session,
  createSession,
} from "../runtime/session.js";
import type { HostTensor } from "../tensor.js";

export interface GraphSession {
  readonly session: Session;
  run(feeds: Readonly<Record<string, HostTensor>>, options?: RunOptions): Promise<Record<string, HostTensor>>;
  release(): Promise<void>;
}

export async function openGraphSession(
  g: GraphBuilder,
  options: CreateSessionOptions = {},
): Promise<GraphSession> {
  const dir = await mkdtemp(join(tmpdir(), "steadyframe-train-"));
  try {
    const modelPath = join(dir, `${g.name}.onnx`);
    await writeModel(g, modelPath, { durable: false });
    const session = await createSession(modelPath, options);
    return {
      session,
      run: (feeds, options) => session.run(feeds, options),
      release: async () => {
        await session.release();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
