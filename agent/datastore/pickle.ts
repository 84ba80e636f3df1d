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
