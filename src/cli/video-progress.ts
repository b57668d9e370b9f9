/**
 * The progress line of a video render: frame i/N, denoising step s/S of the current batch, and an
 * estimate of the time left from the frames finished so far ("model loading" and other tasks fall back
 * to the plain bar). One line in a terminal, a line per finished frame otherwise.
 */
import type { ProgressCallback } from "../progress.js";
import { progressBar } from "./progress-bar.js";

function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  return s >= 3600
    ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`
    : s >= 60
      ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`
      : `${s}s`;
}

export function videoProgress(stream: NodeJS.WritableStream, interactive: boolean): ProgressCallback {
  const plain = progressBar(stream, interactive);
  let frames = { done: 0, total: 0 };
  let step = { done: 0, total: 0 };
  let started = 0;
  let startedAt = 0;
  let denoising = false;
  const line = (): string => {
    const elapsed = (Date.now() - startedAt) / 1000;
    const made = frames.done - started;
    const left = made > 0 ? (elapsed / made) * (frames.total - frames.done) : Number.NaN;
    return `frame ${frames.done}/${frames.total}  step ${step.done}/${step.total}  ETA ${duration(left)}`;
  };
  return (event) => {
    if (event.task === "video frames") {
      if (event.status === "start") {
        frames = { done: 0, total: event.total ?? 0 };
        startedAt = Date.now();
      } else if (event.status === "progress") {
        if (!denoising) started = event.done; // frames already there (--resume)
        frames = { done: event.done, total: event.total ?? frames.total };
        if (!interactive) stream.write(`${line()}\n`);
      } else if (interactive) stream.write(`\r\x1b[2K${line()}\n`);
      return;
    }
    if (event.task === "denoising") {
      denoising = true;
      if (event.status === "start") step = { done: 0, total: event.total ?? 0 };
      else if (event.status === "progress") step = { done: event.done, total: event.total ?? step.total };
      if (interactive) stream.write(`\r\x1b[2K${line()}`);
      return;
    }
    plain(event);
  };
}
