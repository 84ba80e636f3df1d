// Decodes the few pickles Metaflow's bookkeeping artifacts use: small ints, None and booleans.

/**
 * Understands protocol 2-5 pickles of one int, None, True or False: PROTO, FRAME,
 * BININT1/BININT2/BININT/LONG1, NONE, NEWTRUE/NEWFALSE, STOP. Anything else throws,
 * so an artifact that is not what we expect is reported rather than misread.
 */
export function decodeScalarPickle(buf: Buffer): number | boolean | null {
  let i = 0
  const need = (n: number) => {
    if (i + n > buf.length) throw new Error('pickle ends early')
  }
  let value: number | boolean | null | undefined
  for (;;) {
    need(1)
    const op = buf[i++] as number
    switch (op) {
      case 0x80: // PROTO
        need(1)
        i += 1
        break
      case 0x95: // FRAME + u64 length
        need(8)
        i += 8
        break
      case 0x4b: // BININT1
        need(1)
        value = buf.readUInt8(i)
        i += 1
        break
      case 0x4d: // BININT2
        need(2)
        value = buf.readUInt16LE(i)
        i += 2
        break
      case 0x4a: // BININT (int32)
        need(4)
        value = buf.readInt32LE(i)
        i += 4
        break
      case 0x8a: {
        // LONG1: n bytes, little-endian two's complement
        need(1)
        const n = buf.readUInt8(i++)
        need(n)
        let v = 0n
        for (let k = n - 1; k >= 0; k--) v = (v << 8n) | BigInt(buf[i + k] as number)
        if (n > 0 && ((buf[i + n - 1] as number) & 0x80) !== 0) v -= 1n << BigInt(8 * n)
        i += n
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
          throw new Error('pickled int is too large')
        }
        value = Number(v)
        break
      }
      case 0x4e: // NONE
        value = null
        break
      case 0x88: // NEWTRUE
        value = true
        break
      case 0x89: // NEWFALSE
        value = false
        break
      case 0x2e: // STOP
        if (value === undefined) throw new Error('pickle holds no value')
        return value
      default:
        throw new Error(`unsupported pickle opcode 0x${op.toString(16)}`)
    }
  }
}

/** A Python object as decodePickle gives it: containers become arrays and null-prototype objects. */
export type PickleValue =
  | null
  | boolean
  | number
  /** an int beyond ±2^53, which a number would round */
  | bigint
  | string
  | Buffer
  | PickleValue[]
  | { [key: string]: PickleValue }
  | PickledObject

/** An instance of a class (e.g. a namedtuple): kept opaque, since the agent only reads plain data. */
export class PickledObject {
  constructor(readonly global: string) {}
}

const MARK = Symbol('mark')
type Slot = PickleValue | typeof MARK

/**
 * Decodes a protocol 2-5 pickle of plain data: dicts, lists, tuples, sets, str, bytes, ints,
 * floats, bools and None (what Metaflow's `_transition` and `_graph_info` hold). Instances of
 * classes become opaque PickledObjects; they are built, never imported or called, so a pickle
 * cannot run anything here. Out-of-band buffers and persistent ids throw.
 */
