import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../errors.js";
import { tensor } from "../tensor.js";
import { DDPMScheduler } from "./ddpm.js";
import {
  posteriorCoefficients,
  predictX0FromEps,
  qPosteriorMeanVariance,
  qSample,
} from "./ddpm-equations.js";

// A three-step toy chain: beta = 0.1, 0.2, 0.3 -> alpha_bar = 0.9, 0.72, 0.504.
const toy = { betas: [0.1, 0.2, 0.3], alphasCumprod: [0.9, 0.72, 0.504] };
const vec = (...v: number[]) => tensor("float32", [v.length], Float32Array.from(v));

describe("qSample", () => {
  it("is sqrt(abar_t) x0 + sqrt(1 - abar_t) eps", () => {
    const x = qSample(vec(1, -2), 1, vec(0.5, 0.25), toy);
    expect(x.data[0]).toBeCloseTo(Math.sqrt(0.72) * 1 + Math.sqrt(0.28) * 0.5, 6);
    expect(x.data[1]).toBeCloseTo(Math.sqrt(0.72) * -2 + Math.sqrt(0.28) * 0.25, 6);
  });
  it("rejects a timestep outside the table", () => {
    expect(() => qSample(vec(1), 3, vec(0), toy)).toThrow(InvalidArgumentError);
    expect(() => qSample(vec(1), 3, vec(0), toy)).toThrow(/for t but received 3/);
  });
});

describe("posterior q(x_{t-1} | x_t, x_0)", () => {
  it("has the closed-form coefficients of eq. 7 (t = 2 of the toy chain)", () => {
    const c = posteriorCoefficients(2, toy);
    expect(c.coef1).toBeCloseTo((0.3 * Math.sqrt(0.72)) / 0.496, 12); // 0.513223...
    expect(c.coef2).toBeCloseTo((0.28 * Math.sqrt(0.7)) / 0.496, 12); // 0.472308...
    expect(c.variance).toBeCloseTo((0.28 / 0.496) * 0.3, 12); // 0.169354...
    expect(c.coef1).toBeCloseTo(0.5132227, 6);
    expect(c.coef2).toBeCloseTo(0.4723081, 6);
  });

  it("is consistent with the forward process: a noise-free x_t maps to the noise-free x_{t-1}", () => {
    // coef1 + coef2 sqrt(abar_t) = sqrt(abar_{t-1})
    for (const t of [1, 2]) {
      const { mean } = qPosteriorMeanVariance(vec(1.5), qSample(vec(1.5), t, vec(0), toy), t, toy);
      expect(mean.data[0]).toBeCloseTo(1.5 * Math.sqrt(toy.alphasCumprod[t - 1] ?? 0), 6);
    }
  });

  it("satisfies the law of total variance: coef2^2 (1 - abar_t) + beta~_t = 1 - abar_{t-1}", () => {
    for (const t of [1, 2]) {
      const c = posteriorCoefficients(t, toy);
      expect(c.coef2 ** 2 * (1 - (toy.alphasCumprod[t] ?? 0)) + c.variance).toBeCloseTo(
        1 - (toy.alphasCumprod[t - 1] ?? 0),
        12,
      );
    }
  });

  it("collapses to x0 at t = 0 (abar_{-1} = 1) with a clipped log variance", () => {
    const r = qPosteriorMeanVariance(vec(0.7), vec(3), 0, toy);
    expect(r.mean.data[0]).toBeCloseTo(0.7, 6);
    expect(r.variance).toBe(0);
    expect(r.logVarianceClipped).toBeCloseTo(Math.log((0.1 / 0.28) * 0.2), 12);
  });
});

describe("predictX0FromEps", () => {
  it("inverts qSample", () => {
    const x0 = vec(0.3, -1.2);
    const eps = vec(-0.4, 0.9);
    const back = predictX0FromEps(qSample(x0, 2, eps, toy), 2, eps, toy);
    expect(back.data[0]).toBeCloseTo(0.3, 5);
    expect(back.data[1]).toBeCloseTo(-1.2, 5);
  });
});

describe("DDPMScheduler agrees with the equations", () => {
  it("a full-length (N = T) step with zero noise is the posterior mean at the predicted x0", () => {
    const s = new DDPMScheduler({ num_train_timesteps: 3, trained_betas: toy.betas, clip_sample: false });
    s.setTimesteps(3);
    const tables = { betas: s.betas, alphasCumprod: s.alphasCumprod };
    const xt = vec(0.8, -0.6);
    const eps = vec(0.1, 0.4);
    const zeros = { randn: (shape: readonly number[]) => tensor("float32", shape) };
    const out = s.step(eps, 2, xt, { generator: zeros });
    const x0 = predictX0FromEps(xt, 2, eps, tables);
    const { mean } = qPosteriorMeanVariance(x0, xt, 2, tables);
    expect(out.predOriginalSample?.data[0]).toBeCloseTo(x0.data[0] ?? NaN, 5);
    expect(out.prevSample.data[0]).toBeCloseTo(mean.data[0] ?? NaN, 5);
    expect(out.prevSample.data[1]).toBeCloseTo(mean.data[1] ?? NaN, 5);
  });
  it("adds sqrt(beta~_t) times the noise", () => {
    const s = new DDPMScheduler({ num_train_timesteps: 3, trained_betas: toy.betas, clip_sample: false });
    s.setTimesteps(3);
    const ones = {
      randn: (shape: readonly number[]) => tensor("float32", shape, new Float32Array(2).fill(1)),
    };
    const zeros = { randn: (shape: readonly number[]) => tensor("float32", shape) };
    const a = s.step(vec(0.1, 0.4), 2, vec(0.8, -0.6), { generator: ones });
    const b = s.step(vec(0.1, 0.4), 2, vec(0.8, -0.6), { generator: zeros });
    const beta = posteriorCoefficients(2, { betas: s.betas, alphasCumprod: s.alphasCumprod }).variance;
    expect((a.prevSample.data[0] ?? 0) - (b.prevSample.data[0] ?? 0)).toBeCloseTo(Math.sqrt(beta), 5);
  });
});
