/**
 * Draws ProgressEvents as a one-line bar on a terminal, or as occasional plain lines elsewhere.
 */
import type { ProgressCallback } from "../progress.js";

export function progressBar(stream: NodeJS.WritableStream, interactive: boolean): ProgressCallback {
  let lastLine = 0;
  let lastPercent = -1;
  return (event) => {
    if (event.status === "start") {
      lastPercent = -1;
      if (!interactive) stream.write(`${event.task}...\n`);
      return;
    }
    if (event.status === "done") {
      if (interactive) stream.write(`\r\x1b[2K${event.task}: done\n`);
      return;
    }
    const { done, total } = event;
    if (!interactive) {
      const percent = total ? Math.floor((100 * done) / total / 25) * 25 : -1;
      if (percent !== lastPercent && percent >= 0) {
        stream.write(`${event.task}: ${done}/${total}\n`);
        lastPercent = percent;
      }
      return;
    }
    const now = Date.now();
    if (now - lastLine < 50 && done !== total) return;
    lastLine = now;
    if (total) {
      const width = 30;
      const filled = Math.round((width * done) / total);
      stream.write(
        `\r\x1b[2K${event.task} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${done}/${total}`,
      );
    } else {
      stream.write(`\r\x1b[2K${event.task}: ${done}`);
    }
  };
}
