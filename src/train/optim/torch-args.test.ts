import { describe, expect, it } from "vitest";
import { InvalidArgumentError, UnsupportedError } from "../../errors.js";
import { Adam, AdamW } from "./adam.js";
import { SGD } from "./sgd.js";
import { getSchedulerLr, parseGetSchedulerCall, torchOptimizer } from "./torch-args.js";

describe("torchOptimizer (torch 1.13 constructor keywords)", () => {
  it("applies each class's defaults: AdamW weight_decay 0.01, Adam 0, lr 1e-3", () => {
    const adamw = torchOptimizer("AdamW", { lr: 0.1, weight_decay: null });
    expect(adamw.optimizer).toBeInstanceOf(AdamW);
    expect((adamw.optimizer as AdamW).weightDecay).toBe(0.01);
    const adam = torchOptimizer("Adam", {});
    expect((adam.optimizer as Adam).weightDecay).toBe(0);
    expect(adam.lr).toBe(1e-3);
    expect((adam.optimizer as Adam).beta2).toBe(0.999);
  });

  it("passes amsgrad and maximize on", () => {
    const a = torchOptimizer("Adam", { amsgrad: true, maximize: true, foreach: null }).optimizer as Adam;
    expect([a.amsgrad, a.maximize]).toEqual([true, true]);
    const s = torchOptimizer("SGD", { lr: 0.1, maximize: true }).optimizer as SGD;
    expect(s.options.maximize).toBe(true);
  });

  it("refuses what it does not implement, and values of the wrong type", () => {
    expect(() => torchOptimizer("RMSprop", { lr: 1 })).toThrow(UnsupportedError);
    expect(() => torchOptimizer("AdamW", { lr: 1, fused: false })).toThrow(/AdamW arguments fused/);
    expect(() => torchOptimizer("Adam", { capturable: true })).toThrow(UnsupportedError);
    expect(() => torchOptimizer("SGD", { lr: 0.1, differentiable: true })).toThrow(UnsupportedError);
    expect(() => torchOptimizer("SGD", { momentum: 0.9 })).toThrow(InvalidArgumentError);
    expect(() => torchOptimizer("Adam", { amsgrad: "yes" })).toThrow(InvalidArgumentError);
    expect(() => torchOptimizer("Adam", { betas: [0.9] })).toThrow(InvalidArgumentError);
  });
});

describe("get_scheduler calls (diffusers 0.26.3)", () => {
  it("reads keyword and positional arguments and quoted step rules", () => {
    expect(
      parseGetSchedulerCall(
        "diffusers.optimization.get_scheduler('cosine', optimizer, num_warmup_steps=2, num_training_steps=5)",
      ),
    ).toEqual({ name: "cosine", kwargs: { num_warmup_steps: 2, num_training_steps: 5 } });
    expect(parseGetSchedulerCall('get_scheduler("piecewise_constant", opt, "1:10,0.1:20,0.01")')).toEqual({
      name: "piecewise_constant",
      kwargs: { step_rules: "1:10,0.1:20,0.01" },
    });
    const call = parseGetSchedulerCall(
      "get_scheduler(name='piecewise_constant', optimizer=opt, step_rules='1:2,0.5:4,0.25', last_epoch=-1)",
    );
    expect([0, 1, 2, 3, 4, 9].map(getSchedulerLr(call, 4))).toEqual([4, 4, 2, 2, 1, 1]);
  });

  it("refuses other schedules and keywords it does not implement", () => {
    expect(() => parseGetSchedulerCall("get_scheduler('exponential', optimizer)")).toThrow(UnsupportedError);
    expect(() => parseGetSchedulerCall("torch.optim.lr_scheduler.StepLR(optimizer, 2)")).toThrow(
      UnsupportedError,
    );
    expect(() =>
      getSchedulerLr({ name: "linear", kwargs: { num_training_steps: 4, gamma: 0.5 } }, 1),
    ).toThrow(/gamma/);
    expect(() => getSchedulerLr({ name: "constant", kwargs: { last_epoch: 3 } }, 1)).toThrow(
      UnsupportedError,
    );
  });
});
