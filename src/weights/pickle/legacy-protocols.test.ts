import { describe, expect, it } from "vitest";
import { UnsafePickleError, UnsupportedError } from "../../errors.js";
import { TorchCheckpoint } from "./checkpoint.js";
import { collectTensors } from "./walk.js";
import { looksLikeLegacy } from "./legacy-format.js";

const hex = (s: string): Uint8Array => Uint8Array.from(s.match(/../gu) ?? [], (b) => Number.parseInt(b, 16));
const latin1 = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));

/** Legacy torch.save files (a float32 [2] tensor "w" = [1.5, -2]) written with pickle protocols 1 and 4. */
const VALID = {
  protocol1: hex(
    "4c3131393534373033373134363033383830313333333335364c0a2e4de9032e7d710028581000000070726f746f636f6c5f76657273696f6e71014de903580d0000006c6974746c655f656e6469616e71024930310a752e7d7100580100000077710163746f7263682e5f7574696c730a5f72656275696c645f74656e736f725f76320a71022828580700000073746f72616765710363746f7263680a466c6f617453746f726167650a71045801000000307105580300000063707571064b024e747107514b00284b02747108284b017471094930300a63636f6c6c656374696f6e730a4f726465726564446963740a710a2952710b74710c52710d732e5d71005801000000307101612e02000000000000000000c03f000000c0",
  ),
  protocol4: hex(
    "8004950d000000000000008a0a6cfc9c46f9206aa850192e80049504000000000000004de9032e8004952c000000000000007d94288c1070726f746f636f6c5f76657273696f6e944de9038c0d6c6974746c655f656e6469616e9488752e80049593000000000000007d948c0177948c0c746f7263682e5f7574696c73948c125f72656275696c645f74656e736f725f763294939428288c0773746f72616765948c05746f726368948c0c466c6f617453746f726167659493948c0130948c03637075944b024e7494514b004b0285944b018594898c0b636f6c6c656374696f6e73948c0b4f7264657265644469637494939429529474945294732e80049508000000000000005d948c013094612e02000000000000000000c03f000000c0",
  ),
};

/** Protocol-0 legacy header pickles (magic number, 1001, sys_info). */
const HEADER_P0 = "L119547037146038801333356L\n.I1001\n.(dp0\nVlittle_endian\np1\nI01\ns.";

describe("legacy torch files in every pickle protocol", () => {
  it("recognises the magic number in protocols 0, 2 and 4", () => {
    expect(looksLikeLegacy(latin1("L119547037146038801333356L\n."))).toBe(true);
    expect(looksLikeLegacy(hex("80028a0a6cfc9c46f9206aa850192e"))).toBe(true);
    expect(
      looksLikeLegacy(hex("800495 0d00000000000000 8a0a6cfc9c46f9206aa85019 2e".replace(/ /gu, ""))),
    ).toBe(true);
    expect(looksLikeLegacy(latin1("L12L\n."))).toBe(false);
    expect(looksLikeLegacy(latin1("cos\nsystem\n(Vx\ntR."))).toBe(false);
  });

  it.each(Object.entries(VALID))("loads a %s legacy file exactly", async (_name, bytes) => {
    const checkpoint = await TorchCheckpoint.fromBytes(bytes, "legacy.pt");
    const tensors = await checkpoint.readTensors(collectTensors(checkpoint.root, "/", "legacy.pt"));
    await checkpoint.close();
    const w = tensors.get("w");
    expect(w?.shape).toEqual([2]);
    expect(Array.from(w?.data as Float32Array)).toEqual([1.5, -2]);
  });

  it("refuses a protocol-0 legacy file calling os.system as unsafe (not as an unknown format)", async () => {
    const bytes = latin1(`${HEADER_P0}cos\nsystem\n(Vtouch /tmp/x\ntR.(lp0\n.`);
    await expect(TorchCheckpoint.fromBytes(bytes, "evil.pt")).rejects.toThrow(UnsafePickleError);
    await expect(TorchCheckpoint.fromBytes(bytes, "evil.pt")).rejects.toThrow(/os\.system/u);
  });
});

/** A minimal ustar archive (our scanner reads names, sizes and the magic; no checksums). */
function tar(members: Record<string, Uint8Array>): Uint8Array {
  const blocks: Uint8Array[] = [];
  for (const [name, data] of Object.entries(members)) {
    const header = new Uint8Array(512);
    header.set(latin1(name), 0);
    header.set(latin1(`${data.length.toString(8).padStart(11, "0")}\0`), 124);
    header.set(latin1("ustar\u000000"), 257);
    blocks.push(header, data, new Uint8Array((512 - (data.length % 512)) % 512));
  }
  blocks.push(new Uint8Array(1024));
  const out = new Uint8Array(blocks.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of blocks) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

describe("tar-format torch files (PyTorch < 0.4)", () => {
  it("refuses a dangerous pickle member as unsafe, naming the global", async () => {
    const bytes = tar({
      sys_info: latin1("(dp0\nVlittle_endian\np1\nI01\ns."),
      pickle: latin1("cposix\nsystem\n(Vtouch /tmp/x\ntR."),
    });
    await expect(TorchCheckpoint.fromBytes(bytes, "old.tar")).rejects.toThrow(UnsafePickleError);
    await expect(TorchCheckpoint.fromBytes(bytes, "old.tar")).rejects.toThrow(/posix\.system/u);
  });

  it("still refuses a clean tar file as unsupported", async () => {
    const bytes = tar({ sys_info: latin1("(dp0\n."), pickle: latin1("(dp0\nVw\nP0\ns.") });
    await expect(TorchCheckpoint.fromBytes(bytes, "old.tar")).rejects.toThrow(UnsupportedError);
  });
});
