/**
 * Cuts a byte stream (ffmpeg's raw rgb24 stdout) into exact frame-size buffers. Pulling from the
 * stream's async iterator only when the consumer asks for the next frame is what gives
 * backpressure: an unread pipe fills up and ffmpeg blocks on its write.
 */

/** Yields `frameBytes`-sized arrays; a partial frame at the end is reported through `onTrailing`. */
export async function* frameChunks(
  stream: AsyncIterable<Uint8Array>,
  frameBytes: number,
  onTrailing: (bytes: number) => void,
): AsyncGenerator<Uint8Array, void, undefined> {
  let frame: Uint8Array | undefined;
  let filled = 0;
  for await (const chunk of stream) {
    let offset = 0;
    while (offset < chunk.length) {
      const take = Math.min(frameBytes - filled, chunk.length - offset);
      frame ??= new Uint8Array(frameBytes);
      frame.set(chunk.subarray(offset, offset + take), filled);
      filled += take;
      offset += take;
      if (filled === frameBytes) {
        yield frame;
        frame = undefined;
        filled = 0;
      }
    }
  }
  if (filled > 0) onTrailing(filled);
}
