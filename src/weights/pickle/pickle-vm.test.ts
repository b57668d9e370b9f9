import { describe, expect, it } from "vitest";
import { op, pk, u32 } from "../../../test/helpers/torch-archive.js";
import { CorruptFileError, UnsafePickleError, UnsupportedError } from "../../errors.js";
import { unpickle, type UnpicklePolicy } from "./pickle-vm.js";
import { toJsonValue } from "./walk.js";
import { PyDict, PyGlobal, PySet, PyTuple, type PyValue } from "./values.js";

/** A policy that allows `test.*` globals and records every call instead of performing it. */
function recordingPolicy(): UnpicklePolicy & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    resolveGlobal(module, name, opcode, site) {
      if (module !== "test")
        throw new UnsafePickleError("t.pkl", `${site.where}: ${opcode} ${module}.${name}`);
      return new PyGlobal(module, name);
    },
    call(callable, args, opcode) {
      calls.push(`${opcode} ${callable instanceof PyGlobal ? callable.qualifiedName : "?"}(${args.length})`);
      return new PyTuple(["called", ...args]);
    },
    build(target, state) {
      calls.push("BUILD");
      if (target instanceof PyDict) target.state = state;
    },
    persistentLoad(pid) {
      calls.push("PERSID");
      return new PyTuple(["pid", pid]);
    },
  };
}

function run(bytes: Uint8Array, policy = recordingPolicy()): PyValue {
  return unpickle(bytes, { path: "t.pkl", policy, label: "t.pkl" }).value;
}
const json = (bytes: Uint8Array): unknown => toJsonValue(run(bytes));

describe("pickle VM: data opcodes", () => {
  it("decodes constants and integers of every width", () => {
    expect(
      json(
        pk(op.proto(2), op.MARK, op.NONE, op.NEWTRUE, op.NEWFALSE, op.int(7), op.int(300), op.TUPLE, op.STOP),
      ),
    ).toEqual({
      tuple: [null, true, false, 7, 300],
    });
    expect(run(pk(op.proto(2), [0x4a, ...u32(-5 >>> 0)], op.STOP))).toBe(-5); // BININT is signed
    expect(run(pk(op.long1([0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00]), op.STOP))).toBe(
      9007199254740993n,
    );
    expect(run(pk(op.long1([0xff]), op.STOP))).toBe(-1); // two's complement
    expect(run(pk(op.long1([]), op.STOP))).toBe(0);
    expect(run(pk(op.long4([0x00, 0x80]), op.STOP))).toBe(-32768);
    expect(run(pk(op.text("I", "01"), op.STOP))).toBe(true);
    expect(run(pk(op.text("I", "00"), op.STOP))).toBe(false);
    expect(run(pk(op.text("I", "-42"), op.STOP))).toBe(-42);
    expect(run(pk(op.text("L", "123456789012345678901L"), op.STOP))).toBe(123456789012345678901n);
  });

  it("reads BINFLOAT as a big-endian double and FLOAT as text", () => {
    expect(run(pk(op.binfloat(0.0001), op.STOP))).toBe(0.0001);
    expect(Object.is(run(pk(op.binfloat(-0), op.STOP)), -0)).toBe(true);
    expect(run(pk(op.text("F", "1.5"), op.STOP))).toBe(1.5);
    expect(run(pk(op.text("F", "-inf"), op.STOP))).toBe(-Infinity);
  });

  it("decodes every string and bytes opcode", () => {
    expect(run(pk(op.str("čšž ✓ 日本"), op.STOP))).toBe("čšž ✓ 日本");
    expect(run(pk(op.proto(4), op.shortStr("ab"), op.STOP))).toBe("ab");
    expect(run(pk(op.proto(4), op.str8("long"), op.STOP))).toBe("long");
    expect(run(pk(op.text("V", "a\\u0161b\\U0001f600"), op.STOP))).toBe("ašb😀");
    expect(run(pk(op.text("S", "'tab\\there\\x41\\101'"), op.STOP))).toBe("tab\there" + "AA");
    expect(run(pk([0x54, ...u32(2), 0x68, 0x69], op.STOP))).toBe("hi"); // BINSTRING
    expect(run(pk([0x55, 2, 0x6f, 0x6b], op.STOP))).toBe("ok"); // SHORT_BINSTRING
    for (const encode of [op.bytes, op.shortBytes, op.bytes8, op.bytearray8]) {
      expect(run(pk(op.proto(5), encode([1, 2, 255]), op.STOP))).toEqual(Uint8Array.from([1, 2, 255]));
    }
  });

  it("builds lists, tuples, dicts and sets", () => {
    const list = pk(op.EMPTY_LIST, op.int(1), op.APPEND, op.MARK, op.int(2), op.int(3), op.APPENDS, op.STOP);
    expect(json(list)).toEqual([1, 2, 3]);
    expect(json(pk(op.MARK, op.int(1), op.LIST, op.STOP))).toEqual([1]);
    expect(
      json(
        pk(
          op.int(1),
          op.TUPLE1,
          op.int(1),
          op.int(2),
          op.TUPLE2,
          op.int(1),
          op.int(2),
          op.int(3),
          op.TUPLE3,
          op.TUPLE3,
          op.STOP,
        ),
      ),
    ).toEqual({
      tuple: [{ tuple: [1] }, { tuple: [1, 2] }, { tuple: [1, 2, 3] }],
    });
    const dict = pk(op.MARK, op.str("a"), op.int(1), op.DICT, op.str("b"), op.int(2), op.SETITEM, op.STOP);
    expect(json(dict)).toEqual({ a: 1, b: 2 });
    const tupleKey = pk(op.EMPTY_DICT, op.int(1), op.int(2), op.TUPLE2, op.str("v"), op.SETITEM, op.STOP);
    expect(json(tupleKey)).toEqual({ "(1, 2)": "v" });
    const set = run(pk(op.proto(4), op.EMPTY_SET, op.MARK, op.int(1), op.int(2), op.ADDITEMS, op.STOP));
    expect(set).toBeInstanceOf(PySet);
    expect(json(pk(op.proto(4), op.MARK, op.int(5), op.FROZENSET, op.STOP))).toEqual({ set: [5] });
  });

  it("stores and fetches memo entries (shared objects stay shared)", () => {
    const bytes = pk(
      op.EMPTY_LIST,
      op.binput(0),
      op.text("p", "7"),
      op.longBinput(9),
      op.POP,
      op.MARK,
      op.binget(0),
      op.text("g", "7"),
      op.longBinget(9),
      op.TUPLE,
      op.STOP,
    );
    const value = run(bytes);
    expect(value).toBeInstanceOf(PyTuple);
    const items = (value as PyTuple).items;
    expect(items[0]).toBe(items[1]);
    expect(items[1]).toBe(items[2]);
    expect(
      json(pk(op.proto(4), op.frame(6), op.shortStr("x"), op.MEMOIZE, op.binget(0), op.TUPLE2, op.STOP)),
    ).toEqual({ tuple: ["x", "x"] });
  });

  it("handles MARK, POP, POP_MARK and DUP", () => {
    expect(json(pk(op.int(1), op.int(2), op.POP, op.DUP, op.TUPLE2, op.STOP))).toEqual({ tuple: [1, 1] });
    expect(json(pk(op.int(9), op.MARK, op.int(1), op.POP_MARK, op.STOP))).toBe(9);
    expect(json(pk(op.int(9), op.MARK, op.POP, op.STOP))).toBe(9); // POP of an empty frame drops the MARK
  });

  it("runs several pickles in a row from `start`", () => {
    const bytes = pk(op.int(1), op.STOP, op.int(2), op.STOP);
    const first = unpickle(bytes, { path: "t", policy: recordingPolicy() });
    expect(first).toEqual({ value: 1, end: 3 });
    expect(unpickle(bytes, { path: "t", policy: recordingPolicy(), start: first.end }).value).toBe(2);
  });
});

