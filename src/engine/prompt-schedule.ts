/**
 * Prompt travel: a per-frame prompt schedule `{0: "a car in summer", 24: "a car in winter"}`. Each key
 * frame's prompt is encoded once; a frame between two keys gets their embeddings linearly interpolated
 * (weight (f - a) / (b - a) towards the later key); frames before the first key take the first
 * prompt, frames after the last key the last one.
 */
import { InvalidArgumentError } from "../errors.js";
import { tensor, type HostTensor } from "../tensor.js";

/** Frame index -> prompt. A plain string is the same prompt for every frame. */
export type PromptSchedule = string | Readonly<Record<number, string>>;

export interface ScheduleKey {
  readonly frame: number;
  readonly prompt: string;
}

/** The schedule's keys, sorted, validated (integer frames >= 0, at least one). */
export function scheduleKeys(schedule: PromptSchedule): ScheduleKey[] {
  if (typeof schedule === "string") return [{ frame: 0, prompt: schedule }];
  const keys = Object.entries(schedule).map(([k, prompt]) => {
    const frame = Number(k);
    if (!Number.isInteger(frame) || frame < 0) {
      throw new InvalidArgumentError("prompt schedule", "frame numbers that are integers >= 0", k, {
        hint: 'write it as {"0": "first prompt", "24": "later prompt"}',
      });
    }
    if (typeof prompt !== "string")
      throw new InvalidArgumentError(`prompt schedule[${k}]`, "a string", typeof prompt);
    return { frame, prompt };
  });
  if (keys.length === 0) throw new InvalidArgumentError("prompt schedule", "at least one prompt", "{}");
  return keys.sort((a, b) => a.frame - b.frame);
}

/** Parses `--prompt-schedule`: JSON `{"0": "...", "24": "..."}` or `0:text|24:text`. */
export function parsePromptSchedule(text: string): Record<number, string> {
  const trimmed = text.trim();
  if (trimmed.startsWith("{")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      throw new InvalidArgumentError("--prompt-schedule", 'JSON like {"0": "a", "24": "b"}', text);
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
      throw new InvalidArgumentError("--prompt-schedule", "a JSON object of frame -> prompt", text);
    const out: Record<number, string> = {};
    for (const [k, v] of Object.entries(parsed)) {
      if (typeof v !== "string")
        throw new InvalidArgumentError(`--prompt-schedule "${k}"`, "a prompt string", JSON.stringify(v));
      out[Number(k)] = v;
    }
    scheduleKeys(out);
    return out;
  }
  const out: Record<number, string> = {};
  for (const part of trimmed.split("|")) {
    const m = /^\s*(\d+)\s*:(.*)$/.exec(part);
    if (!m) throw new InvalidArgumentError("--prompt-schedule", '"FRAME:prompt|FRAME:prompt" or JSON', part);
    out[Number(m[1])] = (m[2] ?? "").trim();
  }
  scheduleKeys(out);
  return out;
}

/** The two keys around `frame` and the weight of the later one (0 at or before the first key). */
export function keysAround(keys: readonly ScheduleKey[], frame: number): [ScheduleKey, ScheduleKey, number] {
  const first = keys[0];
  if (first === undefined) throw new InvalidArgumentError("prompt schedule", "at least one prompt", 0);
  let a = first;
  for (const k of keys) {
    if (k.frame > frame) return [a, k, a === k ? 0 : (frame - a.frame) / (k.frame - a.frame)];
    a = k;
  }
  return [a, a, 0];
}

/** (1 - w) * a + w * b in float32. */
export function lerpTensors(
  a: HostTensor<"float32">,
  b: HostTensor<"float32">,
  w: number,
): HostTensor<"float32"> {
  if (w === 0) return a;
  const wf = Math.fround(w);
  return tensor(
    "float32",
    a.shape,
    a.data.map((x, i) => Math.fround(x + Math.fround(wf * Math.fround((b.data[i] ?? 0) - x)))),
  );
}
