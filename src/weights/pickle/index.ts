/**
 * Safe loading of PyTorch checkpoints (.ckpt / .pth / .pt, zip or legacy torch.save format) without
 * Python and without executing the pickle: see pickle-vm.ts (the VM), torch-globals.ts (the
 * allowlist) and checkpoint.ts (containers).
 *
 * Naming: `readTorchStateDict` returns the state dict's keys as they are ("model.diffusion_model.
 * input_blocks.0.0.weight"), taking `root["state_dict"]` when the file wraps it (SD .ckpt, Lightning)
 * and the top level otherwise (ControlNet .pth); nested containers inside are joined with ".".
 * `readTorchCheckpoint` returns every tensor in the file named by its container path joined with "/"
 * ("state_dict/0.weight", "optimizer_states/0/state/1/exp_avg").
 */
import type { LongTaskOptions } from "../../progress.js";
import type { HostTensor } from "../../tensor.js";
import type { TensorRef } from "./values.js";
import { TorchCheckpoint, type TorchLoadOptions } from "./checkpoint.js";
import { collectTensors, selectStateDict } from "./walk.js";

export { TorchCheckpoint, type TorchLoadOptions } from "./checkpoint.js";
export { DEFAULT_UNPICKLE_LIMITS, unpickle, type UnpickleLimits, type UnpicklePolicy } from "./pickle-vm.js";
export { isAllowedGlobal } from "./torch-globals.js";
export {
  PyDict,
  PyGlobal,
  PySet,
  PyTuple,
  StorageRef,
  TensorRef,
  type PyKey,
  type PyValue,
} from "./values.js";
export { collectTensors, selectStateDict, toJsonValue, type JsonValue } from "./walk.js";

export type ReadTorchOptions = TorchLoadOptions & LongTaskOptions;

export function openTorchCheckpoint(path: string, options: TorchLoadOptions = {}): Promise<TorchCheckpoint> {
  return TorchCheckpoint.open(path, options);
}

async function readSelected(
  path: string,
  options: ReadTorchOptions,
  pick: (checkpoint: TorchCheckpoint) => Map<string, TensorRef>,
): Promise<Map<string, HostTensor>> {
  const checkpoint = await TorchCheckpoint.open(path, options);
  try {
    return await checkpoint.readTensors(pick(checkpoint), options);
  } finally {
    await checkpoint.close();
  }
}

/** The state dict of a checkpoint (see the module comment for which object that is). */
export function readTorchStateDict(
  path: string,
  options: ReadTorchOptions = {},
): Promise<Map<string, HostTensor>> {
  return readSelected(path, options, (c) => collectTensors(selectStateDict(c.root), ".", path));
}

/** Every tensor in a checkpoint, named by container path joined with "/". */
export function readTorchCheckpoint(
  path: string,
  options: ReadTorchOptions = {},
): Promise<Map<string, HostTensor>> {
  return readSelected(path, options, (c) => collectTensors(c.root, "/", path));
}