describe("pickle VM: imports and calls go through the policy", () => {
  it("routes GLOBAL/STACK_GLOBAL + REDUCE, NEWOBJ, OBJ, INST, BUILD and persistent ids", () => {
    const policy = recordingPolicy();
    const bytes = pk(
      op.proto(4),
      op.MARK,
      op.global("test", "f"),
      op.int(1),
      op.TUPLE1,
      op.REDUCE,
      op.shortStr("test"),
      op.shortStr("g"),
      op.STACK_GLOBAL,
      op.EMPTY_TUPLE,
      op.NEWOBJ,
      op.MARK,
      op.global("test", "h"),
      op.int(1),
      op.OBJ,
      op.MARK,
      op.int(2),
      op.inst("test", "i"),
      op.global("test", "j"),
      op.EMPTY_TUPLE,
      op.EMPTY_DICT,
      op.NEWOBJ_EX,
      op.EMPTY_DICT,
      op.EMPTY_DICT,
      op.BUILD,
      op.str("key"),
      op.BINPERSID,
      op.text("P", "legacy"),
      op.TUPLE,
      op.STOP,
    );
    run(bytes, policy);
    expect(policy.calls).toEqual([
      "REDUCE test.f(1)",
      "NEWOBJ test.g(0)",
      "OBJ test.h(1)",
      "INST test.i(1)",
      "NEWOBJ_EX test.j(0)",
      "BUILD",
      "PERSID",
      "PERSID",
    ]);
  });

  it.each([
    [
      "GLOBAL",
      pk(op.global("os", "system"), op.str("touch x"), op.TUPLE1, op.REDUCE, op.STOP),
      "GLOBAL os.system",
    ],
    [
      "STACK_GLOBAL",
      pk(op.proto(4), op.shortStr("posix"), op.shortStr("system"), op.STACK_GLOBAL, op.STOP),
      "STACK_GLOBAL posix.system",
    ],
    [
      "INST",
      pk(op.MARK, op.str("touch x"), op.inst("subprocess", "Popen"), op.STOP),
      "INST subprocess.Popen",
    ],
  ])("refuses a non-allowlisted %s before anything is called", (_name, bytes, fragment) => {
    const policy = recordingPolicy();
    const error = (() => {
      try {
        run(bytes, policy);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(UnsafePickleError);
    expect((error as UnsafePickleError).code).toBe("E_UNSAFE_PICKLE");
    expect((error as UnsafePickleError).message).toContain(fragment);
    expect(policy.calls).toEqual([]);
  });

  it("refuses extension codes and NEWOBJ_EX keyword arguments itself", () => {
    for (const ext of [
      [0x82, 1],
      [0x83, 1, 0],
      [0x84, 1, 0, 0, 0],
    ]) {
      expect(() => run(pk(ext, op.STOP))).toThrow(/copyreg extension registry/);
    }
    const kwargs = pk(
      op.global("test", "k"),
      op.EMPTY_TUPLE,
      op.MARK,
      op.str("a"),
      op.int(1),
      op.DICT,
      op.NEWOBJ_EX,
      op.STOP,
    );
    expect(() => run(kwargs)).toThrow(UnsafePickleError);
    expect(() => run(kwargs)).toThrow(/keyword arguments/);
  });

  it("refuses protocols above 5 and out-of-band buffers as unsupported", () => {
    expect(() => run(pk(op.proto(6), op.NONE, op.STOP))).toThrow(UnsupportedError);
    expect(() => run(pk(op.proto(5), 0x97, op.STOP))).toThrow(/NEXT_BUFFER/);
  });
});

describe("pickle VM: corrupt input", () => {
  const corrupt = (bytes: Uint8Array, fragment: string | RegExp, offset?: number, limits = {}): void => {
    let error: unknown;
    try {
      unpickle(bytes, {
        path: "bad.pkl",
        policy: recordingPolicy(),
        label: "data.pkl",
        baseOffset: 100,
        limits,
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CorruptFileError);
    expect((error as CorruptFileError).code).toBe("E_CORRUPT_FILE");
    expect((error as CorruptFileError).message).toMatch(fragment);
    if (offset !== undefined) expect((error as CorruptFileError).offset).toBe(100 + offset);
  };

  it("names the opcode offset of truncations", () => {
    corrupt(pk(op.proto(2), op.EMPTY_DICT), /truncated/, 3); // no STOP
    corrupt(pk(op.proto(2), op.str("abcdef").slice(0, 7)), /truncated: needs 6 more bytes/, 2);
    corrupt(pk(op.proto(4), op.str8("x").slice(0, 5)), /truncated/, 2);
    corrupt(pk([0x8d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), /truncated/, 0);
    corrupt(pk([0x49, 0x31]), /no terminating newline/, 0);
  });

  it("rejects malformed streams", () => {
    corrupt(pk(0xff), /unknown opcode 0xff/, 0);
    corrupt(pk(op.STOP), /stack underflow/);
    corrupt(pk(op.binget(3), op.STOP), /memo entry 3 was never stored/);
    corrupt(pk(op.POP_MARK, op.STOP), /no MARK/);
    corrupt(pk([0x58, ...u32(2), 0xc3, 0x28], op.STOP), /not valid UTF-8/);
    corrupt(pk(op.long4(new Array<number>(300).fill(1)), op.STOP), /larger than any checkpoint/);
    corrupt(pk(op.text("I", "12x"), op.STOP), /malformed INT/);
    corrupt(pk(op.EMPTY_LIST, op.str("k"), op.int(1), op.SETITEM, op.STOP), /not a dict/);
    corrupt(pk(op.EMPTY_DICT, op.int(1), op.APPEND, op.STOP), /not a list/);
    corrupt(pk(op.global("test", "f"), op.int(1), op.REDUCE, op.STOP), /not a tuple/);
    corrupt(pk(op.proto(4), op.int(1), op.shortStr("x"), op.STACK_GLOBAL, op.STOP), /two strings/);
  });

  it("enforces the stack, MARK and memo limits", () => {
    corrupt(pk(op.int(1), op.int(1), op.int(1), op.STOP), /stack exceeds 2 values/, 4, { maxStack: 2 });
    corrupt(pk(op.MARK, op.MARK, op.MARK, op.STOP), /MARKs nested deeper than 2/, 2, { maxMarks: 2 });
    corrupt(pk(op.int(1), op.binput(0), op.binput(1), op.STOP), /memo exceeds 1 entries/, 4, { maxMemo: 1 });
  });
});
