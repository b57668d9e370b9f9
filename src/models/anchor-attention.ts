/**
 * The host side of the anchor cache (cross-frame attention built with `anchorCache: true`, see
 * src/nn/cross-frame.ts): a model run may be given the self-attention keys/values of frames denoised
 * earlier ("anchors") instead of denoising those frames again in the batch, and may record the
 * keys/values of some of its own frames for later batches.
 *
 * An entry is one frame's keys/values for one model and one step: by graph input name
 * (`anchor_key.<path>`, `anchor_value.<path>`), each [videos, 1, tokens, width]. A model's recorded
 * outputs come back as such entries; fed back, they reproduce exactly the keys/values the frame had.
 */
import { InvalidArgumentError } from "../errors.js";
import { ANCHOR_RECORD_INPUT, anchorInputOf } from "../nn/cross-frame.js";
import type { RunOptions, Session } from "../runtime/session.js";
import { type HostTensor, shapeToString, tensor } from "../tensor.js";

/** One frame's keys/values for one model and step: anchor input name -> [V, 1, L, C]. */
export type AnchorEntry = Readonly<Record<string, HostTensor<"float32">>>;

/** What one model run reads from and writes to the anchor cache. */
export interface AnchorAttentionIO {
  /** Cached anchor frames the batch's frames follow, in order (entries as `recorded` gave them). */
  readonly anchors: readonly AnchorEntry[];
  /** The batch's frames (index within each video) whose keys/values to record. */
  readonly record: readonly number[];
  /** Receives one entry per recorded frame, in `record` order. */
  readonly recorded?: (entries: readonly AnchorEntry[]) => void;
}

const isAnchorInput = (name: string): boolean =>
  name.startsWith("anchor_key.") || name.startsWith("anchor_value.");

/** Bytes of an entry. */
export function entryBytes(entry: AnchorEntry): number {
  let n = 0;
  for (const t of Object.values(entry)) n += t.data.byteLength;
  return n;
}

/** Entries [V, 1, L, C] of A frames -> one flat tensor in [V, A, L, C] order. */
function concatFrames(name: string, entries: readonly AnchorEntry[]): HostTensor<"float32"> {
  const parts = entries.map((e, a) => {
    const t = e[name];
    if (t === undefined)
      throw new InvalidArgumentError(`anchorAttention.anchors[${a}]`, `keys/values for ${name}`, "none", {
        hint: "feed entries recorded by the same model (built with the same cross-frame setting)",
      });
    return t;
  });
  const first = parts[0]!;
  const [videos = 1, one = 1] = first.shape;
  for (const [a, t] of parts.entries()) {
    if (t.shape.join() !== first.shape.join() || one !== 1)
      throw new InvalidArgumentError(
        `anchorAttention.anchors[${a}].${name}`,
        `shape ${shapeToString(first.shape)} with one frame`,
        shapeToString(t.shape),
      );
  }
  const block = first.data.length / videos;
  const out = new Float32Array(block * videos * parts.length);
  for (let v = 0; v < videos; v++)
    for (const [a, t] of parts.entries())
      out.set(t.data.subarray(v * block, (v + 1) * block), (v * parts.length + a) * block);
  return tensor("float32", [out.length], out);
}

/**
 * The feeds of a model's anchor inputs (`inputNames`: the session's inputs): the given anchors'
 * keys/values, or empty ones when there are none, and the frames to record. A model without anchor
 * inputs gets nothing, and refuses anchors or records given to it.
 */
export function anchorFeeds(
  model: string,
  inputNames: readonly string[],
  io: AnchorAttentionIO | undefined,
): Record<string, HostTensor> {
  const names = inputNames.filter(isAnchorInput);
  if (names.length === 0) {
    if (io !== undefined && (io.anchors.length > 0 || io.record.length > 0))
      throw new InvalidArgumentError(
        `${model} anchorAttention`,
        "nothing (the model has no anchor cache)",
        io,
        {
          hint: "load the model with crossFrame { anchorCache: true }",
        },
      );
    return {};
  }
  const feeds: Record<string, HostTensor> = {
    [ANCHOR_RECORD_INPUT]: tensor(
      "int64",
      [io?.record.length ?? 0],
      BigInt64Array.from((io?.record ?? []).map((r) => BigInt(r))),
    ),
  };
  for (const name of names)
    feeds[name] = io && io.anchors.length > 0 ? concatFrames(name, io.anchors) : tensor("float32", [0]);
  return feeds;
}

/** Splits a run's recorded outputs ([V, R, L, C] each) into one entry per recorded frame for `io.recorded`. */
export function takeRecorded(
  outputs: Readonly<Record<string, HostTensor>>,
  io: AnchorAttentionIO | undefined,
): void {
  if (io?.recorded === undefined || io.record.length === 0) return;
  const count = io.record.length;
  const entries: Record<string, HostTensor<"float32">>[] = Array.from({ length: count }, () => ({}));
  for (const [name, t] of Object.entries(outputs)) {
    const input = anchorInputOf(name);
    if (input === undefined) continue;
    const [videos = 1, frames = 0, ...rest] = t.shape;
    if (frames !== count || t.dtype !== "float32")
      throw new InvalidArgumentError(name, `float32 [videos, ${count}, ...]`, shapeToString(t.shape));
    const data = t.data as Float32Array;
    const block = data.length / (videos * count);
    for (let r = 0; r < count; r++) {
      const out = new Float32Array(block * videos);
      for (let v = 0; v < videos; v++)
        out.set(data.subarray((v * count + r) * block, (v * count + r + 1) * block), v * block);
      entries[r]![input] = tensor("float32", [videos, 1, ...rest], out);
    }
  }
  io.recorded(entries);
}

/**
 * Runs `session` with `feeds` plus its anchor feeds (see anchorFeeds) and hands the recorded
 * keys/values to `io.recorded`: the one way the UNet and ControlNet runners take the anchor cache.
 */
export async function runWithAnchors(
  model: string,
  session: Session,
  feeds: Readonly<Record<string, HostTensor>>,
  io: AnchorAttentionIO | undefined,
  options: RunOptions = {},
): Promise<Record<string, HostTensor>> {
  const all = {
    ...feeds,
    ...anchorFeeds(
      model,
      session.inputs.map((s) => s.name),
      io,
    ),
  };
  const out = await session.run(all, options);
  takeRecorded(out, io);
  return out;
}
