/**
 * A pickle virtual machine (protocols 0-5; CPython's Lib/pickletools.py documents every opcode) that
 * never executes anything. It only builds data: every opcode that would import or call Python code
 * (GLOBAL, STACK_GLOBAL, INST, OBJ, REDUCE, NEWOBJ, NEWOBJ_EX, BUILD, PERSID, BINPERSID) goes to an
 * `UnpicklePolicy`, which resolves names against an allowlist and refuses the rest. Extension codes
 * (EXT1/2/4) and out-of-band buffers are refused outright.
 */
import { UnsafePickleError, UnsupportedError, type CorruptFileError } from "../../errors.js";
import { DEFAULT_UNPICKLE_LIMITS, PickleMachine, type UnpickleLimits } from "./pickle-machine.js";
import * as text from "./text-codecs.js";
import { PyDict, PySet, PyTuple, describePy, type PyValue } from "./values.js";

export { DEFAULT_UNPICKLE_LIMITS, type UnpickleLimits } from "./pickle-machine.js";

/** Where the VM is, for a policy's error messages. */
export interface PolicySite {
  /** "data.pkl at pickle byte 298" */
  readonly where: string;
  /** A CorruptFileError for the current opcode, with its file offset. */
  corrupt(reason: string): CorruptFileError;
}

/** What the VM asks whenever a pickle wants to import, call, build or load something. */
export interface UnpicklePolicy {
  /** GLOBAL / STACK_GLOBAL / INST: the value for an allowlisted name; otherwise throws UnsafePickleError. */
  resolveGlobal(module: string, name: string, opcode: string, site: PolicySite): PyValue;
  /** REDUCE / NEWOBJ / NEWOBJ_EX / OBJ / INST: applies an allowlisted callable; otherwise throws. */
  call(callable: PyValue, args: readonly PyValue[], opcode: string, site: PolicySite): PyValue;
  /** BUILD: sets `state` on `target` in place, or throws. */
  build(target: PyValue, state: PyValue, site: PolicySite): void;
  /** PERSID / BINPERSID: turns a persistent id into a value (torch: storages). */
  persistentLoad(pid: PyValue, site: PolicySite): PyValue;
}

export interface UnpickleOptions {
  /** File the bytes come from (for messages). */
  readonly path: string;
  readonly policy: UnpicklePolicy;
  /** Which pickle this is, for messages ("data.pkl"). */
  readonly label?: string;
  /** Where to start in `bytes` (legacy torch files hold several pickles in a row). */
  readonly start?: number;
  /** File offset of bytes[0], so that error offsets point into the file. */
  readonly baseOffset?: number;
  readonly limits?: Partial<UnpickleLimits>;
}

const MAX_PROTOCOL = 5;
/** Longest LONG1/LONG4 payload accepted (2048-bit integers); checkpoints never come close. */
const MAX_LONG_BYTES = 256;