export function decodePickle(buf: Buffer): PickleValue {
  let i = 0
  const stack: Slot[] = []
  const memo = new Map<number, PickleValue>()
  const need = (n: number) => {
    if (n < 0 || i + n > buf.length) throw new Error('pickle ends early')
  }
  const pop = (): PickleValue => {
    const v = stack.pop()
    if (v === undefined || v === MARK) throw new Error('pickle stack underflow')
    return v
  }
  const top = (): PickleValue => {
    const v = stack[stack.length - 1]
    if (v === undefined || v === MARK) throw new Error('pickle stack underflow')
    return v
  }
  const popMark = (): PickleValue[] => {
    const at = stack.lastIndexOf(MARK)
    if (at === -1) throw new Error('pickle has no mark')
    const items = stack.splice(at) as PickleValue[]
    items.shift()
    return items
  }
  const str = (n: number) => {
    need(n)
    const s = buf.toString('utf8', i, i + n)
    i += n
    return s
  }
  const bytes = (n: number) => {
    need(n)
    const b = Buffer.from(buf.subarray(i, i + n))
    i += n
    return b
  }
  const u8 = () => (need(1), buf.readUInt8(i++))
  const u32 = () => {
    need(4)
    const v = buf.readUInt32LE(i)
    i += 4
    return v
  }
  const u64 = () => {
    need(8)
    const v = buf.readBigUInt64LE(i)
    i += 8
    if (v > BigInt(buf.length)) throw new Error('pickle ends early')
    return Number(v)
  }
  const line = () => {
    const end = buf.indexOf(0x0a, i)
    if (end === -1) throw new Error('pickle ends early')
    const s = buf.toString('latin1', i, end)
    i = end + 1
    return s
  }
  const long = (n: number): number | bigint => {
    need(n)
    let v = 0n
    for (let k = n - 1; k >= 0; k--) v = (v << 8n) | BigInt(buf[i + k] as number)
    if (n > 0 && ((buf[i + n - 1] as number) & 0x80) !== 0) v -= 1n << BigInt(8 * n)
    i += n
    return v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER) ? v : Number(v)
  }
  const setItems = (d: PickleValue, items: PickleValue[]) => {
    if (d === null || typeof d !== 'object' || Array.isArray(d) || Buffer.isBuffer(d)) throw new Error('pickle sets items on a non-dict')
    if (d instanceof PickledObject) return
    for (let k = 0; k + 1 < items.length; k += 2) d[keyOf(items[k] as PickleValue)] = items[k + 1] as PickleValue
  }
  const append = (l: PickleValue, items: PickleValue[]) => {
    if (l instanceof PickledObject) return
    if (!Array.isArray(l)) throw new Error('pickle appends to a non-list')
    l.push(...items)
  }
  for (;;) {
    need(1)
    const op = buf[i++] as number
    switch (op) {
      case 0x80: u8(); break // PROTO
      case 0x95: need(8); i += 8; break // FRAME
      case 0x2e: { // STOP
        const v = pop()
        return v
      }
      case 0x28: stack.push(MARK); break // MARK
      case 0x30: pop(); break // POP
      case 0x31: popMark(); break // POP_MARK
      case 0x32: stack.push(top()); break // DUP
      case 0x4e: stack.push(null); break // NONE
      case 0x88: stack.push(true); break // NEWTRUE
      case 0x89: stack.push(false); break // NEWFALSE
      case 0x4b: stack.push(u8()); break // BININT1
      case 0x4d: need(2); stack.push(buf.readUInt16LE(i)); i += 2; break // BININT2
      case 0x4a: need(4); stack.push(buf.readInt32LE(i)); i += 4; break // BININT
      case 0x8a: stack.push(long(u8())); break // LONG1
      case 0x8b: stack.push(long(u32())); break // LONG4
      case 0x47: need(8); stack.push(buf.readDoubleBE(i)); i += 8; break // BINFLOAT
      case 0x8c: stack.push(str(u8())); break // SHORT_BINUNICODE
      case 0x58: stack.push(str(u32())); break // BINUNICODE
      case 0x8d: stack.push(str(u64())); break // BINUNICODE8
      case 0x55: stack.push(bytes(u8()).toString('latin1')); break // SHORT_BINSTRING (py2 str)
      case 0x54: stack.push(bytes(u32()).toString('latin1')); break // BINSTRING
      case 0x43: stack.push(bytes(u8())); break // SHORT_BINBYTES
      case 0x42: stack.push(bytes(u32())); break // BINBYTES
      case 0x8e: stack.push(bytes(u64())); break // BINBYTES8
      case 0x96: stack.push(bytes(u64())); break // BYTEARRAY8
      case 0x5d: stack.push([]); break // EMPTY_LIST
      case 0x7d: stack.push(Object.create(null) as { [key: string]: PickleValue }); break // EMPTY_DICT
      case 0x29: stack.push([]); break // EMPTY_TUPLE
      case 0x8f: stack.push([]); break // EMPTY_SET
      case 0x6c: stack.push(popMark()); break // LIST
      case 0x74: stack.push(popMark()); break // TUPLE
      case 0x91: stack.push(popMark()); break // FROZENSET
      case 0x64: { // DICT
        const d = Object.create(null) as { [key: string]: PickleValue }
        setItems(d, popMark())
        stack.push(d)
        break
      }
      case 0x85: stack.push([pop()]); break // TUPLE1
      case 0x86: { const b = pop(); stack.push([pop(), b]); break } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); stack.push([pop(), b, c]); break } // TUPLE3
      case 0x61: { const v = pop(); append(top(), [v]); break } // APPEND
      case 0x65: case 0x90: { const items = popMark(); append(top(), items); break } // APPENDS, ADDITEMS
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break } // SETITEM
      case 0x75: { const items = popMark(); setItems(top(), items); break } // SETITEMS
      case 0x94: memo.set(memo.size, top()); break // MEMOIZE
      case 0x71: memo.set(u8(), top()); break // BINPUT
      case 0x72: memo.set(u32(), top()); break // LONG_BINPUT
      case 0x68: stack.push(fromMemo(memo, u8())); break // BINGET
      case 0x6a: stack.push(fromMemo(memo, u32())); break // LONG_BINGET
      case 0x63: stack.push(new PickledObject(`${line()}.${line()}`)); break // GLOBAL
      case 0x93: { const name = pop(); const mod = pop(); stack.push(new PickledObject(`${String(mod)}.${String(name)}`)); break } // STACK_GLOBAL
      case 0x52: case 0x81: { pop(); const cls = pop(); stack.push(asObject(cls)); break } // REDUCE, NEWOBJ
      case 0x92: { pop(); pop(); const cls = pop(); stack.push(asObject(cls)); break } // NEWOBJ_EX
      case 0x62: pop(); break // BUILD: the state of an opaque object is not kept
      default:
        throw new Error(`unsupported pickle opcode 0x${op.toString(16)}`)
    }
  }
}

function fromMemo(memo: Map<number, PickleValue>, key: number): PickleValue {
  const v = memo.get(key)
  if (v === undefined) throw new Error(`pickle refers to memo ${key}, which it never stored`)
  return v
}

function asObject(cls: PickleValue): PickledObject {
  return cls instanceof PickledObject ? new PickledObject(cls.global) : new PickledObject('?')
}

/** Dict keys as strings: Metaflow's bookkeeping dicts are keyed by str. */
function keyOf(k: PickleValue): string {
  if (typeof k === 'string') return k
  if (k === null || typeof k === 'number' || typeof k === 'bigint' || typeof k === 'boolean') return String(k)
  return JSON.stringify(k, (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v))
}
