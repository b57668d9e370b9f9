/**
 * The state of the pickle VM and its bounds-checked primitives: reading arguments, the stack with
 * its MARK frames, and the memo. Every read checks the remaining bytes first; every failure is a
 * CorruptFileError naming the pickle, the opcode's byte offset and the file offset.
 */
import { CorruptFileError } from "../../errors.js";
import * as text from "./text-codecs.js";
import { describePy, PyDict, PyTuple, toPyKey, type PyValue } from "./values.js";

export interface UnpickleLimits {
  /** Largest number of values on one stack frame. */
  readonly maxStack: number;
  /** Deepest MARK nesting. */
  readonly maxMarks: number;
  /** Largest number of memo entries. */
  readonly maxMemo: number;
}

export const DEFAULT_UNPICKLE_LIMITS: UnpickleLimits = {
  maxStack: 1 << 22,
  maxMarks: 1 << 16,
  maxMemo: 1 << 22,
};

export class PickleMachine {
  private readonly dv: DataView;
  /** Start of the opcode being executed. */
  at: number;
  private stack: PyValue[] = [];
  private readonly marks: PyValue[][] = [];
  private readonly memo = new Map<number, PyValue>();

  constructor(
    private readonly bytes: Uint8Array,
    public pos: number,
    readonly path: string,
    readonly label: string,
    private readonly base: number,
    private readonly limits: UnpickleLimits,
  ) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.at = pos;
  }

  /** "data.pkl at pickle byte 298", for messages. */
  site(): string {
    return `${this.label} at pickle byte ${this.at}`;
  }

  corrupt(reason: string): CorruptFileError {
    return new CorruptFileError(
      this.path,
      `${this.label}: ${reason} (opcode at pickle byte ${this.at})`,
      this.base + this.at,
    );
  }

  // ---- arguments

  private need(n: number): number {
    if (!Number.isSafeInteger(n) || n < 0 || this.pos + n > this.bytes.length) {
      throw this.corrupt(`truncated: needs ${n} more bytes but ${this.bytes.length - this.pos} remain`);
    }
    const start = this.pos;
    this.pos += n;
    return start;
  }

  take(n: number): Uint8Array {
    const start = this.need(n);
    return this.bytes.subarray(start, this.pos);
  }

  u8(): number {
    return this.dv.getUint8(this.need(1));
  }
  u16(): number {
    return this.dv.getUint16(this.need(2), true);
  }
  u32(): number {
    return this.dv.getUint32(this.need(4), true);
  }
  i32(): number {
    return this.dv.getInt32(this.need(4), true);
  }
  /** A u64 length; values past the end of the pickle are clamped so that `take` reports truncation. */
  u64(): number {
    const v = this.dv.getBigUint64(this.need(8), true);
    return v > BigInt(this.bytes.length) ? this.bytes.length + 1 : Number(v);
  }
  f64be(): number {
    return this.dv.getFloat64(this.need(8), false);
  }

  /** A protocol-0 text argument up to (not including) the newline. */
  line(): Uint8Array {
    const nl = this.bytes.indexOf(0x0a, this.pos);
    if (nl < 0) throw this.corrupt("truncated: text argument has no terminating newline");
    const out = this.bytes.subarray(this.pos, nl);
    this.pos = nl + 1;
    return out;
  }
  textLine(): string {
    return text.decodeByteString(this.line());
  }

  utf8(bytes: Uint8Array, what: string): string {
    const s = text.decodeUtf8(bytes);
    if (s === undefined) throw this.corrupt(`${what} is not valid UTF-8`);
    return s;
  }

  /** Unwraps a decoder result, or throws "malformed <what>". */
  ok<T>(value: T | undefined, what: string): T {
    if (value === undefined) throw this.corrupt(`malformed ${what}`);
    return value;
  }

  // ---- stack

  push(v: PyValue): void {
    if (this.stack.length >= this.limits.maxStack)
      throw this.corrupt(`stack exceeds ${this.limits.maxStack} values`);
    this.stack.push(v);
  }
  pop(): PyValue {
    const v = this.stack.pop();
    if (v === undefined) throw this.corrupt("stack underflow");
    return v;
  }
  top(): PyValue {
    const v = this.stack[this.stack.length - 1];
    if (v === undefined) throw this.corrupt("stack underflow");
    return v;
  }
  /** POP: drops the top value, or the innermost MARK frame when it is empty (as CPython does). */
  popAny(): void {
    if (this.stack.length > 0) this.stack.pop();
    else this.popMark();
  }
  mark(): void {
    if (this.marks.length >= this.limits.maxMarks)
      throw this.corrupt(`MARKs nested deeper than ${this.limits.maxMarks}`);
    this.marks.push(this.stack);
    this.stack = [];
  }
  /** The values pushed since the innermost MARK, which is removed. */
  popMark(): PyValue[] {
    const items = this.stack;
    const outer = this.marks.pop();
    if (outer === undefined) throw this.corrupt("no MARK to pop to");
    this.stack = outer;
    return items;
  }

  // ---- memo

  memoGet(index: number): PyValue {
    const v = this.memo.get(index);
    if (v === undefined) throw this.corrupt(`memo entry ${index} was never stored`);
    return v;
  }
  memoPut(index: number | bigint | undefined): void {
    if (typeof index !== "number" || index < 0) throw this.corrupt("malformed memo index");
    if (!this.memo.has(index) && this.memo.size >= this.limits.maxMemo) {
      throw this.corrupt(`memo exceeds ${this.limits.maxMemo} entries`);
    }
    this.memo.set(index, this.top());
  }
  memoize(): void {
    this.memoPut(this.memo.size);
  }

  // ---- container helpers

  setItems(target: PyValue, items: readonly PyValue[]): void {
    if (!(target instanceof PyDict)) throw this.corrupt(`SETITEM(S) on ${describePy(target)}, not a dict`);
    if (items.length % 2 !== 0) throw this.corrupt("SETITEMS with an odd number of values");
    for (let i = 0; i + 1 < items.length; i += 2) {
      const key = items[i];
      const value = items[i + 1];
      if (key !== undefined && value !== undefined) target.entries.set(toPyKey(key), value);
    }
  }
  appendAll(target: PyValue, items: readonly PyValue[]): void {
    if (!Array.isArray(target)) throw this.corrupt(`APPEND(S) on ${describePy(target)}, not a list`);
    for (const item of items) target.push(item);
  }
  tupleItems(v: PyValue, opcode: string): readonly PyValue[] {
    if (!(v instanceof PyTuple)) throw this.corrupt(`${opcode} arguments are ${describePy(v)}, not a tuple`);
    return v.items;
  }
  globalName(module: PyValue, name: PyValue): [string, string] {
    if (typeof module !== "string" || typeof name !== "string") {
      throw this.corrupt(`STACK_GLOBAL needs two strings, got ${describePy(module)} and ${describePy(name)}`);
    }
    return [module, name];
  }
}