/** Runs one pickle up to its STOP opcode; returns the value and the position after STOP. */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions): { value: PyValue; end: number } {
  const { path, policy } = options;
  const limits = { ...DEFAULT_UNPICKLE_LIMITS, ...options.limits };
  const m = new PickleMachine(
    bytes,
    options.start ?? 0,
    path,
    options.label ?? "pickle",
    options.baseOffset ?? 0,
    limits,
  );
  const site: PolicySite = {
    get where() {
      return m.site();
    },
    corrupt: (reason) => m.corrupt(reason),
  };
  const unsafe = (detail: string): UnsafePickleError =>
    new UnsafePickleError(path, `${site.where}: ${detail}`);
  const long = (n: number): number | bigint => {
    if (n < 0 || n > MAX_LONG_BYTES)
      throw m.corrupt(`LONG of ${n} bytes is negative or larger than any checkpoint needs`);
    return text.decodeLong(m.take(n));
  };

  for (;;) {
    m.at = m.pos;
    const op = m.u8();
    // One opcode per line, read as a table (names from pickletools).
    // prettier-ignore
    switch (op) {
      case 0x80: {
        const version = m.u8(); // PROTO
        if (version > MAX_PROTOCOL) throw new UnsupportedError(`pickle protocol ${version} in ${path} (${site.where})`);
        break;
      }
      case 0x95: m.u64(); break; // FRAME: only a length prefix; framing does not change the opcode stream
      case 0x2e: return { value: m.pop(), end: m.pos }; // STOP
      case 0x28: m.mark(); break; // MARK
      case 0x30: m.popAny(); break; // POP
      case 0x31: m.popMark(); break; // POP_MARK
      case 0x32: m.push(m.top()); break; // DUP

      // numbers and constants
      case 0x4e: m.push(null); break; // NONE
      case 0x88: m.push(true); break; // NEWTRUE
      case 0x89: m.push(false); break; // NEWFALSE
      case 0x4b: m.push(m.u8()); break; // BININT1
      case 0x4d: m.push(m.u16()); break; // BININT2
      case 0x4a: m.push(m.i32()); break; // BININT
      case 0x8a: m.push(long(m.u8())); break; // LONG1
      case 0x8b: m.push(long(m.i32())); break; // LONG4
      case 0x47: m.push(m.f64be()); break; // BINFLOAT: big-endian double
      case 0x49: { // INT: protocol 0, "00"/"01" are False/True
        const s = m.textLine();
        m.push(s === "00" ? false : s === "01" ? true : m.ok(text.parseDecimalInt(s), "INT"));
        break;
      }
      case 0x4c: m.push(m.ok(text.parseDecimalInt(m.textLine()), "LONG")); break; // LONG
      case 0x46: m.push(m.ok(text.parseFloatRepr(m.textLine()), "FLOAT")); break; // FLOAT

      // strings and bytes
      case 0x58: m.push(m.utf8(m.take(m.u32()), "BINUNICODE")); break;
      case 0x8c: m.push(m.utf8(m.take(m.u8()), "SHORT_BINUNICODE")); break;
      case 0x8d: m.push(m.utf8(m.take(m.u64()), "BINUNICODE8")); break;
      case 0x56: m.push(m.ok(text.decodeRawUnicodeEscape(m.line()), "UNICODE escape")); break;
      case 0x53: m.push(text.decodeByteString(m.ok(text.decodeStringLiteral(m.line()), "STRING literal"))); break;
      case 0x54: { // BINSTRING
        const n = m.i32();
        if (n < 0) throw m.corrupt("negative BINSTRING length");
        m.push(text.decodeByteString(m.take(n)));
        break;
      }
      case 0x55: m.push(text.decodeByteString(m.take(m.u8()))); break; // SHORT_BINSTRING
      case 0x42: m.push(m.take(m.u32()).slice()); break; // BINBYTES
      case 0x43: m.push(m.take(m.u8()).slice()); break; // SHORT_BINBYTES
      case 0x8e: m.push(m.take(m.u64()).slice()); break; // BINBYTES8
      case 0x96: m.push(m.take(m.u64()).slice()); break; // BYTEARRAY8
      case 0x97: throw new UnsupportedError(`out-of-band pickle buffers (NEXT_BUFFER) in ${path} (${site.where})`);
      case 0x98: m.top(); break; // READONLY_BUFFER: a no-op on an in-band buffer

      // containers
      case 0x5d: m.push([]); break; // EMPTY_LIST
      case 0x6c: m.push(m.popMark()); break; // LIST
      case 0x61: { const v = m.pop(); m.appendAll(m.top(), [v]); break; } // APPEND
      case 0x65: { const items = m.popMark(); m.appendAll(m.top(), items); break; } // APPENDS
      case 0x29: m.push(new PyTuple([])); break; // EMPTY_TUPLE
      case 0x74: m.push(new PyTuple(m.popMark())); break; // TUPLE
      case 0x85: m.push(new PyTuple([m.pop()])); break; // TUPLE1
      case 0x86: { const b = m.pop(); m.push(new PyTuple([m.pop(), b])); break; } // TUPLE2
      case 0x87: { const c = m.pop(); const b = m.pop(); m.push(new PyTuple([m.pop(), b, c])); break; } // TUPLE3
      case 0x7d: m.push(new PyDict()); break; // EMPTY_DICT
      case 0x64: { const d = new PyDict(); m.setItems(d, m.popMark()); m.push(d); break; } // DICT
      case 0x73: { const v = m.pop(); const k = m.pop(); m.setItems(m.top(), [k, v]); break; } // SETITEM
      case 0x75: { const items = m.popMark(); m.setItems(m.top(), items); break; } // SETITEMS
      case 0x8f: m.push(new PySet([], false)); break; // EMPTY_SET
      case 0x90: { // ADDITEMS
        const items = m.popMark();
        const target = m.top();
        if (!(target instanceof PySet) || target.frozen) throw m.corrupt(`ADDITEMS on ${describePy(target)}, not a set`);
        target.items.push(...items);
        break;
      }
      case 0x91: m.push(new PySet(m.popMark(), true)); break; // FROZENSET

      // memo
      case 0x67: m.push(m.memoGet(memoIndex(m, text.parseDecimalInt(m.textLine())))); break; // GET
      case 0x68: m.push(m.memoGet(m.u8())); break; // BINGET
      case 0x6a: m.push(m.memoGet(m.u32())); break; // LONG_BINGET
      case 0x70: m.memoPut(text.parseDecimalInt(m.textLine())); break; // PUT
      case 0x71: m.memoPut(m.u8()); break; // BINPUT
      case 0x72: m.memoPut(m.u32()); break; // LONG_BINPUT
      case 0x94: m.memoize(); break; // MEMOIZE

      // everything that would import or call: the policy decides
      case 0x63: { // GLOBAL
        const module = m.textLine();
        m.push(policy.resolveGlobal(module, m.textLine(), "GLOBAL", site));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = m.pop();
        const [module, global] = m.globalName(m.pop(), name);
        m.push(policy.resolveGlobal(module, global, "STACK_GLOBAL", site));
        break;
      }
      case 0x69: { // INST: import and call in one opcode
        const module = m.textLine();
        const cls = policy.resolveGlobal(module, m.textLine(), "INST", site);
        m.push(policy.call(cls, m.popMark(), "INST", site));
        break;
      }
      case 0x6f: { // OBJ
        const [cls, ...args] = m.popMark();
        if (cls === undefined) throw m.corrupt("OBJ without a class");
        m.push(policy.call(cls, args, "OBJ", site));
        break;
      }
      case 0x52: { const args = m.tupleItems(m.pop(), "REDUCE"); m.push(policy.call(m.pop(), args, "REDUCE", site)); break; }
      case 0x81: { const args = m.tupleItems(m.pop(), "NEWOBJ"); m.push(policy.call(m.pop(), args, "NEWOBJ", site)); break; }
      case 0x92: { // NEWOBJ_EX
        const kwargs = m.pop();
        const args = m.tupleItems(m.pop(), "NEWOBJ_EX");
        const cls = m.pop();
        if (!(kwargs instanceof PyDict) || kwargs.entries.size > 0) {
          throw unsafe(`NEWOBJ_EX passes keyword arguments to ${describePy(cls)}`);
        }
        m.push(policy.call(cls, args, "NEWOBJ_EX", site));
        break;
      }
      case 0x62: { const state = m.pop(); policy.build(m.top(), state, site); break; } // BUILD
      case 0x50: m.push(policy.persistentLoad(m.textLine(), site)); break; // PERSID
      case 0x51: m.push(policy.persistentLoad(m.pop(), site)); break; // BINPERSID
      case 0x82: throw unsafe(`EXT1 asks the copyreg extension registry for code ${m.u8()}`);
      case 0x83: throw unsafe(`EXT2 asks the copyreg extension registry for code ${m.u16()}`);
      case 0x84: throw unsafe(`EXT4 asks the copyreg extension registry for code ${m.u32()}`);
      default:
        throw m.corrupt(`unknown opcode 0x${op.toString(16).padStart(2, "0")}`);
    }
  }
}

function memoIndex(m: PickleMachine, v: number | bigint | undefined): number {
  if (typeof v !== "number" || v < 0) throw m.corrupt("malformed memo index");
  return v;
}
