/**
 * Round half to even: numpy's `round`/`rint`, torch's `round`, OpenCV's `cvRound` (lrint in the default
 * rounding mode). 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> -0.
 */
export function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff < 0.5) return floor;
  if (diff > 0.5) return floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}
