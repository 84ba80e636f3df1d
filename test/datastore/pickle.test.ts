import { execFileSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { PickledObject, decodePickle, decodeScalarPickle } from '../../agent/datastore/pickle'
import { PYTHON } from '../helpers/paths'

function pickled(expr: string, protocol: number): Buffer {
  const out = execFileSync(PYTHON, ['-c', `import pickle,sys;sys.stdout.write(pickle.dumps(${expr}, protocol=${protocol}).hex())`], { encoding: 'utf8' })
  return Buffer.from(out, 'hex')
}

describe('the scalar pickle decoder', () => {
  const values = [0, 1, 4, 255, 256, 1000, 65535, 65536, 100000, 2 ** 31 - 1, 2 ** 31, 2 ** 40, -1, -300]
  for (const protocol of [2, 4, 5]) {
    it(`reads the ints Python pickles with protocol ${protocol}`, () => {
      for (const v of values) expect(decodeScalarPickle(pickled(String(v), protocol))).toBe(v)
    })
  }

  it('reads None, True and False', () => {
    expect(decodeScalarPickle(pickled('None', 4))).toBeNull()
    expect(decodeScalarPickle(pickled('True', 4))).toBe(true)
    expect(decodeScalarPickle(pickled('False', 4))).toBe(false)
  })

  it('refuses a pickle of anything else rather than misreading it', () => {
    expect(() => decodeScalarPickle(pickled('"4"', 4))).toThrow(/unsupported pickle opcode/)
    expect(() => decodeScalarPickle(pickled('[4]', 4))).toThrow(/unsupported/)
    expect(() => decodeScalarPickle(Buffer.from([0x80, 0x04, 0x4b]))).toThrow(/ends early/)
  })
})

describe('the plain-data pickle decoder', () => {
  // What Metaflow's bookkeeping holds: _transition is (['step'], None); _graph_info a dict of dicts, lists and strings.
  const plain = [
    "(['small'], None)",
    "{'start_step': 'begin', 'steps': {'begin': {'type': 'split-switch', 'next': ['a', 'b'], 'line': 12, 'doc': None}}}",
    "[1, -2, 3.5, 2**40, -(2**40), True, False, None, 'é\u4e2d', '', 'x' * 300]",
    "{'nested': [[1, [2, [3]]], {'k': (1,)}, ()], 'empty': {}, 'tuple3': (1, 2, 3)}",
  ]
  // Protocol 2 pickles bytes through _codecs.encode, an object call the decoder keeps opaque.
  const bytes = "[b'bytes', b'']"
  for (const protocol of [2, 4, 5]) {
    it(`reads dicts, lists, tuples, strings and numbers as Python pickles them with protocol ${protocol}`, () => {
      for (const expr of protocol > 2 ? [...plain, bytes] : plain) {
        const expected = JSON.parse(execFileSync(PYTHON, ['-c', `import json,sys
def pod(v):
    if isinstance(v, (bytes, bytearray)): return {'bytes': v.hex()}
    if isinstance(v, (list, tuple)): return [pod(x) for x in v]
    if isinstance(v, dict): return {k: pod(x) for k, x in v.items()}
    return v
sys.stdout.write(json.dumps(pod(${expr})))`], { encoding: 'utf8' }))
        expect(pod(decodePickle(pickled(expr, protocol))), expr).toEqual(expected)
      }
    })
  }

  it('keeps ints beyond 2^53 exact, as bigints', () => {
    expect(decodePickle(pickled('[-(2**63), 2**70]', 4))).toEqual([-(2n ** 63n), 2n ** 70n])
  })

  it('keeps one object for what the pickle shares, as its memo says', () => {
    const v = decodePickle(pickled("(lambda x: [x, x])(['shared'])", 4)) as unknown[][]
    expect(v[0]).toBe(v[1])
  })

  it('keeps instances of classes opaque, without importing or calling anything', () => {
    const v = decodePickle(pickled("{'when': __import__('datetime').date(2025, 1, 2), 'n': 1}", 4)) as Record<string, unknown>
    expect(v.when).toBeInstanceOf(PickledObject)
    expect((v.when as PickledObject).global).toBe('datetime.date')
    expect(v.n).toBe(1)
  })

  it('refuses truncated or out-of-band pickles rather than misreading them', () => {
    const whole = pickled("{'a': [1, 2]}", 4)
    expect(() => decodePickle(whole.subarray(0, whole.length - 3))).toThrow(/ends early|underflow|no mark/)
    expect(() => decodePickle(Buffer.from([0x80, 0x05, 0x97, 0x2e]))).toThrow(/unsupported pickle opcode 0x97/)
    expect(() => decodePickle(Buffer.from([0x80, 0x04, 0x68, 0x03, 0x2e]))).toThrow(/memo 3/)
  })
})

/** The decoded value in the JSON shape the Python side prints: bytes as hex. */
function pod(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return { bytes: v.toString('hex') }
  if (Array.isArray(v)) return v.map(pod)
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, pod(x)]))
  return v
}
