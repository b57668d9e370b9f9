/**
 * The 32-bit Mersenne Twister (MT19937), as PyTorch's CPU generator uses it
 * (pytorch/pytorch: aten/src/ATen/core/MT19937RNGEngine.h). The state is seeded with the low 32
 * bits of the seed through the standard Knuth multiplier 1812433253; outputs are the standard
 * tempered words, so seed 5489 gives 3499211612, 581869302, 3890346734, ...
 */

const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;

export class MT19937 {
  private readonly state = new Uint32Array(N);
  private index = N;

  /** `seed` is taken modulo 2^32 (a uint32 as torch's `init_with_uint32` does). */
  constructor(seed: number) {
    const s = this.state;
    s[0] = seed >>> 0;
    for (let j = 1; j < N; j++) {
      const prev = s[j - 1] ?? 0;
      s[j] = (Math.imul(1812433253, prev ^ (prev >>> 30)) + j) >>> 0;
    }
    this.index = N;
  }

  /** The next uint32 output, as a non-negative JS number. */
  nextUint32(): number {
    if (this.index >= N) this.twist();
    let y = this.state[this.index++] ?? 0;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  private twist(): void {
    const s = this.state;
    for (let i = 0; i < N; i++) {
      const y = ((s[i] ?? 0) & UPPER_MASK) | ((s[(i + 1) % N] ?? 0) & LOWER_MASK);
      s[i] = ((s[(i + M) % N] ?? 0) ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0)) >>> 0;
    }
    this.index = 0;
  }
}
